//! The admin listener: plain HTTP, meant for loopback or the pod network only.
//! `/healthz` (the process is alive), `/readyz` (serving, TLS material valid, inbox
//! writable) and `/metrics` (OpenMetrics text).

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

async fn ready(State(r): State<Arc<Readiness>>) -> Response {
    let serving = r.serving.load(Ordering::Acquire);
    let not_after = r.admission.server_not_after();
    let tls_valid = not_after > time::OffsetDateTime::now_utc();
    let store_writable = r.store.ping().await.is_ok();
    let ready = serving && tls_valid && store_writable;
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

async fn metrics(State(r): State<Arc<Readiness>>) -> Response {
    if let Ok(count) = r.store.count().await {
        r.metrics
            .inbox_messages
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    if let Ok(backlog) = r.store.delivery_backlog().await {
        r.metrics.observe_backlog(&backlog);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        r.metrics.encode(),
    )
        .into_response()
}
