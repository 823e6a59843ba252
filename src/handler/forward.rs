//! The built-in `forward` handler: every accepted request goes to the provider's own system
//! (the upstream) with the same method, path suffix, query and body, and its answer comes
//! back with the BaRS ids re-echoed. Built on the public handler traits only.
//!
//! When the upstream misbehaves: no answer (refused, reset, TLS failure) is 503
//! `REC_SERVICE_UNAVAILABLE`; no answer within `upstream.timeout` is 408 `REC_TIMEOUT`; a 5xx
//! without an OperationOutcome is 500 `REC_SERVER_ERROR`; a body over
//! `upstream.max_response_body` is 500, never a truncated body.

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

/// The upstream's answer as the handler's result.
fn answer(status: u16, headers: &http::HeaderMap, body: &[u8], ctx: &RequestContext) -> HandlerResult {
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice::<Value>(body)
    };
    let log = |what: &str| {
        tracing::warn!(request_id = %ctx.request_id, upstream_status = status, "{what}");
    };
    match status {
        200..=299 => match json {
            Ok(value) => {
                let mut ok = FhirResponse::relayed(status, value);
                if let Some(location) = headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()) {
                    ok = ok.with_location(location);
                }
                Ok(ok)
            }
            Err(_) => {
                log("upstream answered success with a body that is not JSON");
                Err(RecError::server_error(
                    "The receiver's system answered with a body that is not FHIR JSON.",
                ))
            }
        },
        // The upstream refusing the receiver itself (its credentials, its network position)
        // is the receiver's failure, not the caller's: never relayed, never replayed.
        401 | 403 => {
            log("upstream refused the receiver (401/403): check the receiver's upstream credentials");
            Err(bare_error(status))
        }
        400..=599 => {
            if let Some(relayed) = json.ok().and_then(|value| RecError::relayed(status, value)) {
                return Err(relayed);
            }
            log("upstream answered an error without an OperationOutcome");
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

/// An upstream 4xx/5xx that came without an OperationOutcome, as a BaRS error.
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
        // 401/403 from the upstream refuse the receiver itself, not the caller; every 5xx
        // without an OperationOutcome, and anything else, is the receiver's failure.
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
    use crate::fhir::{BarsIds, NhsdHeaders};
    use crate::tls::PeerIdentity;
    use serde_json::json;

    fn ctx() -> RequestContext {
        RequestContext::new(
            BarsIds {
                request_id: uuid::Uuid::new_v4(),
                correlation_id: uuid::Uuid::new_v4(),
            },
            NhsdHeaders::default(),
            PeerIdentity::for_tests("x", std::net::Ipv4Addr::LOCALHOST.into()),
        )
    }

    #[test]
    fn maps_upstream_answers() {
        let h = http::HeaderMap::new();
        let ok = answer(201, &h, br#"{"resourceType":"Appointment"}"#, &ctx()).unwrap();
        assert_eq!(ok.status, 201);
        let empty = answer(204, &h, b"", &ctx()).unwrap();
        assert!(empty.body.is_null());
        let not_json = answer(200, &h, b"<html>", &ctx()).unwrap_err();
        assert_eq!(not_json.status(), 500);
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "no"}]});
        let relayed = answer(422, &h, oo.to_string().as_bytes(), &ctx()).unwrap_err();
        assert_eq!(
            (relayed.status(), relayed.to_operation_outcome()),
            (422, oo.clone())
        );
        let relayed_503 = answer(503, &h, oo.to_string().as_bytes(), &ctx()).unwrap_err();
        assert_eq!(relayed_503.status(), 503);
        let bare = answer(502, &h, b"Bad gateway", &ctx()).unwrap_err();
        assert_eq!((bare.status(), bare.code()), (500, RecCode::ServerError));
        let bare_404 = answer(404, &h, b"", &ctx()).unwrap_err();
        assert_eq!(bare_404.code(), RecCode::NotFound);
        let forbidden = answer(403, &h, b"", &ctx()).unwrap_err();
        assert_eq!(forbidden.status(), 500);
        let redirect = answer(302, &h, b"", &ctx()).unwrap_err();
        assert_eq!(redirect.status(), 500);
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
