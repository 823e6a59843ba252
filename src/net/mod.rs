//! The network front: the accept loop with its connection cap, the source-IP allowlist
//! (before any TLS work), the per-connection handshake, and graceful drain on shutdown.

mod admission;
mod allowlist;
mod conn;
mod loglimit;
mod proxy;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub(crate) use admission::{Admission, AdmissionError, AdmissionHolder, build_admission};
pub use allowlist::Allowlist;
pub(crate) use allowlist::{canonical, parse_source};
pub use proxy::ProxyPolicy;

use crate::admin::Metrics;
use crate::tls::{PRESENTED, RefusalReason};

/// Everything a connection task needs.
pub(crate) struct Frontend {
    pub(crate) admission: Arc<AdmissionHolder>,
    pub(crate) handshake_timeout: Duration,
    /// Admitted connections are closed gracefully after this long, so that every caller is
    /// re-admitted against the current material (a revocation or pin change reaches
    /// long-lived connections too).
    pub(crate) max_connection_age: Duration,
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

/// Accepts until `shutdown` resolves, then stops accepting and lets open connections finish
/// their in-flight requests for up to `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    max_connections: usize,
    grace: Duration,
    serving: &AtomicBool,
    shutdown: impl Future<Output = ()>,
) {
    serving.store(true, Ordering::Release);
    let (drain, draining) = watch::channel(false);
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
        frontend.stats.connections_accepted.inc();
        let admission = frontend.admission.current();
        let via_proxy = admission.proxy.trusts(addr.ip());
        // Direct connections are checked here, before any work at all; connections from a
        // trusted load balancer once their PROXY header has said who the client is.
        if !via_proxy && !admission.allowlist.allows(addr.ip()) {
            tracing::info_span!("conn", peer = %addr)
                .in_scope(|| frontend.refuse(RefusalReason::SourceNotAllowed, None));
            drop(stream);
            continue;
        }
        tokio::spawn(conn::handle(
            stream,
            addr,
            via_proxy,
            admission,
            frontend.clone(),
            permit,
            draining.clone(),
        ));
    }
    serving.store(false, Ordering::Release);
    drop(listener);
    tracing::info!(
        open = frontend.stats.active(),
        "stopped accepting; draining in-flight requests"
    );
    let _ = drain.send(true);
    // Every connection task holds a slot until it ends: all slots back means all drained.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; closing remaining connections"
        );
    }
}
