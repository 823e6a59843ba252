//! Building HTTP responses: FHIR JSON bodies, OperationOutcome errors, replays.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::fhir::RecError;
use crate::handler::{FhirResponse, HandlerResult};

const FHIR_JSON_UTF8: &str = "application/fhir+json; charset=utf-8";

/// A FHIR JSON response.
pub(crate) fn fhir(status: u16, body: &Value) -> Response {
    raw(status, body.to_string())
}

/// A response sending FHIR JSON text serialised once and shared (the CapabilityStatement).
pub(crate) fn fhir_text(status: u16, text: Bytes) -> Response {
    with_body(status, Body::from(text))
}

/// A response with a body that is already FHIR JSON text.
pub(crate) fn raw(status: u16, body: String) -> Response {
    with_body(status, Body::from(body))
}

/// A response sending JSON text that is shared with others holding it (a message echoed as
/// received): no copy of it is made.
fn shared_text(status: u16, text: Arc<str>) -> Response {
    with_body(status, Body::from(Bytes::from_owner(SharedText(text))))
}

struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn with_body(status: u16, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON_UTF8));
    // Bodies may carry patient data: nothing on the way may keep a copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An OperationOutcome for `error`.
pub(crate) fn error(error: &RecError) -> Response {
    raw(error.status(), error.to_operation_outcome_text())
}

/// 405 with `Allow`.
pub(crate) fn method_not_allowed(error: &RecError, allow: &str) -> Response {
    let mut response = self::error(error);
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A handler's result.
pub(crate) fn from_result(result: &HandlerResult) -> Response {
    match result {
        Ok(ok) => success(ok),
        Err(e) => error(e),
    }
}

fn success(ok: &FhirResponse) -> Response {
    // `null` is never a FHIR resource: it stands for "no body" (a relayed 204, say).
    let mut response = match ok.json_text() {
        Some(text) => shared_text(ok.status, text.clone()),
        None if ok.body.is_null() => raw(ok.status, String::new()),
        None => fhir(ok.status, &ok.body),
    };
    if let Some(location) = ok.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
