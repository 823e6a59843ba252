//! `$process-message` bundles: the structural BaRS message rules (bars-spec §5), checked
//! before any handler sees a message, and the typed view handlers receive.

use std::sync::Arc;

use serde_json::Value;

use super::error::{IssueType, RecError};
use super::media::{SERVED_MAJOR_VERSION, major_version};

/// The BaRS message event code system.
pub const EVENT_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-events-bars";
/// The BaRS message reason code system.
pub const REASON_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-reason-bars";

/// `MessageHeader.eventCoding.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageEvent {
    /// `servicerequest-request`: a referral (or validation request).
    ServiceRequestRequest,
    /// `servicerequest-response`: a response to a referral.
    ServiceRequestResponse,
    /// `booking-request`: a booking.
    BookingRequest,
    /// `booking-response`: a response to a booking.
    BookingResponse,
}

impl MessageEvent {
    /// Parses a BaRS event code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "servicerequest-request" => Some(Self::ServiceRequestRequest),
            "servicerequest-response" => Some(Self::ServiceRequestResponse),
            "booking-request" => Some(Self::BookingRequest),
            "booking-response" => Some(Self::BookingResponse),
            _ => None,
        }
    }

    /// The event code.
    pub fn code(self) -> &'static str {
        match self {
            Self::ServiceRequestRequest => "servicerequest-request",
            Self::ServiceRequestResponse => "servicerequest-response",
            Self::BookingRequest => "booking-request",
            Self::BookingResponse => "booking-response",
        }
    }

    /// Whether this event answers an earlier message.
    pub fn is_response(self) -> bool {
        matches!(self, Self::ServiceRequestResponse | Self::BookingResponse)
    }

    /// The resource type a request's focus must have (responses focus on an Encounter or
    /// the resource they answer, so they are not constrained here).
    fn required_focus_type(self) -> Option<&'static str> {
        match self {
            Self::ServiceRequestRequest => Some("ServiceRequest"),
            Self::BookingRequest => Some("Appointment"),
            Self::ServiceRequestResponse | Self::BookingResponse => None,
        }
    }
}

/// `MessageHeader.reason.coding.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageReason {
    /// `new`
    New,
    /// `update` (also cancellations: the focus then has status cancelled/revoked)
    Update,
    /// `delete`
    Delete,
}

impl MessageReason {
    /// Parses a BaRS reason code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "new" => Some(Self::New),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// `MessageHeader.response`, present on response events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResponse {
    /// The `Bundle.id` of the message being answered.
    pub identifier: String,
    /// `ok`, `transient-error` or `fatal-error`.
    pub code: Option<String>,
}

/// A structurally valid BaRS message bundle: the fields the receiver reads, plus the whole
/// bundle as sent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MessageBundle {
    /// `Bundle.id`, set by the sender; replies refer to it.
    pub id: String,
    /// `Bundle.meta.versionId`: the BaRS version the message follows.
    pub version: String,
    /// `Bundle.timestamp`, when present.
    pub timestamp: Option<String>,
    /// The event.
    pub event: MessageEvent,
    /// The reason.
    pub reason: MessageReason,
    /// `MessageHeader.focus[0].reference` (a `fullUrl` inside the bundle).
    pub focus_reference: String,
    /// The resource type of the focus.
    pub focus_type: String,
    /// `MessageHeader.definition`, when present.
    pub definition: Option<String>,
    /// `MessageHeader.destination[].endpoint`.
    pub destination_endpoints: Vec<String>,
    /// `MessageHeader.source.endpoint`: where replies go.
    pub source_endpoint: Option<String>,
    /// `MessageHeader.response`, on responses.
    pub response: Option<MessageResponse>,
    /// The whole bundle, parsed (numbers kept exactly as written).
    pub raw: Value,
    /// The body exactly as received.
    pub source: Arc<str>,
}

impl MessageBundle {
    /// Parses a request body and checks it against the BaRS message rules. The text is kept
    /// as [`MessageBundle::source`].
    pub fn from_json(source: &str) -> Result<Self, RecError> {
        Self::check(parse_json(source)?, Arc::from(source))
    }

    /// Checks a parsed JSON body against the BaRS message rules, in the order the errors
    /// are most useful to a sender. [`MessageBundle::source`] is the value re-serialised.
    pub fn parse(raw: Value) -> Result<Self, RecError> {
        let source = Arc::from(raw.to_string());
        Self::check(raw, source)
    }

    fn check(raw: Value, source: Arc<str>) -> Result<Self, RecError> {
        let bad = |issue, what: &str| RecError::bad_request(issue, what.to_owned());
        if raw["resourceType"] != "Bundle" {
            return Err(bad(IssueType::Invalid, "The body is not a FHIR Bundle"));
        }
        if raw["type"] != "message" {
            return Err(bad(IssueType::Invalid, "Bundle.type must be 'message'"));
        }
        let id = non_empty(&raw["id"]).ok_or_else(|| bad(IssueType::Required, "Bundle.id is missing"))?;
        let version = non_empty(&raw["meta"]["versionId"]).ok_or_else(|| {
            bad(
                IssueType::Invariant,
                "Bundle.meta.versionId is missing: the BaRS version is required",
            )
        })?;
        if major_version(&version) != Some(SERVED_MAJOR_VERSION) {
            return Err(RecError::unprocessable(
                IssueType::NotSupported,
                format!(
                    "BaRS version {version} is not supported: this receiver processes major version {SERVED_MAJOR_VERSION}"
                ),
            ));
        }
        let entries = raw["entry"]
            .as_array()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| bad(IssueType::Structure, "Bundle.entry is missing or empty"))?;
        for (index, entry) in entries.iter().enumerate() {
            if non_empty(&entry["fullUrl"]).is_none() {
                return Err(RecError::bad_request(
                    IssueType::Structure,
                    format!("Bundle.entry[{index}].fullUrl is missing"),
                ));
            }
            if non_empty(&entry["resource"]["resourceType"]).is_none() {
                return Err(RecError::bad_request(
                    IssueType::Structure,
                    format!("Bundle.entry[{index}].resource has no resourceType"),
                ));
            }
        }
        let header = &entries[0]["resource"];
        if header["resourceType"] != "MessageHeader" {
            return Err(bad(
                IssueType::Structure,
                "The first entry must be the MessageHeader",
            ));
        }
        let event = parse_event(header)?;
        let reason = parse_reason(header)?;
        let focus_reference = non_empty(&header["focus"][0]["reference"])
            .ok_or_else(|| bad(IssueType::Required, "MessageHeader.focus is missing"))?;
        let focus_type = entries
            .iter()
            .find(|e| e["fullUrl"] == focus_reference.as_str())
            .and_then(|e| e["resource"]["resourceType"].as_str())
            .ok_or_else(|| {
                bad(
                    IssueType::Invariant,
                    "MessageHeader.focus does not resolve to an entry in the bundle",
                )
            })?
            .to_owned();
        if let Some(required) = event.required_focus_type() {
            if focus_type != required {
                return Err(RecError::bad_request(
                    IssueType::Invariant,
                    format!(
                        "A {} message must focus on a {required}, not a {focus_type}",
                        event.code()
                    ),
                ));
            }
        }
        let response = match non_empty(&header["response"]["identifier"]) {
            Some(identifier) => Some(MessageResponse {
                identifier,
                code: non_empty(&header["response"]["code"]),
            }),
            None if event.is_response() => {
                return Err(bad(
                    IssueType::Required,
                    "MessageHeader.response.identifier is required on a response message",
                ));
            }
            None => None,
        };
        let destination_endpoints = header["destination"]
            .as_array()
            .map(|d| d.iter().filter_map(|d| non_empty(&d["endpoint"])).collect())
            .unwrap_or_default();
        Ok(Self {
            id,
            version,
            timestamp: non_empty(&raw["timestamp"]),
            event,
            reason,
            focus_reference,
            focus_type,
            definition: non_empty(&header["definition"]),
            destination_endpoints,
            source_endpoint: non_empty(&header["source"]["endpoint"]),
            response,
            raw,
            source,
        })
    }
}

/// Parses a request body as JSON: 400 `structure` with the position when it is not.
pub(crate) fn parse_json(text: &str) -> Result<Value, RecError> {
    serde_json::from_str(text).map_err(|e| {
        RecError::bad_request(
            IssueType::Structure,
            format!(
                "The request body is not well-formed JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

fn parse_event(header: &Value) -> Result<MessageEvent, RecError> {
    let coding = &header["eventCoding"];
    if coding["system"] != EVENT_SYSTEM {
        return Err(RecError::bad_request(
            IssueType::Value,
            format!("MessageHeader.eventCoding.system must be {EVENT_SYSTEM}"),
        ));
    }
    let code = coding["code"].as_str().unwrap_or_default();
    MessageEvent::from_code(code).ok_or_else(|| {
        RecError::bad_request(
            IssueType::Value,
            format!(
                "MessageHeader.eventCoding.code '{}' is not a BaRS event",
                printable(code)
            ),
        )
    })
}

fn parse_reason(header: &Value) -> Result<MessageReason, RecError> {
    let codings = header["reason"]["coding"].as_array();
    let coding = codings
        .and_then(|c| c.iter().find(|c| c["system"] == REASON_SYSTEM))
        .ok_or_else(|| {
            RecError::bad_request(
                IssueType::Required,
                format!("MessageHeader.reason has no coding from {REASON_SYSTEM}"),
            )
        })?;
    let code = coding["code"].as_str().unwrap_or_default();
    MessageReason::from_code(code).ok_or_else(|| {
        RecError::bad_request(
            IssueType::Value,
            format!(
                "MessageHeader.reason code '{}' is not a BaRS reason",
                printable(code)
            ),
        )
    })
}

fn non_empty(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Echoes a sender's code into diagnostics without letting it carry anything but a short
/// code-like string.
fn printable(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "resourceType": "Bundle", "id": "b1", "type": "message",
            "meta": {"versionId": "1.4.0"},
            "entry": [
                {"fullUrl": "urn:uuid:h", "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {"system": EVENT_SYSTEM, "code": "servicerequest-request"},
                    "reason": {"coding": [{"system": REASON_SYSTEM, "code": "new"}]},
                    "focus": [{"reference": "urn:uuid:sr"}],
                    "destination": [{"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|1"}],
                    "source": {"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|2"}
                }},
                {"fullUrl": "urn:uuid:sr", "resource": {"resourceType": "ServiceRequest"}}
            ]
        })
    }

    fn err_of(mut edit: impl FnMut(&mut Value)) -> RecError {
        let mut b = minimal();
        edit(&mut b);
        MessageBundle::parse(b).unwrap_err()
    }

    #[test]
    fn parses_a_minimal_message() {
        let m = MessageBundle::parse(minimal()).unwrap();
        assert_eq!(m.id, "b1");
        assert_eq!(m.event, MessageEvent::ServiceRequestRequest);
        assert_eq!(m.reason, MessageReason::New);
        assert_eq!(m.focus_type, "ServiceRequest");
        assert_eq!(
            m.source_endpoint.as_deref(),
            Some("https://fhir.nhs.uk/Id/dos-service-id|2")
        );
        assert_eq!(m.destination_endpoints.len(), 1);
    }

    #[test]
    fn refuses_each_broken_rule_with_its_issue_type() {
        type Edit = Box<dyn FnMut(&mut Value)>;
        let cases: Vec<(Edit, u16, IssueType, &str)> = vec![
            (
                Box::new(|b| b["resourceType"] = json!("Patient")),
                400,
                IssueType::Invalid,
                "Bundle",
            ),
            (
                Box::new(|b| b["type"] = json!("collection")),
                400,
                IssueType::Invalid,
                "message",
            ),
            (
                Box::new(|b| b["meta"] = json!({})),
                400,
                IssueType::Invariant,
                "versionId",
            ),
            (
                Box::new(|b| b["meta"]["versionId"] = json!("2.0.0")),
                422,
                IssueType::NotSupported,
                "2.0.0",
            ),
            (
                Box::new(|b| b["entry"] = json!([])),
                400,
                IssueType::Structure,
                "entry",
            ),
            (
                Box::new(|b| {
                    let e = b["entry"].as_array_mut().unwrap();
                    e.swap(0, 1);
                }),
                400,
                IssueType::Structure,
                "first entry",
            ),
            (
                Box::new(|b| b["entry"][0]["resource"]["eventCoding"]["code"] = json!("pizza-order")),
                400,
                IssueType::Value,
                "pizza-order",
            ),
            (
                Box::new(|b| b["entry"][0]["resource"]["eventCoding"]["system"] = json!("x")),
                400,
                IssueType::Value,
                "system",
            ),
            (
                Box::new(|b| b["entry"][0]["resource"]["reason"]["coding"][0]["code"] = json!("maybe")),
                400,
                IssueType::Value,
                "maybe",
            ),
            (
                Box::new(|b| b["entry"][0]["resource"]["focus"][0]["reference"] = json!("urn:uuid:nowhere")),
                400,
                IssueType::Invariant,
                "resolve",
            ),
            (
                Box::new(|b| b["entry"][1]["resource"]["resourceType"] = json!("Appointment")),
                400,
                IssueType::Invariant,
                "ServiceRequest",
            ),
            (
                Box::new(|b| {
                    b["entry"][0]["resource"]["eventCoding"]["code"] = json!("servicerequest-response")
                }),
                400,
                IssueType::Required,
                "response.identifier",
            ),
            (
                Box::new(|b| {
                    b["entry"][1].as_object_mut().unwrap().remove("fullUrl");
                }),
                400,
                IssueType::Structure,
                "fullUrl",
            ),
        ];
        for (mut edit, status, issue, needle) in cases {
            let err = err_of(&mut edit);
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.issue(), issue, "{err}");
            assert!(err.diagnostics().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn keeps_the_body_exactly_as_received() {
        let text = format!(
            "{}\n",
            minimal()
                .to_string()
                .replace("\"1.4.0\"", "\"1.4.0\" ")
                .replacen('{', "{\"dose\": 1.10, ", 1)
        );
        let m = MessageBundle::from_json(&text).unwrap();
        assert_eq!(&*m.source, text.as_str());
        assert!(
            m.raw.to_string().contains("1.10"),
            "decimals keep their written precision"
        );
        let err = MessageBundle::from_json("{not json").unwrap_err();
        assert_eq!(err.issue(), IssueType::Structure);
    }

    #[test]
    fn diagnostics_never_echo_long_or_control_characters() {
        let err = err_of(|b| {
            b["entry"][0]["resource"]["eventCoding"]["code"] = json!(format!("x\n{}", "y".repeat(500)))
        });
        assert!(!err.diagnostics().contains('\n'));
        assert!(err.diagnostics().len() < 200);
    }
}
