//! What an admitted connection may do: how long it may stay silent before its first request
//! (`listen.first_request_timeout`) and between requests (`listen.idle_timeout`), how large a
//! request head may be (`http.max_header_bytes`, HTTP/1.1 and h2 alike), and the HTTP/1.1
//! framing rules (one valid `Host`, no transfer coding but `chunked`). Real clients: raw
//! bytes over rustls, hyper's h1 and h2 clients, curl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bars_receiver::{FhirResponse, HandlerResult, Handlers, MessageBundle, MessagingHandler, RequestContext};
use common::raw::{self, closed_within, exchange, get_metadata};
use common::*;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

/// Long enough that a connection still open then was not closed by the timeout under test
/// (without it, these stay open for `listen.max_connection_age`, an hour).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

fn timeouts(first_request: &str, idle: &str) -> ServerOptions {
    ServerOptions {
        listen_extra: format!("first_request_timeout = \"{first_request}\"\nidle_timeout = \"{idle}\"\n"),
        ..ServerOptions::default()
    }
}

async fn wait_admitted(server: &TestServer, n: u64) {
    for _ in 0..200 {
        if server.stats.admitted() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the connection was never admitted");
}

#[tokio::test]
async fn a_client_that_sends_nothing_after_the_handshake_is_closed() {
    let server = TestServer::start(timeouts("1s", "1h")).await;
    let mut tls = raw::h1_client(&server).tls(server.addr, None).await.unwrap();
    wait_admitted(&server, 1).await;
    assert!(
        closed_within(&mut tls, CLOSE_BOUND).await,
        "a silent connection is closed after listen.first_request_timeout"
    );
    assert_eq!(server.stats.active(), 0, "its slot is free again");
}

#[tokio::test]
async fn a_client_that_sends_only_the_h2_preface_is_closed() {
    let server = TestServer::start(timeouts("1s", "1h")).await;
    let mut tls = raw::h2_client(&server).tls(server.addr, None).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    assert!(
        closed_within(&mut tls, CLOSE_BOUND).await,
        "a connection that never sends a request is closed after listen.first_request_timeout"
    );
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(timeouts("5m", "1s")).await;
    let mut tls = raw::h1_client(&server).tls(server.addr, None).await.unwrap();
    let reply = exchange(&mut tls, &get_metadata("")).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_ne!(reply.header("connection"), Some("close"), "kept alive");
    assert!(
        closed_within(&mut tls, CLOSE_BOUND).await,
        "an idle keep-alive connection is closed after listen.idle_timeout"
    );
}

/// hyper's own timeout for a request head (30 s once a timer is set) is off: it also runs
/// while a keep-alive connection waits for its next request, and closed it at 30 s, before
/// `listen.idle_timeout`. (This test waits past those 30 s.)
#[tokio::test]
async fn an_http1_keep_alive_connection_stays_open_until_the_idle_timeout() {
    let server = TestServer::start(timeouts("5m", "1m")).await;
    let mut tls = raw::h1_client(&server).tls(server.addr, None).await.unwrap();
    assert_eq!(exchange(&mut tls, &get_metadata("")).await.status, 200);
    tokio::time::sleep(Duration::from_secs(32)).await;
    let reply = exchange(&mut tls, &get_metadata("")).await;
    assert_eq!(reply.status, 200, "still open after 32 s idle: {}", reply.head);
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(timeouts("5m", "1s")).await;
    let tls = raw::h2_client(&server).tls(server.addr, None).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let reply = Reply::read(send.send_request(Bars::default().get("/metadata")).await.unwrap()).await;
    assert_eq!(reply.status, 200);
    let ended = tokio::time::timeout(CLOSE_BOUND, conn).await;
    assert!(
        ended.is_ok(),
        "an h2 connection without a stream is closed after listen.idle_timeout"
    );
}

/// Answers messages after a pause longer than the connection timeouts of these tests.
struct Slow(Duration);
impl MessagingHandler for Slow {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        tokio::time::sleep(self.0).await;
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

#[tokio::test]
async fn a_connection_in_use_is_not_closed() {
    let server = TestServer::start_with(timeouts("1s", "1s"), |_| {
        Handlers::new(Arc::new(Slow(Duration::from_millis(1500))))
    })
    .await;
    let tls = raw::h1_client(&server).tls(server.addr, None).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    // A first request that takes longer than both timeouts.
    let slow = send
        .send_request(Bars::default().message(minimal_message().to_string()))
        .await
        .expect("a request in flight is not cut");
    assert_eq!(Reply::read(slow).await.status, 200);
    // Then requests more often than the idle timeout, for longer than it.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        send.ready()
            .await
            .unwrap_or_else(|e| panic!("request {i}: the connection closed: {e}"));
        let reply = send.send_request(Bars::default().get("/metadata")).await.unwrap();
        assert_eq!(Reply::read(reply).await.status, 200, "request {i}");
    }
    assert!(!conn.is_finished(), "the same connection served every request");
    assert_eq!(server.stats.admitted(), 1);
}

/// `GET /metadata` with one header line of `size` bytes of value.
fn with_big_header(size: usize) -> Vec<u8> {
    get_metadata(&format!("X-Big: {}\r\n", "a".repeat(size)))
}

#[tokio::test]
async fn an_http1_request_head_over_the_limit_is_refused_with_431() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = raw::h1_client(&server);
    let mut tls = client.tls(server.addr, None).await.unwrap();
    let fits = exchange(&mut tls, &with_big_header(8 * 1024)).await;
    assert_eq!(fits.status, 200, "an 8 KiB header is within the default 16 KiB");
    for size in [17 * 1024, 64 * 1024, 500 * 1024] {
        let mut tls = client.tls(server.addr, None).await.unwrap();
        let reply = exchange(&mut tls, &with_big_header(size)).await;
        assert_eq!(reply.status, 431, "a {size}-byte header line: {}", reply.head);
    }
}

async fn curl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    crate::common::output_text(&out)
}

#[tokio::test]
async fn one_header_limit_applies_to_http1_and_h2() {
    let server = TestServer::start(ServerOptions {
        http_extra: "max_header_bytes = \"32KiB\"".into(),
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cert, key, ca) = (
        file("client.pem", &server.pki.client.pem),
        file("client.key", &server.pki.client.key_pem),
        file("root.pem", &server.pki.root.pem),
    );
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let url = format!("https://localhost:{}/metadata", server.addr.port());
    // Either side of the limit, and well over it: HTTP/1.1's limit is exact, not where
    // hyper's read buffer happens to fill.
    for (size, expected) in [(31 * 1024, "200"), (33 * 1024, "431"), (40 * 1024, "431")] {
        let header = format!("X-Big: {}", "a".repeat(size));
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let args = [
                "--cacert",
                &ca,
                "--cert",
                &cert,
                "--key",
                &key,
                "--resolve",
                &resolve,
                flag,
                "-H",
                &header,
                &url,
            ];
            let out = curl(&args).await;
            assert!(
                out.starts_with(&format!("{expected} {version}")),
                "a {size}-byte header over HTTP/{version} under a 32 KiB limit: {out}"
            );
        }
    }
}

#[tokio::test]
async fn a_request_without_exactly_one_valid_host_is_refused_with_400() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = raw::h1_client(&server);
    let requests: [&[u8]; 3] = [
        b"GET /metadata HTTP/1.1\r\n\r\n",
        b"GET /metadata HTTP/1.1\r\nHost: localhost\r\nHost: elsewhere.example\r\n\r\n",
        b"GET /metadata HTTP/1.1\r\nHost: someone@localhost\r\n\r\n",
    ];
    for request in requests {
        let mut tls = client.tls(server.addr, None).await.unwrap();
        let reply = exchange(&mut tls, request).await;
        let text = String::from_utf8_lossy(request);
        assert_eq!(reply.status, 400, "{text}: {}", reply.head);
        assert_eq!(reply.rec_code(), "REC_BAD_REQUEST", "{text}");
        assert_eq!(reply.header("connection"), Some("close"), "{text}");
        assert!(
            closed_within(&mut tls, CLOSE_BOUND).await,
            "{text}: closed after the refusal"
        );
    }
    let mut tls = client.tls(server.addr, None).await.unwrap();
    let one = exchange(
        &mut tls,
        b"GET /metadata HTTP/1.1\r\nHost: localhost:8443\r\n\r\n",
    )
    .await;
    assert_eq!(one.status, 200, "one valid Host is served");
}

/// A `POST /$process-message` head with every BaRS header, over HTTP/1.1.
fn message_head(transfer_encoding: &str) -> String {
    let request = Bars::default().message(bytes::Bytes::new()).map(|_| ());
    let mut head = String::from("POST /$process-message HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str(&format!("Transfer-Encoding: {transfer_encoding}\r\n\r\n"));
    head
}

/// `body` as one chunk and the last chunk.
fn chunked(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_refused_with_501_and_nothing_is_stored() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = raw::h1_client(&server);
    let body = minimal_message().to_string();
    for coding in ["gzip, chunked", "deflate, chunked"] {
        let mut tls = client.tls(server.addr, None).await.unwrap();
        let request = format!("{}{}", message_head(coding), chunked(&body));
        let reply = exchange(&mut tls, request.as_bytes()).await;
        assert_eq!(reply.status, 501, "Transfer-Encoding: {coding}: {}", reply.head);
        assert_eq!(reply.rec_code(), "REC_NOT_IMPLEMENTED");
        assert_eq!(reply.header("connection"), Some("close"));
    }
    // Without chunked last the body has no framing at all: hyper refuses it (RFC 9112 §6.3).
    let mut tls = client.tls(server.addr, None).await.unwrap();
    let request = format!("{}{body}", message_head("gzip"));
    assert_eq!(exchange(&mut tls, request.as_bytes()).await.status, 400);
    assert_eq!(server.inbox_count(), 0, "nothing stored");
    let mut tls = client.tls(server.addr, None).await.unwrap();
    let request = format!("{}{}", message_head("chunked"), chunked(&body));
    let reply = exchange(&mut tls, request.as_bytes()).await;
    assert_eq!(
        reply.status,
        200,
        "plain chunked is served: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(server.inbox_count(), 1);
}
