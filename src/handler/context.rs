//! What a handler knows about the request it is answering.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::fhir::{
    BarsIds, EndUserOrganisation, NhsdHeaders, RequestingPractitioner, RequestingSoftware, TargetIdentifier,
};
use crate::tls::PeerIdentity;

/// The BaRS ids, decoded headers and verified caller of one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestContext {
    /// `X-Request-Id`: unique per message, unchanged on retries.
    pub request_id: Uuid,
    /// `X-Correlation-Id`: the conversation; replies reuse it.
    pub correlation_id: Uuid,
    /// `NHSD-Target-Identifier`: the service addressed.
    pub target: Option<TargetIdentifier>,
    /// `NHSD-End-User-Organisation`.
    pub end_user_organisation: Option<EndUserOrganisation>,
    /// `NHSD-Requesting-Software`.
    pub requesting_software: Option<RequestingSoftware>,
    /// `NHSD-Requesting-Practitioner`.
    pub requesting_practitioner: Option<RequestingPractitioner>,
    /// The caller proven by mutual TLS (the BaRS proxy), with the source address.
    pub peer: PeerIdentity,
    /// When the request arrived.
    pub received_at: OffsetDateTime,
}

impl RequestContext {
    /// A context from ids, decoded headers and the peer (the server builds these; tests and
    /// examples may too).
    pub fn new(ids: BarsIds, headers: NhsdHeaders, peer: PeerIdentity) -> Self {
        Self {
            request_id: ids.request_id,
            correlation_id: ids.correlation_id,
            target: headers.target,
            end_user_organisation: headers.end_user_organisation,
            requesting_software: headers.requesting_software,
            requesting_practitioner: headers.requesting_practitioner,
            peer,
            received_at: OffsetDateTime::now_utc(),
        }
    }

    /// The decoded headers as JSON, for audit records.
    pub fn headers_json(&self) -> serde_json::Value {
        serde_json::json!({
            "x-request-id": self.request_id.to_string(),
            "x-correlation-id": self.correlation_id.to_string(),
            "nhsd-target-identifier": self.target.as_ref().map(|t| serde_json::json!({"system": t.system, "value": t.value})),
            "nhsd-end-user-organisation": self.end_user_organisation.as_ref().map(|o| &o.resource),
            "nhsd-requesting-software": self.requesting_software.as_ref().map(|s| &s.resource),
            "nhsd-requesting-practitioner": self.requesting_practitioner.as_ref().map(|p| &p.resource),
        })
    }
}
