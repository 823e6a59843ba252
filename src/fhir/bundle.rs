//! `$process-message` bundles: the structural BaRS message rules (bars-spec §5), checked
//! before any handler sees a message, and the typed view handlers receive.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::bundle_view::{BundleView, EVENT_SYSTEM, EntryProblem, Header, REASON_SYSTEM, non_empty};
use super::error::{IssueType, RecError};
use super::id_places::Spans;
use super::json::parse_tree;
use super::media::{SERVED_MAJOR_VERSION, major_version};
use super::tree::Json;

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
///
/// Checking a message reads these fields from the tree of one strict pass over the body,
/// borrowed from it and dropped once the message is checked: the bundle stays
/// [`MessageBundle::source`], its text. [`MessageBundle::raw`] parses that text into a
/// [`Value`] on first use, which costs several times the body's size in memory; handlers
/// that store or forward the message should use `source`.
#[derive(Debug, Clone)]
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
    /// The body exactly as received.
    pub source: Arc<str>,
    /// The whole bundle parsed, once asked for.
    raw: OnceLock<Value>,
    /// Where the resources' ids and the references lie in `source`, when validation found
    /// them ([`MessageBundle::with_id_places`]), with the text they were found in: `source`
    /// is public, and places found in another text are not used.
    /// [`MessageBundle::with_receiver_ids`] scans the text otherwise.
    id_places: Option<(Arc<str>, Arc<Spans>)>,
}

impl PartialEq for MessageBundle {
    /// Messages are equal when their fields and text are; whether `raw` was parsed yet does
    /// not matter.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.version == other.version
            && self.timestamp == other.timestamp
            && self.event == other.event
            && self.reason == other.reason
            && self.focus_reference == other.focus_reference
            && self.focus_type == other.focus_type
            && self.definition == other.definition
            && self.destination_endpoints == other.destination_endpoints
            && self.source_endpoint == other.source_endpoint
            && self.response == other.response
            && self.source == other.source
    }
}

impl MessageBundle {
    /// Parses a request body and checks it against the BaRS message rules, refusing
    /// repeated member names at any depth. The text is kept as [`MessageBundle::source`].
    pub fn from_json(source: &str) -> Result<Self, RecError> {
        let source: Arc<str> = Arc::from(source);
        let tree = parse_tree(&source)?;
        Self::from_tree(source.clone(), &tree)
    }

    /// Checks a parsed JSON body against the BaRS message rules, in the order the errors
    /// are most useful to a sender. [`MessageBundle::source`] is the value re-serialised.
    pub fn parse(raw: Value) -> Result<Self, RecError> {
        let source: Arc<str> = Arc::from(raw.to_string());
        let tree = parse_tree(&source)?;
        Self::check(BundleView::read(&tree), source.clone(), OnceLock::from(raw))
    }

    /// The message whose text is `source`, from `tree`, the strict parse of that text
    /// ([`parse_tree`]), which the caller goes on to validate the message against.
    pub(crate) fn from_tree(source: Arc<str>, tree: &Json<'_>) -> Result<Self, RecError> {
        Self::check(BundleView::read(tree), source, OnceLock::new())
    }

    /// The whole bundle, parsed (numbers kept exactly as written, members in order). Parsed
    /// from [`MessageBundle::source`] on the first call, and kept.
    pub fn raw(&self) -> &Value {
        self.raw.get_or_init(|| reparse(&self.source))
    }

    /// The whole bundle, parsed, without keeping a copy.
    pub fn into_raw(self) -> Value {
        match self.raw.into_inner() {
            Some(raw) => raw,
            None => reparse(&self.source),
        }
    }

    /// This message with where its ids lie in [`MessageBundle::source`] (read from the
    /// tree validation parsed from that text), for [`MessageBundle::with_receiver_ids`].
    pub(crate) fn with_id_places(mut self, places: Option<Spans>) -> Self {
        self.id_places = places.map(|places| (self.source.clone(), Arc::new(places)));
        self
    }

    /// The places [`MessageBundle::with_id_places`] gave, while `source` is still the text
    /// they were found in.
    pub(super) fn id_places(&self) -> Option<&Spans> {
        self.id_places
            .as_ref()
            .filter(|(text, _)| Arc::ptr_eq(text, &self.source))
            .map(|(_, places)| &**places)
    }

    /// The same message with another text (receiver-assigned ids spliced in): the fields
    /// read from the body are unchanged by such edits. The parsed tree, if any, is not
    /// copied (it is of the old text; copying it cost more than the edits).
    pub(super) fn with_source(&self, source: Arc<str>) -> Self {
        Self {
            id: self.id.clone(),
            version: self.version.clone(),
            timestamp: self.timestamp.clone(),
            event: self.event,
            reason: self.reason,
            focus_reference: self.focus_reference.clone(),
            focus_type: self.focus_type.clone(),
            definition: self.definition.clone(),
            destination_endpoints: self.destination_endpoints.clone(),
            source_endpoint: self.source_endpoint.clone(),
            response: self.response.clone(),
            source,
            raw: OnceLock::new(),
            id_places: None,
        }
    }

    fn check(raw: BundleView<'_>, source: Arc<str>, parsed: OnceLock<Value>) -> Result<Self, RecError> {
        let bad = |issue, what: &str| RecError::bad_request(issue, what.to_owned());
        if raw.resource_type.as_deref() != Some("Bundle") {
            return Err(bad(IssueType::Invalid, "The body is not a FHIR Bundle"));
        }
        if raw.bundle_type.as_deref() != Some("message") {
            return Err(bad(IssueType::Invalid, "Bundle.type must be 'message'"));
        }
        let id = owned(raw.id.as_deref()).ok_or_else(|| bad(IssueType::Required, "Bundle.id is missing"))?;
        let version = owned(raw.version.as_deref()).ok_or_else(|| {
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
        let entries = raw.entries;
        if entries.count == 0 {
            return Err(bad(IssueType::Structure, "Bundle.entry is missing or empty"));
        }
        match entries.first_problem {
            Some((index, EntryProblem::NoFullUrl)) => {
                return Err(RecError::bad_request(
                    IssueType::Structure,
                    format!("Bundle.entry[{index}].fullUrl is missing"),
                ));
            }
            Some((index, EntryProblem::NoResourceType)) => {
                return Err(RecError::bad_request(
                    IssueType::Structure,
                    format!("Bundle.entry[{index}].resource has no resourceType"),
                ));
            }
            None => {}
        }
        let header = &entries.header;
        if header.resource_type.as_deref() != Some("MessageHeader") {
            return Err(bad(
                IssueType::Structure,
                "The first entry must be the MessageHeader",
            ));
        }
        let event = parse_event(header)?;
        let reason = parse_reason(header)?;
        let focus_reference = owned(header.focus_reference.as_deref())
            .ok_or_else(|| bad(IssueType::Required, "MessageHeader.focus is missing"))?;
        let focus_type = entries
            .focus_type
            .as_deref()
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
        let response = match owned(header.response_identifier.as_deref()) {
            Some(identifier) => Some(MessageResponse {
                identifier,
                code: owned(header.response_code.as_deref()),
            }),
            None if event.is_response() => {
                return Err(bad(
                    IssueType::Required,
                    "MessageHeader.response.identifier is required on a response message",
                ));
            }
            None => None,
        };
        let destination_endpoints = header
            .destination_endpoints
            .iter()
            .filter_map(|endpoint| owned(Some(endpoint)))
            .collect();
        Ok(Self {
            id,
            version,
            timestamp: owned(raw.timestamp.as_deref()),
            event,
            reason,
            focus_reference,
            focus_type,
            definition: owned(header.definition.as_deref()),
            destination_endpoints,
            source_endpoint: owned(header.source_endpoint.as_deref()),
            response,
            source,
            raw: parsed,
            id_places: None,
        })
    }
}

/// The bundle's text parsed again, for [`MessageBundle::raw`]. serde_json's own reader: the
/// text already passed the strict parse (no member name repeated), so the checks need not
/// run twice, and its tree is the same one.
fn reparse(source: &str) -> Value {
    // Invariant: every MessageBundle's source passed the strict parse when the message was
    // built (from_json), or is the serialisation of a Value (parse), which always parses.
    #[allow(clippy::expect_used)]
    serde_json::from_str(source).expect("a checked message bundle parses")
}

fn parse_event(header: &Header<'_>) -> Result<MessageEvent, RecError> {
    if header.event_system.as_deref() != Some(EVENT_SYSTEM) {
        return Err(RecError::bad_request(
            IssueType::Value,
            format!("MessageHeader.eventCoding.system must be {EVENT_SYSTEM}"),
        ));
    }
    let code = header.event_code.as_deref().unwrap_or_default();
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

fn parse_reason(header: &Header<'_>) -> Result<MessageReason, RecError> {
    let code = header.reason_code.as_ref().ok_or_else(|| {
        RecError::bad_request(
            IssueType::Required,
            format!("MessageHeader.reason has no coding from {REASON_SYSTEM}"),
        )
    })?;
    let code = code.as_deref().unwrap_or_default();
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

/// A required string, trimmed and owned; `None` when absent or empty.
fn owned(value: Option<&str>) -> Option<String> {
    non_empty(value).map(str::to_owned)
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
            m.raw().to_string().contains("1.10"),
            "decimals keep their written precision"
        );
        let err = MessageBundle::from_json("{not json").unwrap_err();
        assert_eq!(err.issue(), IssueType::Structure);
    }

    #[test]
    fn reads_only_what_the_rules_need_whatever_shape_the_rest_has() {
        // Values of the wrong JSON type count as absent, as the rules read them.
        let err = err_of(|b| b["meta"] = json!(1.5));
        assert_eq!(err.issue(), IssueType::Invariant, "{err}");
        let err = err_of(|b| b["entry"] = json!({"fullUrl": "x"}));
        assert!(err.diagnostics().contains("entry is missing"), "{err}");
        let err = err_of(|b| b["entry"][0]["resource"]["focus"] = json!({"reference": "urn:uuid:sr"}));
        assert!(err.diagnostics().contains("focus is missing"), "{err}");
        let err =
            err_of(|b| b["entry"][0]["resource"]["reason"]["coding"] = json!({"system": REASON_SYSTEM}));
        assert_eq!(err.issue(), IssueType::Required, "{err}");
        // The first coding from the BaRS system counts, wherever it is in the list.
        let mut b = minimal();
        b["entry"][0]["resource"]["reason"]["coding"] = json!([
            {"system": "x", "code": "delete"},
            {"system": REASON_SYSTEM, "code": "update"},
            {"system": REASON_SYSTEM, "code": "new"}
        ]);
        assert_eq!(MessageBundle::parse(b).unwrap().reason, MessageReason::Update);
        // The focus resolves to the first entry with that fullUrl.
        let mut b = minimal();
        let entries = b["entry"].as_array_mut().unwrap();
        entries.push(json!({"fullUrl": "urn:uuid:sr", "resource": {"resourceType": "Appointment"}}));
        assert_eq!(MessageBundle::parse(b).unwrap().focus_type, "ServiceRequest");
        // Everything else is skipped, however it is shaped.
        let mut b = minimal();
        b["entry"][1]["resource"]["contained"] = json!([[1, {"a": [null, true, "x", 1e300]}], {}]);
        b["extension"] = json!([{"url": "u", "valueDecimal": 1.000}]);
        let m = MessageBundle::parse(b.clone()).unwrap();
        assert_eq!(m.raw(), &b);
    }

    #[test]
    fn parses_the_whole_bundle_only_when_asked() {
        let text = minimal().to_string();
        let m = MessageBundle::from_json(&text).unwrap();
        assert!(m.raw.get().is_none(), "checking reads no Value");
        let copy = m.clone();
        assert_eq!(m.raw()["id"], "b1");
        assert_eq!(m, copy, "equality does not depend on what was parsed");
        assert_eq!(copy.into_raw(), minimal());
        assert_eq!(m.into_raw(), minimal());
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
