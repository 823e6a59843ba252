//! Echoes `X-Request-Id` and `X-Correlation-Id` on every response, errors included, and
//! writes one access line per request (ids, method, path, status, duration; never the query,
//! which can carry an NHS number, nor any body).

use std::time::Instant;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::pipeline::RouteName;
use crate::admin::{Metrics, RequestLabels, RouteLabel};
use crate::fhir::{X_CORRELATION_ID_NAME, X_REQUEST_ID_NAME};

pub(crate) async fn echo_ids_and_log(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let request_id = req.headers().get(X_REQUEST_ID_NAME).cloned();
    let correlation_id = req.headers().get(X_CORRELATION_ID_NAME).cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let version = req.version();
    let started = Instant::now();

    let mut response = next.run(req).await;

    let headers = response.headers_mut();
    if let Some(v) = &request_id {
        headers.insert(X_REQUEST_ID_NAME, v.clone());
    }
    if let Some(v) = &correlation_id {
        headers.insert(X_CORRELATION_ID_NAME, v.clone());
    }
    let show =
        |v: &Option<http::HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let route = response
        .extensions()
        .get::<RouteName>()
        .map_or("unmatched", |r| r.0);
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    metrics
        .request_seconds
        .get_or_create(&RouteLabel { route })
        .observe(elapsed);
    tracing::info!(
        request_id = %show(&request_id),
        correlation_id = %show(&correlation_id),
        method = %method,
        path = %path,
        route,
        http = ?version,
        status,
        duration_ms = elapsed * 1000.0,
        "request"
    );
    response
}
