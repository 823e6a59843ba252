//! The network front: the accept loop with its connection cap, the source-IP allowlist
//! (before any TLS work), the per-connection handshake, and graceful drain on shutdown.

mod allowlist;
mod conn;
mod loglimit;
mod stats;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use allowlist::Allowlist;
pub(crate) use allowlist::parse_source;
pub use stats::ConnectionStats;

use crate::tls::RefusalReason;

/// The TLS configuration new connections use; replaced whole on reload, so open
/// connections keep the one they started with.
#[derive(Debug)]
pub(crate) struct TlsHolder(RwLock<Arc<ServerConfig>>);

impl TlsHolder {
    /// Holds `config`.
    pub(crate) fn new(config: Arc<ServerConfig>) -> Self {
        Self(RwLock::new(config))
    }

    /// The configuration for a new connection.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked mid-swap; the value is a whole Arc either way.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Everything a connection task needs.
pub(crate) struct Frontend {
    pub(crate) allowlist: Allowlist,
    pub(crate) handshake_timeout: Duration,
    pub(crate) tls: Arc<TlsHolder>,
    pub(crate) app: axum::Router,
    pub(crate) stats: Arc<ConnectionStats>,
    pub(crate) log_limit: loglimit::LogLimit,
}

/// Accepts until `shutdown` resolves, then stops accepting and lets open connections finish
/// their in-flight requests for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    max_connections: usize,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin; never end the loop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        frontend.stats.count_accepted();
        if !frontend.allowlist.allows(addr.ip()) {
            let reason = RefusalReason::SourceNotAllowed;
            frontend.stats.count_refused(reason);
            if let Some(suppressed) = frontend.log_limit.admit() {
                tracing::warn!(peer = %addr, reason = reason.as_str(), suppressed, "connection refused: {}", reason.explain());
            }
            drop(stream);
            continue;
        }
        tokio::spawn(conn::handle(
            stream,
            addr,
            frontend.clone(),
            permit,
            graceful.watcher(),
        ));
    }
    drop(listener);
    tracing::info!(
        open = frontend.stats.active(),
        "stopped accepting; draining in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; closing remaining connections"
        );
    }
}
