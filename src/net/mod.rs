//! The network front: the accept loop with its connection cap, the source-IP allowlist
//! (before any TLS work), the per-connection handshake, and graceful drain on shutdown.

mod accept;
mod activity;
mod admission;
mod allowlist;
mod conn;
mod loglimit;
mod protocol;
mod proxy;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

pub(crate) use accept::{Connections, Lifetime, Slot};
pub use admission::AdmissionError;
pub(crate) use admission::{Admission, AdmissionHolder, build_admission};
pub use allowlist::Allowlist;
pub(crate) use allowlist::{canonical, parse_source};
pub use proxy::ProxyPolicy;
#[cfg(feature = "fuzzing")]
pub(crate) use proxy::read_header as read_proxy_header;

use crate::admin::Metrics;
use crate::tasks::TaskTracker;
use crate::tls::{PRESENTED, RefusalReason};

/// Everything a connection task needs.
pub(crate) struct Frontend {
    pub(crate) admission: Arc<AdmissionHolder>,
    pub(crate) handshake_timeout: Duration,
    /// Admitted connections are closed gracefully after their `max_age`, so that every
    /// caller is re-admitted against the current material (a revocation or pin change
    /// reaches long-lived connections too), and closed when they idle.
    pub(crate) lifetime: Lifetime,
    /// The largest request head, HTTP/1.1 and h2 alike.
    pub(crate) max_header_bytes: usize,
    pub(crate) app: axum::Router,
    pub(crate) stats: Arc<Metrics>,
    pub(crate) log_limit: loglimit::LogLimit,
}

impl Frontend {
    /// Counts a refused connection and logs one line (sampled under floods) naming the
    /// reason; the current span carries the peer.
    pub(crate) fn refuse(&self, reason: RefusalReason, started: Option<std::time::Instant>) {
        self.stats.count_refused(reason);
        if let Some(suppressed) = self.log_limit.admit() {
            let after_ms = started.map(|s| s.elapsed().as_millis() as u64);
            let presented = PRESENTED.try_with(|p| p.borrow().clone()).ok().flatten();
            let why = reason.describe(presented.as_ref());
            tracing::warn!(
                reason = reason.as_str(),
                after_ms,
                suppressed,
                "connection refused: {why}"
            );
        }
    }
}

/// Accepts until `shutdown` resolves, then stops accepting (clearing `serving`, which the
/// caller set when it announced the listener) and lets open connections and the `tasks` they
/// started (handlers outliving their requests) finish for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    max_connections: usize,
    grace: Duration,
    serving: &AtomicBool,
    tasks: &TaskTracker,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Connections::new(max_connections);
    connections
        .accept(listener, shutdown, |stream, addr, slot| {
            frontend.stats.connections_accepted.inc();
            let admission = frontend.admission.current();
            let via_proxy = admission.proxy.trusts(addr.ip());
            // Direct connections are checked here, before any work at all; connections from a
            // trusted load balancer once their PROXY header has said who the client is.
            if !via_proxy && !admission.allowlist.allows(addr.ip()) {
                tracing::info_span!("conn", peer = %addr)
                    .in_scope(|| frontend.refuse(RefusalReason::SourceNotAllowed, None));
                return None;
            }
            Some(conn::handle(
                stream,
                addr,
                via_proxy,
                admission,
                frontend.clone(),
                slot,
            ))
        })
        .await;
    serving.store(false, Ordering::Release);
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        open = frontend.stats.active(),
        handlers = tasks.running(),
        "stopped accepting; draining in-flight requests"
    );
    connections.drain(grace).await;
    if tokio::time::timeout_at(deadline, tasks.idle()).await.is_err() {
        tracing::warn!(
            running = tasks.running(),
            grace_secs = grace.as_secs(),
            "grace period over with handlers still running; they are stopped with the process"
        );
    }
}
