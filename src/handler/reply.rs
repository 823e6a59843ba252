//! What an asynchronous reply needs from the message it answers: where the original sender
//! takes replies (`MessageHeader.source.endpoint`), the conversation (`X-Correlation-Id`) and
//! the message answered (`Bundle.id`, for `MessageHeader.response.identifier`).
//!
//! It is serialisable, so a handler can keep it with its own work item and reply hours later,
//! after a restart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RequestContext;
use crate::fhir::{
    EVENT_SYSTEM, IssueType, MessageBundle, MessageEvent, REASON_SYSTEM, RecError, TargetIdentifier,
};

/// The address and ids of a reply to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReplyTo {
    /// The original sender's `MessageHeader.source.endpoint`: the reply's
    /// `NHSD-Target-Identifier` and `MessageHeader.destination.endpoint`.
    pub target: TargetIdentifier,
    /// The conversation: the reply reuses it.
    pub correlation_id: Uuid,
    /// The original `Bundle.id`: the reply's `MessageHeader.response.identifier`.
    pub bundle_id: String,
    /// The original `X-Request-Id` (the reply gets a new one).
    pub request_id: Uuid,
    /// The original event code, e.g. `servicerequest-request`.
    pub event: String,
    /// The service the original message addressed (its `NHSD-Target-Identifier`): the
    /// reply's `MessageHeader.source.endpoint`.
    pub replying_service: Option<TargetIdentifier>,
}

impl ReplyTo {
    /// A `servicerequest-response` answering the validation request `request` (the bundle as
    /// received), following `bars-message-servicerequest-response-validation-full`: focused
    /// on a new Encounter recording the validation, carrying every other resource of the
    /// request (the ServiceRequest answered, the patient, organisations, practitioners,
    /// the request's Encounter...), with `response.identifier` = the original `Bundle.id`,
    /// sent from the service that was addressed, to the organisation that sent the request
    /// (its `MessageHeader.sender`). `source_name` and `software` fill
    /// `MessageHeader.source`. Send it with `BarsClient::reply`.
    pub fn validation_response(
        &self,
        request: &serde_json::Value,
        source_name: &str,
        software: &str,
    ) -> serde_json::Value {
        use serde_json::json;
        let header_id = Uuid::new_v4();
        let encounter_id = Uuid::new_v4();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let request_entries = request["entry"].as_array().map_or(&[][..], Vec::as_slice);
        let request_header = &request_entries.first().unwrap_or(&serde_json::Value::Null)["resource"];
        let first_organisation = || {
            request_entries
                .iter()
                .find(|e| e["resource"]["resourceType"] == "Organization")
                .map_or(serde_json::Value::Null, |e| e["fullUrl"].clone())
        };
        // The reply goes to the organisation that sent the request, from the one it addressed.
        let to = match &request_header["sender"]["reference"] {
            serde_json::Value::String(s) => json!(s),
            _ => first_organisation(),
        };
        let from = match &request_header["destination"][0]["receiver"]["reference"] {
            serde_json::Value::String(s) => json!(s),
            _ => first_organisation(),
        };
        let subject = request_entries
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .map(|e| json!({"reference": e["fullUrl"]}));
        let mut encounter = json!({
            "resourceType": "Encounter",
            "id": encounter_id.to_string(),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"},
        });
        if let Some(subject) = subject {
            encounter["subject"] = subject;
        }
        let mut entries = vec![
            json!({"fullUrl": format!("urn:uuid:{header_id}"), "resource": {
                "resourceType": "MessageHeader",
                "id": header_id.to_string(),
                "eventCoding": {"system": EVENT_SYSTEM, "code": "servicerequest-response"},
                "destination": [{"endpoint": self.target.to_string(), "receiver": {"reference": to}}],
                "sender": {"reference": from},
                "source": {
                    "name": source_name,
                    "software": software,
                    "endpoint": self.replying_service.as_ref().map(ToString::to_string),
                },
                "reason": {"coding": [{"system": REASON_SYSTEM, "code": "new"}]},
                "response": {"identifier": self.bundle_id, "code": "ok"},
                "focus": [{"reference": format!("urn:uuid:{encounter_id}")}],
                "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-full",
            }}),
            json!({"fullUrl": format!("urn:uuid:{encounter_id}"), "resource": encounter}),
        ];
        // Everything the request carried travels with the response, its header excepted.
        entries.extend(
            request_entries
                .iter()
                .filter(|e| e["resource"]["resourceType"] != "MessageHeader")
                .cloned(),
        );
        json!({
            "resourceType": "Bundle",
            "id": Uuid::new_v4().to_string(),
            "meta": {"versionId": "1.4.0", "profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
            "type": "message",
            "timestamp": now,
            "entry": entries,
        })
    }

    /// The reply address of `message`, received with `ctx`. A message whose
    /// `MessageHeader.source.endpoint` is missing or not `system|value` cannot be answered:
    /// that is a 400 `required` the handler can return as it is.
    pub fn new(ctx: &RequestContext, message: &MessageBundle) -> Result<Self, RecError> {
        let endpoint = message.source_endpoint.as_deref().ok_or_else(|| {
            RecError::bad_request(
                IssueType::Required,
                "MessageHeader.source.endpoint is required: it is where the reply goes",
            )
        })?;
        let target = TargetIdentifier::parse_token(endpoint).ok_or_else(|| {
            RecError::bad_request(
                IssueType::Value,
                "MessageHeader.source.endpoint must be system|value, e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489",
            )
        })?;
        Ok(Self {
            target,
            correlation_id: ctx.correlation_id,
            bundle_id: message.id.clone(),
            request_id: ctx.request_id,
            event: message.event.code().to_owned(),
            replying_service: ctx.target.clone(),
        })
    }

    /// The event of a reply: `servicerequest-response` to a `servicerequest-request`,
    /// `booking-response` to a `booking-request`; `None` for a message that is itself a
    /// response.
    pub fn response_event(&self) -> Option<MessageEvent> {
        match MessageEvent::from_code(&self.event)? {
            MessageEvent::ServiceRequestRequest => Some(MessageEvent::ServiceRequestResponse),
            MessageEvent::BookingRequest => Some(MessageEvent::BookingResponse),
            MessageEvent::ServiceRequestResponse | MessageEvent::BookingResponse => None,
        }
    }
}

impl RequestContext {
    /// The reply address of `message`: see [`ReplyTo::new`].
    pub fn reply_to(&self, message: &MessageBundle) -> Result<ReplyTo, RecError> {
        ReplyTo::new(self, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{BarsIds, NhsdHeaders};
    use crate::tls::PeerIdentity;
    use serde_json::json;

    fn message(source: Option<&str>) -> MessageBundle {
        let mut header = json!({
            "resourceType": "MessageHeader",
            "eventCoding": {"system": crate::fhir::EVENT_SYSTEM, "code": "servicerequest-request"},
            "reason": {"coding": [{"system": crate::fhir::REASON_SYSTEM, "code": "new"}]},
            "focus": [{"reference": "urn:uuid:sr"}],
        });
        if let Some(s) = source {
            header["source"] = json!({"endpoint": s});
        }
        MessageBundle::parse(json!({
            "resourceType": "Bundle", "id": "original-bundle", "type": "message",
            "meta": {"versionId": "1.4.0"},
            "entry": [
                {"fullUrl": "urn:uuid:h", "resource": header},
                {"fullUrl": "urn:uuid:sr", "resource": {"resourceType": "ServiceRequest"}}
            ]
        }))
        .unwrap()
    }

    fn ctx() -> RequestContext {
        let ids = BarsIds {
            request_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
        };
        let headers = NhsdHeaders {
            target: TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|111"),
            ..NhsdHeaders::default()
        };
        RequestContext::new(
            ids,
            headers,
            PeerIdentity::for_tests("proxy", "127.0.0.1".parse().unwrap()),
        )
    }

    #[test]
    fn takes_the_source_endpoint_conversation_and_bundle_id() {
        let ctx = ctx();
        let reply = ctx
            .reply_to(&message(Some("http://fhir.nhs.uk/Id/dos-service-id|2222222222")))
            .unwrap();
        assert_eq!(reply.target.value, "2222222222");
        assert_eq!(reply.correlation_id, ctx.correlation_id);
        assert_eq!(reply.request_id, ctx.request_id);
        assert_eq!(reply.bundle_id, "original-bundle");
        assert_eq!(reply.replying_service.as_ref().unwrap().value, "111");
        assert_eq!(reply.response_event(), Some(MessageEvent::ServiceRequestResponse));
        let round_trip: ReplyTo = serde_json::from_value(serde_json::to_value(&reply).unwrap()).unwrap();
        assert_eq!(round_trip, reply);
    }

    #[test]
    fn a_message_without_a_usable_source_endpoint_cannot_be_answered() {
        let err = ctx().reply_to(&message(None)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.diagnostics().contains("source.endpoint"));
        let err = ctx().reply_to(&message(Some("no-bar"))).unwrap_err();
        assert_eq!(err.issue(), IssueType::Value);
    }
}
