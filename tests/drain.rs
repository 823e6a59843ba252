//! Nothing lost at shutdown: a connection accepted before shutdown is served even when its
//! handshake ends after it (held here by a proxy between client and server), the drain
//! waits for handlers that outlived their connections, and readiness is true from the
//! moment the log says listening.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bars_receiver::{FhirResponse, HandlerResult, Handlers, MessageBundle, MessagingHandler, RequestContext};
use common::raw::{self, closed_within, get_metadata, read_response};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The test servers' `listen.shutdown_grace`.
const GRACE: Duration = Duration::from_secs(5);
/// Slack on top of the grace for the server task to end (a loaded build machine).
const SLACK: Duration = Duration::from_secs(3);

/// A TCP proxy for one connection that forwards the client's first TLS record (the
/// ClientHello) and everything the server sends, and holds the rest of what the client
/// sends (its certificate, Finished, and then its request) until `release`.
async fn holding_proxy(
    upstream: std::net::SocketAddr,
    release: oneshot::Receiver<()>,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = TcpStream::connect(upstream).await.unwrap();
        let mut header = [0u8; 5];
        client.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 0x16, "a TLS handshake record");
        let mut hello = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        client.read_exact(&mut hello).await.unwrap();
        server.write_all(&header).await.unwrap();
        server.write_all(&hello).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        });
        let _ = release.await;
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    addr
}

/// When the client's request goes out: with its last handshake flight (both held by the
/// proxy), or only once the server has finished the handshake.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RequestSent {
    WithLastFlight,
    AfterHandshake,
}

/// A client starts the handshake, shutdown begins, and 0.3 s later the proxy lets the
/// client's last flight through: the request is answered, then the connection closed, and
/// the server stops within its grace period.
async fn held_handshake_across_shutdown(when: RequestSent) {
    let mut server = TestServer::start(ServerOptions::default()).await;
    let (release, held) = oneshot::channel();
    let proxy = holding_proxy(server.addr, held).await;
    // TLS 1.3: the client has sent its last flight once it holds the server's; the server is
    // still waiting for that flight, which the proxy holds.
    let client = TestClient::with_versions(
        &server.pki,
        Some(&server.pki.client),
        &[&rustls::version::TLS13],
        &["http/1.1"],
    );
    let mut tls = tokio::time::timeout(Duration::from_secs(10), client.tls(proxy, None))
        .await
        .expect("the client's side of the handshake ends")
        .unwrap();
    if when == RequestSent::WithLastFlight {
        tls.write_all(&get_metadata("")).await.unwrap();
        tls.flush().await.unwrap();
    }
    assert_eq!(
        server.stats.admitted(),
        0,
        "the server's side is still in the handshake"
    );

    let stopping = Instant::now();
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();
    if when == RequestSent::AfterHandshake {
        // The server must not give up on the connection before its first request arrives.
        for _ in 0..200 {
            if server.stats.admitted() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.stats.admitted(), 1, "the handshake ended during the drain");
        tls.write_all(&get_metadata("")).await.unwrap();
        tls.flush().await.unwrap();
    }

    let reply = tokio::time::timeout(Duration::from_secs(10), read_response(&mut tls))
        .await
        .expect("an answer within 10 s")
        .unwrap_or_else(|| panic!("{when:?}: the request is answered, not dropped"));
    assert_eq!(reply.status, 200, "{when:?}: {}", reply.head);
    assert!(
        closed_within(&mut tls, Duration::from_secs(10)).await,
        "{when:?}: then the draining server closes the connection"
    );
    server.shutdown().await;
    assert!(
        stopping.elapsed() < GRACE + SLACK,
        "{when:?}: the server stopped within the grace period ({:?})",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_request_whose_handshake_ends_after_shutdown_is_still_answered() {
    held_handshake_across_shutdown(RequestSent::AfterHandshake).await;
}

#[tokio::test]
async fn a_request_sent_with_a_last_flight_held_past_shutdown_is_still_answered() {
    // As a client sends it, the request right behind its Finished. Tried several times:
    // whether the server sees the drain signal or the request first may vary.
    for _ in 0..4 {
        held_handshake_across_shutdown(RequestSent::WithLastFlight).await;
    }
}

/// Takes `work`, answering after the request deadline, and says when it has ended.
struct Outlives {
    work: Duration,
    ended: Arc<AtomicBool>,
}
impl MessagingHandler for Outlives {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        tokio::time::sleep(self.work).await;
        self.ended.store(true, Ordering::SeqCst);
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

async fn outliving_server(work: Duration, ended: Arc<AtomicBool>) -> TestServer {
    let options = ServerOptions {
        deadline: "1s",
        ..ServerOptions::default()
    };
    TestServer::start_with(options, move |_| {
        Handlers::new(Arc::new(Outlives { work, ended }))
    })
    .await
}

#[tokio::test]
async fn the_drain_waits_for_a_handler_that_outlived_its_request() {
    let ended = Arc::new(AtomicBool::new(false));
    let server = outliving_server(Duration::from_millis(2500), ended.clone()).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    reply.assert_outcome(408, "REC_TIMEOUT", "timeout");
    assert!(!ended.load(Ordering::SeqCst), "still running after its 408");
    let stopping = Instant::now();
    server.shutdown().await;
    assert!(
        ended.load(Ordering::SeqCst),
        "the server stopped only once the handler had ended"
    );
    assert!(stopping.elapsed() < GRACE + SLACK, "within the grace period");
}

#[tokio::test]
async fn the_drain_gives_up_on_a_handler_at_the_end_of_the_grace_period() {
    let ended = Arc::new(AtomicBool::new(false));
    let server = outliving_server(Duration::from_secs(60), ended.clone()).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    reply.assert_outcome(408, "REC_TIMEOUT", "timeout");
    let stopping = Instant::now();
    server.shutdown().await;
    let took = stopping.elapsed();
    assert!(took >= GRACE, "waited the grace period for it ({took:?})");
    assert!(took < GRACE + SLACK, "and no longer ({took:?})");
    assert!(!ended.load(Ordering::SeqCst));
}

/// At the "listening" log line, asks the admin listener for `/readyz` (from another thread,
/// with the logging one blocked until the answer or 5 s) and keeps what it said.
#[derive(Clone)]
struct ReadyzAtListening {
    admin: std::net::SocketAddr,
    seen: Arc<std::sync::Mutex<Option<String>>>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ReadyzAtListening {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if !message.0.starts_with("listening") {
            return;
        }
        let admin = self.admin;
        // The runtime's other tasks (the admin listener among them) go on meanwhile.
        let answer = tokio::task::block_in_place(|| {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(admin).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                s.write_all(b"GET /readyz HTTP/1.0\r\nHost: admin\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            })
            .join()
            .ok()
            .flatten()
        });
        *self.seen.lock().unwrap() = Some(answer.unwrap_or_else(|| "no answer".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_true_when_the_log_says_listening() {
    use tracing::instrument::WithSubscriber;
    use tracing_subscriber::layer::SubscriberExt;

    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write_server_files(dir.path());
    let settings = settings_for(&files, dir.path(), &ServerOptions::default());
    let store = bars_receiver::Store::open(&settings.inbox.path).unwrap();
    let server =
        bars_receiver::Server::new(&settings, bars_receiver::default_handlers(store.clone()), store).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let layer = ReadyzAtListening {
        admin: admin.local_addr().unwrap(),
        seen: Default::default(),
    };
    let seen = layer.seen.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(
        server
            .serve_with_admin(listener, Some(admin), async move {
                let _ = stopped.await;
            })
            .with_subscriber(tracing_subscriber::registry().with(layer)),
    );
    let mut answer = None;
    for _ in 0..200 {
        answer = seen.lock().unwrap().clone();
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), serving).await;
    let answer = answer.expect("the listening line was logged");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("/readyz when the log said listening: {answer}"));
    assert_eq!(json["checks"]["serving"], true, "{answer}");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_connection_admitted_before_shutdown_that_never_sends_is_dropped_within_its_timeout() {
    let mut server = TestServer::start(ServerOptions {
        listen_extra: "first_request_timeout = \"1s\"\n".into(),
        ..ServerOptions::default()
    })
    .await;
    let mut silent = raw::h1_client(&server).tls(server.addr, None).await.unwrap();
    let stopping = Instant::now();
    server.begin_shutdown();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        "closed by its first-request timeout, not held to the end of the grace period"
    );
    server.shutdown().await;
    assert!(
        stopping.elapsed() < GRACE,
        "a silent connection does not hold the drain for the whole grace period ({:?})",
        stopping.elapsed()
    );
}
