//! One connection: a plain-HTTP probe, the mutual-TLS handshake under a timeout, the peer
//! identity taken from the session, then HTTP/1.1 or h2 (by ALPN, `protocol.rs`) until it closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;
use tracing::Instrument;

use super::accept::Graceful;
use super::activity::Activity;
use super::protocol::{self, Protocol};
use super::{Admission, Frontend, Slot, canonical, proxy};
use crate::tls::{PRESENTED, PeerIdentity, RefusalReason};

/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain-HTTP client is told before the connection closes.
const PLAIN_HTTP_BODY: &str = "This port requires TLS with a client certificate (mutual TLS).\n";

pub(super) async fn handle(
    stream: TcpStream,
    tcp_peer: SocketAddr,
    via_proxy: bool,
    admission: Arc<Admission>,
    frontend: Arc<Frontend>,
    slot: Slot,
) {
    let span = tracing::info_span!(
        "conn",
        peer = %tcp_peer,
        via = tracing::field::Empty,
        client = tracing::field::Empty,
        client_subject = tracing::field::Empty,
        client_issuer = tracing::field::Empty,
    );
    let connection = async move {
        let _active = frontend.stats.open();
        // Boxed: the handshake's state (the TLS session while it is set up, the parse of the
        // client certificate) is freed once the connection is admitted, rather than kept in
        // the task's allocation for as long as the connection lives.
        let Some((mut conn, activity)) =
            Box::pin(admit_http(stream, tcp_peer, via_proxy, &admission, &frontend)).await
        else {
            return;
        };
        if let Err(e) = slot
            .serve_admitted(std::pin::Pin::new(&mut conn), frontend.lifetime, &activity)
            .await
        {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
    .instrument(span);
    PRESENTED.scope(std::cell::RefCell::new(None), connection).await;
}

/// Admits a connection (see [`admit`]) and takes the peer's identity from its session;
/// returns the HTTP connection to serve, on the heap (the task keeps only the pointer while
/// the connection lives), with its activity. `None` when it was refused (and counted).
async fn admit_http(
    stream: TcpStream,
    tcp_peer: SocketAddr,
    via_proxy: bool,
    admission: &Admission,
    frontend: &Frontend,
) -> Option<(impl Graceful<Error = hyper::Error> + Unpin, Activity)> {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    // Everything before HTTP (PROXY header, allowlist, TLS) shares the handshake timeout.
    let handshake = tokio::time::timeout(
        frontend.handshake_timeout,
        admit(stream, tcp_peer, via_proxy, admission),
    )
    .await;
    let refused = |reason| {
        frontend.refuse(reason, Some(started));
        None
    };
    let (tls, peer_addr) = match handshake {
        Err(_) => return refused(RefusalReason::HandshakeTimeout),
        Ok(Err(reason)) => return refused(reason),
        Ok(Ok(admitted)) => admitted,
    };
    let Some(peer) = peer_identity(&tls, peer_addr).map(Arc::new) else {
        return refused(RefusalReason::BadCertificate);
    };
    tracing::Span::current().record("client", peer.display_name());
    frontend.stats.connections_admitted.inc();
    frontend
        .stats
        .handshake_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(
        handshake_ms = started.elapsed().as_millis() as u64,
        fingerprint = %peer.sha256_fingerprint,
        "connection admitted"
    );
    let activity = Activity::new();
    let service = service(frontend.app.clone(), peer, activity.clone());
    let protocol = Protocol::from_alpn(tls.get_ref().1.alpn_protocol());
    let conn = protocol::serve(
        protocol,
        TokioIo::new(tls),
        service,
        SpanExecutor(tracing::Span::current()),
        frontend.max_header_bytes,
    );
    Some((conn, activity))
}

type Admitted = (tokio_rustls::server::TlsStream<TcpStream>, SocketAddr);

/// Everything before HTTP: the PROXY header from a trusted load balancer (then the
/// allowlist on the address it carries), the plain-HTTP probe, and the TLS handshake.
async fn admit(
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    via_proxy: bool,
    admission: &Admission,
) -> Result<Admitted, RefusalReason> {
    let peer = if via_proxy {
        let client = match proxy::read_header(&mut stream).await {
            Ok(Some(client)) => client,
            // LOCAL/UNKNOWN: the balancer speaking for itself (health checks).
            Ok(None) => tcp_peer,
            Err(e) => {
                tracing::debug!(error = %e, "PROXY header refused");
                return Err(RefusalReason::ProxyHeader);
            }
        };
        let span = tracing::Span::current();
        span.record("peer", tracing::field::display(client));
        span.record("via", tracing::field::display(tcp_peer));
        if !admission.allowlist.allows(client.ip()) {
            return Err(RefusalReason::SourceNotAllowed);
        }
        client
    } else {
        tcp_peer
    };
    let tls = handshake(stream, admission).await?;
    Ok((tls, peer))
}

/// Probes for plain HTTP (answering it with a one-line explanation) and for a PROXY header
/// from an untrusted address, then runs the TLS handshake.
async fn handshake(
    mut stream: TcpStream,
    admission: &Admission,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, RefusalReason> {
    let mut first = [0u8; 12];
    match stream.peek(&mut first).await {
        Ok(0) | Err(_) => return Err(RefusalReason::ConnectionFailed),
        Ok(n) if proxy::looks_like_proxy_header(&first[..n]) => return Err(RefusalReason::ProxyHeader),
        Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
            if first[0].is_ascii_uppercase() {
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{PLAIN_HTTP_BODY}",
                    PLAIN_HTTP_BODY.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            return Err(RefusalReason::NotTls);
        }
        Ok(_) => {}
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(admission.tls.clone());
    acceptor
        .accept(stream)
        .await
        .map_err(|e| RefusalReason::from_handshake_error(&e))
}

/// The router as the connection serves it: the peer identity attached to every request, and
/// each request counted in `activity` until its response body is done.
fn service(
    app: axum::Router,
    peer: Arc<PeerIdentity>,
    activity: Activity,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<axum::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<axum::body::Body>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let in_flight = activity.begin();
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await?;
            Ok(response.map(|body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    // Dropped with the body: once hyper has sent it all, or given up on it.
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    })
}

/// The verified peer. The verifier parsed the client certificate during this handshake (and
/// kept its parse in `PRESENTED`), so that parse is taken, once its fingerprint shows it is
/// the session's certificate; a resumed session, which is not verified again, parses it here.
fn peer_identity(tls: &tokio_rustls::server::TlsStream<TcpStream>, addr: SocketAddr) -> Option<PeerIdentity> {
    let (_, session) = tls.get_ref();
    let cert = session.peer_certificates()?.first()?;
    let source = canonical(addr.ip());
    let verified = PRESENTED
        .try_with(|presented| presented.borrow_mut().take())
        .ok()
        .flatten()
        .filter(|info| info.is_of(cert));
    match verified {
        Some(info) => Some(PeerIdentity::from_info(info, source)),
        None => PeerIdentity::from_certificate(cert, source).ok(),
    }
}

/// Spawns h2 stream tasks inside the connection's span, so request logs carry the peer.
#[derive(Clone)]
struct SpanExecutor(tracing::Span);

impl<F> hyper::rt::Executor<F> for SpanExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future.instrument(self.0.clone()));
    }
}
