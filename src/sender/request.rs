//! What to send through the BaRS API, and what came back.

use serde_json::Value;
use uuid::Uuid;

use crate::fhir::{ResourceType, TargetIdentifier};

/// The HTTP methods BaRS interactions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarsMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl BarsMethod {
    pub(crate) fn as_http(self) -> http::Method {
        match self {
            Self::Get => http::Method::GET,
            Self::Post => http::Method::POST,
            Self::Put => http::Method::PUT,
            Self::Patch => http::Method::PATCH,
            Self::Delete => http::Method::DELETE,
        }
    }
}

/// One BaRS API request: the interaction, the target service and the conversation. Each send
/// gets a new `X-Request-Id`; retries of that send keep it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BarsRequest {
    /// The method.
    pub method: BarsMethod,
    /// The path below the base URL, e.g. `$process-message` or `Appointment/123`.
    pub path: String,
    /// Query parameters, in order (percent-encoded when sent).
    pub query: Vec<(String, String)>,
    /// The FHIR body, if any.
    pub body: Option<Value>,
    /// `NHSD-Target-Identifier`: the service addressed.
    pub target: Option<TargetIdentifier>,
    /// `X-Correlation-Id`: a new conversation when `None`.
    pub correlation_id: Option<Uuid>,
    /// `X-Request-Id`: a new one when `None`. Set it to resend, after a restart, a message
    /// whose outcome is unknown: the receiver then recognises the retry.
    pub request_id: Option<Uuid>,
    /// `NHSD-Requesting-Practitioner`: a FHIR PractitionerRole, when known.
    pub practitioner: Option<Value>,
    /// `use-context` (statistics for the proxy), e.g. `a4t2|validation|servicerequest-response|new`.
    pub use_context: Option<String>,
}

impl BarsRequest {
    fn new(method: BarsMethod, path: impl Into<String>, target: Option<TargetIdentifier>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            target,
            correlation_id: None,
            request_id: None,
            practitioner: None,
            use_context: None,
        }
    }

    /// `POST /$process-message` with a message bundle.
    pub fn process_message(target: TargetIdentifier, bundle: Value) -> Self {
        Self::new(BarsMethod::Post, "$process-message", Some(target)).with_body(bundle)
    }

    /// `GET /metadata` of a service's receiver.
    pub fn metadata(target: Option<TargetIdentifier>) -> Self {
        Self::new(BarsMethod::Get, "metadata", target)
    }

    /// `GET /MessageDefinition` with search parameters (e.g. `context`).
    pub fn message_definitions(target: TargetIdentifier, params: Vec<(String, String)>) -> Self {
        Self::new(BarsMethod::Get, "MessageDefinition", Some(target)).with_query(params)
    }

    /// `GET /Slot` with search parameters (`status`, `start` twice, `_include`...).
    pub fn slots(target: TargetIdentifier, params: Vec<(String, String)>) -> Self {
        Self::new(BarsMethod::Get, "Slot", Some(target)).with_query(params)
    }

    /// `GET /{type}/{id}`.
    pub fn read(target: TargetIdentifier, ty: ResourceType, id: &str) -> Self {
        Self::new(BarsMethod::Get, instance(ty, id), Some(target))
    }

    /// `GET /{type}?...`.
    pub fn search(target: TargetIdentifier, ty: ResourceType, params: Vec<(String, String)>) -> Self {
        Self::new(BarsMethod::Get, ty.as_str(), Some(target)).with_query(params)
    }

    /// `POST /{type}`.
    pub fn create(target: TargetIdentifier, ty: ResourceType, resource: Value) -> Self {
        Self::new(BarsMethod::Post, ty.as_str(), Some(target)).with_body(resource)
    }

    /// `PUT /{type}/{id}`.
    pub fn update(target: TargetIdentifier, ty: ResourceType, id: &str, resource: Value) -> Self {
        Self::new(BarsMethod::Put, instance(ty, id), Some(target)).with_body(resource)
    }

    /// `PATCH /{type}/{id}`: a JSON Patch array, or a partial resource.
    pub fn patch(target: TargetIdentifier, ty: ResourceType, id: &str, patch: Value) -> Self {
        Self::new(BarsMethod::Patch, instance(ty, id), Some(target)).with_body(patch)
    }

    /// `DELETE /{type}/{id}`.
    pub fn delete(target: TargetIdentifier, ty: ResourceType, id: &str) -> Self {
        Self::new(BarsMethod::Delete, instance(ty, id), Some(target))
    }

    /// Continues the conversation `correlation_id` (replies and updates reuse it).
    pub fn with_correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Uses this `X-Request-Id` (see [`BarsRequest::request_id`]).
    pub fn with_request_id(mut self, request_id: Uuid) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// Adds `NHSD-Requesting-Practitioner`.
    pub fn with_practitioner(mut self, practitioner_role: Value) -> Self {
        self.practitioner = Some(practitioner_role);
        self
    }

    /// Adds `use-context`.
    pub fn with_use_context(mut self, use_context: impl Into<String>) -> Self {
        self.use_context = Some(use_context.into());
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Appends query parameters.
    pub fn with_query(mut self, params: Vec<(String, String)>) -> Self {
        self.query.extend(params);
        self
    }

    /// The path and query, percent-encoded, to append to the base URL.
    pub(crate) fn path_and_query(&self) -> String {
        let mut out = format!("/{}", self.path.trim_start_matches('/'));
        if !self.query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
            out.push('?');
            out.push_str(&q.finish());
        }
        out
    }

    /// The `Content-Type` of the body.
    pub(crate) fn content_type(&self) -> &'static str {
        match (&self.method, &self.body) {
            (BarsMethod::Patch, Some(Value::Array(_))) => "application/json-patch+json",
            _ => "application/fhir+json",
        }
    }
}

/// `{type}/{id}` with the id percent-encoded as one path segment.
fn instance(ty: ResourceType, id: &str) -> String {
    let encoded: String = id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{}/{encoded}", ty.as_str())
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BarsResponse {
    /// 200 or 201; or 409 when a retry found that an earlier attempt had already been
    /// received (see [`BarsResponse::already_received`]).
    pub status: u16,
    /// The `X-Request-Id` sent (and echoed).
    pub request_id: Uuid,
    /// The `X-Correlation-Id` sent (and echoed).
    pub correlation_id: Uuid,
    /// The FHIR body (`null` when empty).
    pub body: Value,
    /// `Location`, on creates.
    pub location: Option<String>,
    /// How many attempts it took.
    pub attempts: u32,
    /// A retry was answered `409 duplicate`: an earlier attempt, whose answer was lost, got
    /// through. The message is delivered; do not send it again under a new id.
    pub already_received: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> TargetIdentifier {
        TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|1").unwrap()
    }

    #[test]
    fn builds_paths_queries_and_content_types() {
        let r = BarsRequest::process_message(target(), json!({}));
        assert_eq!(r.path_and_query(), "/$process-message");
        assert_eq!(r.content_type(), "application/fhir+json");

        let r = BarsRequest::search(
            target(),
            ResourceType::Appointment,
            vec![(
                "patient:identifier".into(),
                "https://fhir.nhs.uk/Id/nhs-number|9912003888".into(),
            )],
        );
        assert_eq!(
            r.path_and_query(),
            "/Appointment?patient%3Aidentifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888"
        );
        let r = BarsRequest::read(target(), ResourceType::ServiceRequest, "a/b c");
        assert_eq!(r.path_and_query(), "/ServiceRequest/a%2Fb%20c");
        let r = BarsRequest::patch(
            target(),
            ResourceType::Appointment,
            "1",
            json!([{"op": "replace"}]),
        );
        assert_eq!(r.content_type(), "application/json-patch+json");
        assert_eq!(BarsRequest::metadata(None).path_and_query(), "/metadata");
    }
}
