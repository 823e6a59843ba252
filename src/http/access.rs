//! Echoes `X-Request-Id` and `X-Correlation-Id` on every response, errors included, and
//! writes one access line per request (ids, method, path, status, duration; never the query,
//! which can carry an NHS number, nor any body).

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::fhir::{X_CORRELATION_ID, X_REQUEST_ID};

pub(crate) async fn echo_ids_and_log(req: Request, next: Next) -> Response {
    let request_id = req.headers().get(X_REQUEST_ID).cloned();
    let correlation_id = req.headers().get(X_CORRELATION_ID).cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let version = req.version();
    let started = Instant::now();

    let mut response = next.run(req).await;

    let headers = response.headers_mut();
    if let Some(v) = &request_id {
        headers.insert(X_REQUEST_ID, v.clone());
    }
    if let Some(v) = &correlation_id {
        headers.insert(X_CORRELATION_ID, v.clone());
    }
    let show =
        |v: &Option<http::HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    tracing::info!(
        request_id = %show(&request_id),
        correlation_id = %show(&correlation_id),
        method = %method,
        path = %path,
        http = ?version,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
