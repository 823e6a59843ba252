//! The admin listener: plain HTTP, meant for loopback or the pod network only.
//! `/healthz` (the process is alive), `/readyz` (serving, TLS material valid, inbox
//! writable) and `/metrics` (OpenMetrics or Prometheus 0.0.4 text, by `Accept`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde_json::json;
use tokio::net::TcpListener;

use super::Metrics;
use super::exposition::Format;
use crate::store::Store;

/// When the TLS material in force stops being valid. The network front implements it for
/// its admission material: the network front counts into this module's metrics, so this
/// module must not use the network front back.
pub(crate) trait MaterialExpiry: Send + Sync {
    /// The server certificate's expiry.
    fn server_not_after(&self) -> time::OffsetDateTime;
}

/// What readiness is made of.
pub(crate) struct Readiness {
    /// Set while the TLS listener accepts; cleared when shutdown begins, so that load
    /// balancers stop sending traffic during the drain.
    pub(crate) serving: AtomicBool,
    pub(crate) admission: Arc<dyn MaterialExpiry>,
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub(crate) async fn serve_admin(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readiness);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// What `/readyz` checks, and the `ready` gauge reports.
struct Checks {
    serving: bool,
    tls_valid: bool,
    store_writable: bool,
}

impl Checks {
    async fn run(r: &Readiness) -> Self {
        Self {
            serving: r.serving.load(Ordering::Acquire),
            tls_valid: r.admission.server_not_after() > time::OffsetDateTime::now_utc(),
            store_writable: r.store.ping().await.is_ok(),
        }
    }

    fn ready(&self) -> bool {
        self.serving && self.tls_valid && self.store_writable
    }
}

async fn ready(State(r): State<Arc<Readiness>>) -> Response {
    let checks = Checks::run(&r).await;
    let Checks {
        serving,
        tls_valid,
        store_writable,
    } = checks;
    let ready = checks.ready();
    let body = json!({
        "ready": ready,
        "checks": {"serving": serving, "tls_material_valid": tls_valid, "inbox_writable": store_writable},
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn metrics(State(r): State<Arc<Readiness>>, headers: http::HeaderMap) -> Response {
    if let Ok(count) = r.store.count().await {
        r.metrics
            .inbox_messages
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    if let Ok(backlog) = r.store.delivery_backlog().await {
        r.metrics.observe_backlog(&backlog);
    }
    r.metrics.ready.set(i64::from(Checks::run(&r).await.ready()));
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = match format {
        Format::OpenMetrics => r.metrics.encode(),
        Format::PrometheusText => r.metrics.encode_prometheus_text(),
    };
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            // Caches keep one answer per format.
            (header::VARY, "accept"),
        ],
        body,
    )
        .into_response()
}
