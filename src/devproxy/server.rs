//! The dev proxy's HTTPS front: server-authenticated TLS (no client certificate: senders
//! authenticate with API-M tokens), HTTP/1.1 or h2 by ALPN, routing to the token endpoint
//! and the BaRS API, and a graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use super::api::{API_BASE_PATH, Api, ApiRequest, Reply};
use super::forward::MAX_BODY;
use super::outcome::ProxyOutcome;
use super::token::TokenService;
use crate::net::{Connections, Slot};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/token";

/// A sender has this long to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once: the receiver's default `listen.max_connections`, far beyond
/// what local senders open.
const MAX_CONNECTIONS: usize = 10_000;
/// The largest token request read.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) tokens: TokenService,
    pub(super) api: Api,
}

/// Accepts until `shutdown` resolves, then lets open connections finish for up to `grace`.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let connections = Connections::new(MAX_CONNECTIONS);
    connections
        .accept(listener, shutdown, |stream, peer, slot| {
            let connection = connection(acceptor.clone(), stream, peer, shared.clone(), slot);
            Some(connection.instrument(tracing::info_span!("sender", peer = %peer)))
        })
        .await;
    tracing::info!("dev proxy stopped accepting; draining in-flight requests");
    connections.drain(grace).await;
}

/// One sender's connection: the TLS handshake under a timeout, then HTTP/1.1 or h2 by ALPN.
async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: Slot,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::info!(error = %e, "TLS handshake failed"),
        Err(_) => return tracing::info!("TLS handshake timed out"),
    };
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&shared, request, peer).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service).into_owned();
    tokio::pin!(conn);
    if let Err(e) = slot.serve(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn route(shared: &Shared, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path == TOKEN_PATH {
        if parts.method != Method::POST {
            let mut reply = Reply::json(
                405,
                &serde_json::json!({"error": "invalid_request", "error_description": "Use POST"}),
            );
            reply
                .headers
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response(reply);
        }
        let Some(body) = read_body(body, MAX_TOKEN_REQUEST).await else {
            return response(Reply::json(
                400,
                &serde_json::json!({"error": "invalid_request", "error_description": "Request body too large"}),
            ));
        };
        let (status, json) = shared.tokens.exchange(&body);
        let mut reply = Reply::json(status, &json);
        reply
            .headers
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response(reply);
    }
    let Some(suffix) = path.strip_prefix(API_BASE_PATH).filter(|s| s.starts_with('/')) else {
        return response(Reply::outcome(ProxyOutcome::PageNotFound, &parts.headers));
    };
    if suffix == "/_ping" {
        return response(Reply::json(200, &serde_json::json!({"status": "pass"})));
    }
    let Some(body) = read_body(body, MAX_BODY).await else {
        return response(Reply::outcome(ProxyOutcome::TooLarge, &parts.headers));
    };
    tracing::debug!(%peer, method = %parts.method, path = %suffix, "BaRS API request");
    let reply = shared
        .api
        .handle(
            &shared.tokens,
            ApiRequest {
                method: &parts.method,
                suffix,
                query: parts.uri.query(),
                headers: &parts.headers,
                body,
            },
        )
        .await;
    response(reply)
}

/// The whole body, or `None` past `limit` (or when the upload broke off).
async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = reply.headers;
    response
}
