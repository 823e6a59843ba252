//! The built-in `forward` handler: every accepted request goes to the provider's own system
//! (the upstream) with the same method, path suffix, query and body, and its answer comes
//! back with the BaRS ids re-echoed. Built on the public handler traits only.
//!
//! The upstream's 2xx bodies and its `REC_` OperationOutcomes reach the sender byte for byte
//! with their status. Otherwise: a 504 is 408 `REC_TIMEOUT`; an error without a `REC_`
//! OperationOutcome gets the `REC_` code of its status (503 `REC_SERVICE_UNAVAILABLE`, other
//! 5xx 500 `REC_SERVER_ERROR`); no answer (refused, reset, TLS failure) is 503; no answer
//! within `upstream.timeout` is 408; a body over `upstream.max_response_body` is 500, never
//! a truncated body.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::outbound::outbound_headers;
use super::{
    CreateHandler, DeleteHandler, FhirResponse, HandlerResult, Handlers, MessagingHandler, PatchHandler,
    ReadHandler, RequestContext, ResourceHandlers, SearchHandler, SearchParams, SlotHandler, SlotQuery,
    UpdateHandler,
};
use crate::config::UpstreamInteractions;
use crate::fhir::{Interaction, IssueType, MessageBundle, RecCode, RecError, ResourceType};
use crate::upstream::{Exchange, Outbound, Upstream};

/// Forwards requests to an [`Upstream`] and relays its answers.
#[derive(Debug, Clone)]
pub struct ForwardHandler {
    upstream: Upstream,
}

impl ForwardHandler {
    /// A forwarder to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    /// Handlers with every BaRS route forwarded: messaging, slots, and every Appointment and
    /// ServiceRequest interaction. (`/metadata` and `/MessageDefinition` are answered by the
    /// receiver itself.)
    pub fn handlers(self) -> Handlers {
        self.handlers_for(&UpstreamInteractions::all())
    }

    /// Handlers forwarding messages and the interactions the upstream implements
    /// (`upstream.interactions`); every other one is left unregistered, so that it answers
    /// 501 and the CapabilityStatement does not list it.
    pub fn handlers_for(self, implemented: &UpstreamInteractions) -> Handlers {
        let this = Arc::new(self);
        let resource = |ty: ResourceType| {
            let mut r = ResourceHandlers::new();
            if implemented.contains(Interaction::Read(ty)) {
                r = r.read(this.clone());
            }
            if implemented.contains(Interaction::Search(ty)) {
                r = r.search(this.clone(), []);
            }
            if implemented.contains(Interaction::Create(ty)) {
                r = r.create(this.clone());
            }
            if implemented.contains(Interaction::Update(ty)) {
                r = r.update(this.clone());
            }
            if implemented.contains(Interaction::Patch(ty)) {
                r = r.patch(this.clone());
            }
            if implemented.contains(Interaction::Delete(ty)) {
                r = r.delete(this.clone());
            }
            r
        };
        let mut handlers = Handlers::new(this.clone())
            .with_appointments(resource(ResourceType::Appointment))
            .with_service_requests(resource(ResourceType::ServiceRequest));
        if implemented.contains(Interaction::SearchSlots) {
            handlers = handlers.with_slots(this.clone());
        }
        handlers
    }

    /// Forwards the request in `ctx`; `fallback_body` is used when the context does not
    /// carry the body as received.
    async fn forward(
        &self,
        ctx: &RequestContext,
        method: Method,
        fallback_body: Option<String>,
    ) -> HandlerResult {
        if ctx.path.is_empty() {
            tracing::error!(request_id = %ctx.request_id, "forward: the request context has no path");
            return Err(RecError::server_error(
                "An unexpected error occurred at the receiver.",
            ));
        }
        let body = match (&ctx.body, fallback_body) {
            (Some(text), _) => Bytes::from_owner(ArcText(text.clone())),
            (None, Some(text)) => Bytes::from(text),
            (None, None) => Bytes::new(),
        };
        let headers = outbound_headers(ctx);
        let sent = self
            .upstream
            .send(Outbound {
                method,
                path: &ctx.path,
                query: ctx.query.as_deref(),
                headers: &headers,
                body,
            })
            .await;
        match sent {
            Ok(reply) => answer(reply.status, &reply.headers, &reply.body, ctx),
            Err(e) => Err(failure(&e, ctx)),
        }
    }
}

/// Shares the received body with the outgoing request without copying it.
struct ArcText(Arc<str>);

impl AsRef<[u8]> for ArcText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The upstream's answer as the handler's result. What the provider's system said reaches
/// the sender as it said it: a 2xx body and an OperationOutcome carrying a `REC_` code are
/// relayed byte for byte with their status. Only answers without such an OperationOutcome
/// are mapped (by status), and a 504 is the 408 `REC_TIMEOUT` BaRS senders expect.
fn answer(status: u16, headers: &http::HeaderMap, body: &Bytes, ctx: &RequestContext) -> HandlerResult {
    let log = |what: &str| {
        tracing::warn!(request_id = %ctx.request_id, upstream_status = status, "{what}");
    };
    match status {
        200..=299 => success(status, headers, body).ok_or_else(|| {
            log("upstream answered success with a body that is not JSON");
            RecError::server_error("The receiver's system answered with a body that is not FHIR JSON.")
        }),
        // A gateway timeout behind the receiver is a timeout to the sender, as the BaRS proxy
        // makes of a receiver's own 504: `408 REC_TIMEOUT`, whatever came with it.
        504 => {
            log("upstream answered 504 (gateway timeout)");
            Err(RecError::timeout(
                "The receiver's system did not answer in time. If this was a message, retry with the same X-Request-Id.",
            ))
        }
        400..=599 => {
            if matches!(status, 401 | 403) {
                // Relayed as said; but a provider's system refusing the receiver itself (its
                // client certificate, its address) looks the same, so say so to the operator.
                log(
                    "upstream answered 401/403: relayed to the sender; if it refuses the receiver itself, check the upstream credentials",
                );
            }
            if let Some(relayed) = rec_outcome(status, body) {
                return Err(relayed);
            }
            log("upstream answered an error without a REC_ OperationOutcome");
            Err(bare_error(status))
        }
        _ => {
            log("upstream answered an unexpected status");
            Err(RecError::server_error(format!(
                "The receiver's system answered with unexpected HTTP status {status}."
            )))
        }
    }
}

/// A 2xx answer relayed: its status, its body byte for byte (never re-serialised), and its
/// `Location`. `None` when the body is neither empty nor JSON.
fn success(status: u16, headers: &http::HeaderMap, body: &Bytes) -> Option<FhirResponse> {
    let mut ok = if body.iter().all(u8::is_ascii_whitespace) {
        FhirResponse::relayed(status, Value::Null)
    } else {
        let text = std::str::from_utf8(body).ok()?;
        // Checked for well-formedness only: no tree of the body is built.
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        let mut ok = FhirResponse::ok_json_text(text);
        ok.status = status;
        ok
    };
    if let Some(location) = headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()) {
        ok = ok.with_location(location);
    }
    Some(ok)
}

/// An error body that is an OperationOutcome whose first issue carries a BaRS `REC_` code,
/// as a relayed error sending it byte for byte.
fn rec_outcome(status: u16, body: &Bytes) -> Option<RecError> {
    let text = std::str::from_utf8(body).ok()?;
    let outcome: Value = serde_json::from_str(text).ok()?;
    let codings = outcome["issue"][0]["details"]["coding"].as_array()?;
    let is_rec = codings.iter().any(|coding| {
        matches!(
            coding["system"].as_str(),
            Some(
                "https://fhir.nhs.uk/Codesystem/http-error-codes"
                    | "https://fhir.nhs.uk/CodeSystem/http-error-codes"
            )
        ) && coding["code"]
            .as_str()
            .is_some_and(|code| code.starts_with("REC_"))
    });
    if !is_rec {
        return None;
    }
    RecError::relayed_parsed(status, outcome, Arc::from(text))
}

/// An upstream 4xx/5xx that came without a `REC_` OperationOutcome, as a BaRS error.
fn bare_error(status: u16) -> RecError {
    let refused = |code, issue| {
        RecError::new(
            code,
            issue,
            format!("The receiver's system refused the request (HTTP {status})."),
        )
    };
    match RecCode::from_status(status) {
        Some(RecCode::BadRequest) => refused(RecCode::BadRequest, IssueType::Invalid),
        Some(RecCode::Unauthorized) => refused(RecCode::Unauthorized, IssueType::Forbidden),
        Some(RecCode::Forbidden) => refused(RecCode::Forbidden, IssueType::Forbidden),
        Some(RecCode::NotFound) => refused(RecCode::NotFound, IssueType::NotFound),
        Some(RecCode::MethodNotAllowed) => refused(RecCode::MethodNotAllowed, IssueType::NotSupported),
        Some(RecCode::NotAcceptable) => refused(RecCode::NotAcceptable, IssueType::Processing),
        Some(RecCode::Timeout) => refused(RecCode::Timeout, IssueType::Timeout),
        Some(RecCode::Conflict) => refused(RecCode::Conflict, IssueType::Conflict),
        Some(RecCode::PayloadTooLarge) => refused(RecCode::PayloadTooLarge, IssueType::TooCostly),
        Some(RecCode::UnsupportedMediaType) => {
            refused(RecCode::UnsupportedMediaType, IssueType::NotSupported)
        }
        Some(RecCode::UnprocessableEntity) => refused(RecCode::UnprocessableEntity, IssueType::Processing),
        Some(RecCode::TooEarly) => refused(RecCode::TooEarly, IssueType::Duplicate),
        Some(RecCode::TooManyRequests) => refused(RecCode::TooManyRequests, IssueType::Throttled),
        Some(RecCode::NotImplemented) => refused(RecCode::NotImplemented, IssueType::NotSupported),
        Some(RecCode::ServiceUnavailable) => {
            RecError::unavailable("The receiver's system is unavailable; retry later.")
        }
        // Every other 5xx without an OperationOutcome, and a 4xx BaRS has no code for, is
        // the receiver's failure.
        _ => RecError::server_error(format!(
            "The receiver's system failed to process the request (HTTP {status})."
        )),
    }
}

/// A failed exchange as a BaRS error.
fn failure(e: &Exchange, ctx: &RequestContext) -> RecError {
    match e {
        Exchange::Unreachable(why) => {
            tracing::error!(request_id = %ctx.request_id, error = %why, "upstream unreachable");
            RecError::unavailable("The receiver's system is unavailable; retry later.")
        }
        Exchange::Timeout => {
            tracing::warn!(request_id = %ctx.request_id, "upstream did not answer in time");
            RecError::timeout(
                "The receiver's system did not answer in time. If this was a message, retry with the same X-Request-Id.",
            )
        }
        Exchange::TooLarge { status, limit } => {
            tracing::error!(request_id = %ctx.request_id, upstream_status = status, limit, "upstream answer over upstream.max_response_body");
            RecError::server_error(
                "The receiver's system answered with a body larger than this receiver relays.",
            )
        }
    }
}

impl MessagingHandler for ForwardHandler {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        self.forward(ctx, Method::POST, Some(message.source.to_string()))
            .await
    }
}

impl SlotHandler for ForwardHandler {
    async fn search_slots(&self, ctx: &RequestContext, query: SlotQuery) -> HandlerResult {
        let _ = query;
        self.forward(ctx, Method::GET, None).await
    }
}

impl ReadHandler for ForwardHandler {
    async fn read(&self, ctx: &RequestContext, id: &str) -> HandlerResult {
        let _ = id;
        self.forward(ctx, Method::GET, None).await
    }
}

impl SearchHandler for ForwardHandler {
    async fn search(&self, ctx: &RequestContext, params: SearchParams) -> HandlerResult {
        let _ = params;
        self.forward(ctx, Method::GET, None).await
    }
}

impl CreateHandler for ForwardHandler {
    async fn create(&self, ctx: &RequestContext, resource: Value) -> HandlerResult {
        self.forward(ctx, Method::POST, Some(resource.to_string())).await
    }
}

impl UpdateHandler for ForwardHandler {
    async fn update(&self, ctx: &RequestContext, id: &str, resource: Value) -> HandlerResult {
        let _ = id;
        self.forward(ctx, Method::PUT, Some(resource.to_string())).await
    }
}

impl PatchHandler for ForwardHandler {
    async fn patch(&self, ctx: &RequestContext, id: &str, patch: Value) -> HandlerResult {
        let _ = id;
        self.forward(ctx, Method::PATCH, Some(patch.to_string())).await
    }
}

impl DeleteHandler for ForwardHandler {
    async fn delete(&self, ctx: &RequestContext, id: &str) -> HandlerResult {
        let _ = id;
        self.forward(ctx, Method::DELETE, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::for_tests()
    }

    fn rec_outcome_text(code: &str, issue: &str) -> String {
        // Spaced and ordered as a provider's system might write it, with a number in a form
        // serde_json would write differently.
        format!(
            "{{\n  \"resourceType\": \"OperationOutcome\",\n  \"issue\": [ {{ \"severity\": \"error\", \"code\": \"{issue}\",\n    \"details\": {{ \"coding\": [ {{ \"system\": \"https://fhir.nhs.uk/Codesystem/http-error-codes\", \"code\": \"{code}\" }} ] }},\n    \"diagnostics\": \"from the provider\", \"extension\": [ {{ \"valueDecimal\": 1e2 }} ] }} ]\n}}\n"
        )
    }

    fn err(status: u16, body: &str) -> RecError {
        answer(
            status,
            &http::HeaderMap::new(),
            &Bytes::from(body.to_owned()),
            &ctx(),
        )
        .unwrap_err()
    }

    #[test]
    fn relays_success_bodies_byte_for_byte() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::LOCATION, "Appointment/new-1".parse().unwrap());
        let text = "{ \"resourceType\": \"Appointment\", \"minutesDuration\": 1e2 }";
        let ok = answer(201, &h, &Bytes::from(text), &ctx()).unwrap();
        assert_eq!(ok.status, 201);
        assert_eq!(ok.json_text().map(|t| &**t), Some(text));
        assert_eq!(ok.location.as_deref(), Some("Appointment/new-1"));
        let empty = answer(204, &http::HeaderMap::new(), &Bytes::new(), &ctx()).unwrap();
        assert!(empty.body.is_null() && empty.json_text().is_none());
        assert_eq!(err(200, "<html>").code(), RecCode::ServerError);
        assert_eq!(err(200, "{\"a\": ").code(), RecCode::ServerError);
    }

    #[test]
    fn relays_rec_operation_outcomes_byte_for_byte_at_any_error_status() {
        for (status, code, issue) in [
            (400, "REC_BAD_REQUEST", "value"),
            (401, "REC_UNAUTHORIZED", "security"),
            (403, "REC_FORBIDDEN", "forbidden"),
            (409, "REC_CONFLICT", "duplicate"),
            (422, "REC_UNPROCESSABLE_ENTITY", "not-supported"),
            (500, "REC_SERVER_ERROR", "no-store"),
            (503, "REC_SERVICE_UNAVAILABLE", "transient"),
        ] {
            let text = rec_outcome_text(code, issue);
            let relayed = err(status, &text);
            assert_eq!(relayed.status(), status);
            assert_eq!(relayed.to_operation_outcome_text(), text, "{status}");
        }
    }

    #[test]
    fn maps_errors_without_a_rec_operation_outcome_by_status() {
        let not_rec = "{\"resourceType\": \"OperationOutcome\", \"issue\": [{\"severity\": \"error\", \"code\": \"invalid\"}]}";
        for (status, body, expected) in [
            (400, "", (400, RecCode::BadRequest, IssueType::Invalid)),
            (401, "", (401, RecCode::Unauthorized, IssueType::Forbidden)),
            (403, not_rec, (403, RecCode::Forbidden, IssueType::Forbidden)),
            (404, "", (404, RecCode::NotFound, IssueType::NotFound)),
            (408, "", (408, RecCode::Timeout, IssueType::Timeout)),
            (410, "", (500, RecCode::ServerError, IssueType::Exception)),
            (
                422,
                not_rec,
                (422, RecCode::UnprocessableEntity, IssueType::Processing),
            ),
            (500, "{}", (500, RecCode::ServerError, IssueType::Exception)),
            (
                502,
                "Bad gateway",
                (500, RecCode::ServerError, IssueType::Exception),
            ),
            (503, "", (503, RecCode::ServiceUnavailable, IssueType::Transient)),
            (302, "", (500, RecCode::ServerError, IssueType::Exception)),
        ] {
            let e = err(status, body);
            assert_eq!((e.status(), e.code(), e.issue()), expected, "{status} {body}");
            assert!(!e.to_operation_outcome_text().contains("from the provider"));
        }
    }

    #[test]
    fn a_504_is_a_timeout_whatever_it_carries() {
        for body in ["", "{}", &rec_outcome_text("REC_SERVER_ERROR", "exception")] {
            let e = err(504, body);
            assert_eq!(
                (e.status(), e.code(), e.issue()),
                (408, RecCode::Timeout, IssueType::Timeout)
            );
        }
    }

    #[test]
    fn maps_exchange_failures() {
        assert_eq!(
            failure(&Exchange::Unreachable("refused".into()), &ctx()).status(),
            503
        );
        assert_eq!(failure(&Exchange::Timeout, &ctx()).status(), 408);
        let large = failure(
            &Exchange::TooLarge {
                status: 200,
                limit: 10,
            },
            &ctx(),
        );
        assert_eq!(large.status(), 500);
    }
}
