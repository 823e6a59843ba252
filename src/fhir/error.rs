//! `RecError`: a refusal or failure with its BaRS `REC_` code, HTTP status and FHIR issue
//! type, rendered as the one-issue OperationOutcome every BaRS error body must be.

use serde_json::{Value, json};
use uuid::Uuid;

/// The code system BaRS uses for HTTP error codes. Spelt `Codesystem`, as the national proxy
/// and the published examples do.
pub const HTTP_ERROR_CODE_SYSTEM: &str = "https://fhir.nhs.uk/Codesystem/http-error-codes";

/// The profile stamped on every OperationOutcome this receiver emits.
pub(crate) const OPERATION_OUTCOME_PROFILE: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome";

/// A BaRS receiver error code (`REC_*`), which fixes the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecCode {
    /// 400 `REC_BAD_REQUEST`.
    BadRequest,
    /// 401 `REC_UNAUTHORIZED`.
    Unauthorized,
    /// 403 `REC_FORBIDDEN`.
    Forbidden,
    /// 404 `REC_NOT_FOUND`.
    NotFound,
    /// 405 `REC_METHOD_NOT_ALLOWED`.
    MethodNotAllowed,
    /// 406 `REC_NOT_ACCEPTABLE`.
    NotAcceptable,
    /// 408 `REC_TIMEOUT`.
    Timeout,
    /// 409 `REC_CONFLICT`.
    Conflict,
    /// 413: BaRS names no code for it, so it keeps the `REC_BAD_REQUEST` family.
    PayloadTooLarge,
    /// 415: likewise `REC_BAD_REQUEST`.
    UnsupportedMediaType,
    /// 422 `REC_UNPROCESSABLE_ENTITY`.
    UnprocessableEntity,
    /// 425 `REC_TOO_EARLY`.
    TooEarly,
    /// 429 `REC_TOO_MANY_REQUESTS`.
    TooManyRequests,
    /// 500 `REC_SERVER_ERROR`.
    ServerError,
    /// 501 `REC_NOT_IMPLEMENTED`.
    NotImplemented,
    /// 503 `REC_SERVICE_UNAVAILABLE`.
    ServiceUnavailable,
}

impl RecCode {
    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::Timeout => 408,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::UnprocessableEntity => 422,
            Self::TooEarly => 425,
            Self::TooManyRequests => 429,
            Self::ServerError => 500,
            Self::NotImplemented => 501,
            Self::ServiceUnavailable => 503,
        }
    }

    /// The code as it appears in `issue.details.coding.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest | Self::PayloadTooLarge | Self::UnsupportedMediaType => "REC_BAD_REQUEST",
            Self::Unauthorized => "REC_UNAUTHORIZED",
            Self::Forbidden => "REC_FORBIDDEN",
            Self::NotFound => "REC_NOT_FOUND",
            Self::MethodNotAllowed => "REC_METHOD_NOT_ALLOWED",
            Self::NotAcceptable => "REC_NOT_ACCEPTABLE",
            Self::Timeout => "REC_TIMEOUT",
            Self::Conflict => "REC_CONFLICT",
            Self::UnprocessableEntity => "REC_UNPROCESSABLE_ENTITY",
            Self::TooEarly => "REC_TOO_EARLY",
            Self::TooManyRequests => "REC_TOO_MANY_REQUESTS",
            Self::ServerError => "REC_SERVER_ERROR",
            Self::NotImplemented => "REC_NOT_IMPLEMENTED",
            Self::ServiceUnavailable => "REC_SERVICE_UNAVAILABLE",
        }
    }

    /// The code whose HTTP status is `status`, if BaRS has one (413 and 415 keep the
    /// `REC_BAD_REQUEST` family).
    pub fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            406 => Self::NotAcceptable,
            408 => Self::Timeout,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::UnprocessableEntity,
            425 => Self::TooEarly,
            429 => Self::TooManyRequests,
            500 => Self::ServerError,
            501 => Self::NotImplemented,
            503 => Self::ServiceUnavailable,
            _ => return None,
        })
    }

    /// The human-readable `display` of the coding, worded after the BaRS API specification.
    pub fn display(self) -> &'static str {
        match self {
            Self::BadRequest => "400: The Receiver has responded stating the message was malformed.",
            Self::Unauthorized => "401: The Receiver deemed you unauthorized to make this request.",
            Self::Forbidden => "403: The Receiver refused access.",
            Self::NotFound => "404: The Receiver could not find what was requested.",
            Self::MethodNotAllowed => "405: The Receiver does not allow this method here.",
            Self::NotAcceptable => "406: The Receiver cannot produce the requested media type or version.",
            Self::Timeout => "408: The Receiver did not complete processing within the time allowed.",
            Self::Conflict => "409: The Receiver found a conflict with this message.",
            Self::PayloadTooLarge => "413: The Receiver refused a request body over its size limit.",
            Self::UnsupportedMediaType => "415: The Receiver accepts only FHIR JSON request bodies.",
            Self::UnprocessableEntity => {
                "422: Message was not malformed but deemed unprocessable by the Receiver."
            }
            Self::TooEarly => "425: The Receiver has not finished processing the previous attempt.",
            Self::TooManyRequests => "429: The Receiver has received too many requests.",
            Self::ServerError => "500: The Receiver has encountered an error processing the request.",
            Self::NotImplemented => "501: The Receiver has not implemented this function.",
            Self::ServiceUnavailable => "503: The Receiver was unavailable to service the request.",
        }
    }
}

/// A FHIR `IssueType` code (the subset BaRS uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueType {
    /// `invalid`
    Invalid,
    /// `structure`
    Structure,
    /// `required`
    Required,
    /// `value`
    Value,
    /// `invariant`
    Invariant,
    /// `security`
    Security,
    /// `forbidden`
    Forbidden,
    /// `processing`
    Processing,
    /// `not-supported`
    NotSupported,
    /// `duplicate`
    Duplicate,
    /// `not-found`
    NotFound,
    /// `conflict`
    Conflict,
    /// `too-costly`
    TooCostly,
    /// `timeout`
    Timeout,
    /// `throttled`
    Throttled,
    /// `exception`
    Exception,
    /// `transient`
    Transient,
    /// `no-store`
    NoStore,
}

impl IssueType {
    /// Parses a FHIR issue type code of the subset BaRS uses.
    pub fn from_code(code: &str) -> Option<Self> {
        ALL_ISSUE_TYPES.iter().copied().find(|t| t.as_str() == code)
    }

    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::Invariant => "invariant",
            Self::Security => "security",
            Self::Forbidden => "forbidden",
            Self::Processing => "processing",
            Self::NotSupported => "not-supported",
            Self::Duplicate => "duplicate",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::TooCostly => "too-costly",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
            Self::Exception => "exception",
            Self::Transient => "transient",
            Self::NoStore => "no-store",
        }
    }
}

const ALL_ISSUE_TYPES: [IssueType; 18] = [
    IssueType::Invalid,
    IssueType::Structure,
    IssueType::Required,
    IssueType::Value,
    IssueType::Invariant,
    IssueType::Security,
    IssueType::Forbidden,
    IssueType::Processing,
    IssueType::NotSupported,
    IssueType::Duplicate,
    IssueType::NotFound,
    IssueType::Conflict,
    IssueType::TooCostly,
    IssueType::Timeout,
    IssueType::Throttled,
    IssueType::Exception,
    IssueType::Transient,
    IssueType::NoStore,
];

/// A refusal or failure answered as a BaRS OperationOutcome.
///
/// `diagnostics` is sent to the caller: it says what was wrong with the request, never
/// internal detail (paths, SQL, stack traces) and never patient data.
///
/// The OperationOutcome's resource id is fixed when the error is made, so the body sent and
/// the body recorded for a retry's replay are the same resource.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} ({}): {diagnostics}", code.as_str(), issue.as_str())]
pub struct RecError {
    code: RecCode,
    issue: IssueType,
    diagnostics: String,
    id: Uuid,
    retryable: bool,
    /// `issue.expression`: FHIRPath to the element at fault (or the parameter's name).
    expression: Vec<String>,
    /// An OperationOutcome answered by a downstream system, sent on unchanged.
    relayed: Option<std::sync::Arc<Relayed>>,
}

#[derive(Debug)]
struct Relayed {
    status: u16,
    outcome: Value,
    /// The outcome's text exactly as the downstream system sent it.
    text: std::sync::Arc<str>,
}

/// Errors are equal when they say the same thing, whatever their resource ids.
impl PartialEq for RecError {
    fn eq(&self, other: &Self) -> bool {
        (self.code, self.issue, &self.diagnostics, &self.expression)
            == (other.code, other.issue, &other.diagnostics, &other.expression)
    }
}

impl Eq for RecError {}

impl RecError {
    /// Any code with any issue type.
    pub fn new(code: RecCode, issue: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            code,
            issue,
            diagnostics: diagnostics.into(),
            id: Uuid::new_v4(),
            retryable: false,
            expression: Vec::new(),
            relayed: None,
        }
    }

    /// Names the element at fault in `issue.expression`: a FHIRPath such as
    /// `Bundle.entry[0].resource.definition`, or a search parameter's name. Called again, it
    /// adds another.
    pub fn with_expression(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }

    /// `issue.expression`.
    pub fn expression(&self) -> &[String] {
        &self.expression
    }

    /// An OperationOutcome answered by a downstream system (the provider's own system behind
    /// a forwarding handler), sent to the caller unchanged with its status. `status` must
    /// be 4xx or 5xx and `outcome` an OperationOutcome; otherwise `None`.
    ///
    /// The code, issue type and diagnostics are read from the outcome's first issue where
    /// they are BaRS values; the code falls back to the one of `status` (or
    /// `REC_BAD_REQUEST`/`REC_SERVER_ERROR` for statuses BaRS has no code for), so that
    /// [`RecError::is_transient`] still decides de-duplication by status.
    pub fn relayed(status: u16, outcome: Value) -> Option<Self> {
        let text = outcome.to_string();
        Self::relayed_parsed(status, outcome, text.into())
    }

    /// Like [`RecError::relayed`], from the OperationOutcome's JSON text, which is sent byte
    /// for byte as given (numbers, member order and white space included) and recorded so for
    /// a retry's replay. `None` unless `status` is 4xx or 5xx and `text` an OperationOutcome.
    pub fn relayed_text(status: u16, text: impl Into<std::sync::Arc<str>>) -> Option<Self> {
        let text = text.into();
        let outcome = serde_json::from_str(&text).ok()?;
        Self::relayed_parsed(status, outcome, text)
    }

    /// [`RecError::relayed_text`] when the caller has parsed `text` already (as `outcome`).
    pub(crate) fn relayed_parsed(status: u16, outcome: Value, text: std::sync::Arc<str>) -> Option<Self> {
        if !(400..=599).contains(&status) || outcome["resourceType"] != "OperationOutcome" {
            return None;
        }
        let issue = &outcome["issue"][0];
        let code = RecCode::from_status(status).unwrap_or(if status >= 500 {
            RecCode::ServerError
        } else {
            RecCode::BadRequest
        });
        let issue_type = issue["code"]
            .as_str()
            .and_then(IssueType::from_code)
            .unwrap_or(IssueType::Processing);
        let diagnostics = issue["diagnostics"].as_str().unwrap_or_default().to_owned();
        let mut error = Self::new(code, issue_type, diagnostics);
        error.relayed = Some(std::sync::Arc::new(Relayed {
            status,
            outcome,
            text,
        }));
        Some(error)
    }

    /// 400 `REC_BAD_REQUEST` with the given issue type.
    pub fn bad_request(issue: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::BadRequest, issue, diagnostics)
    }

    /// 401 `REC_UNAUTHORIZED`/`forbidden`: access control on the NHSD-* headers failed.
    pub fn unauthorized(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::Unauthorized, IssueType::Forbidden, diagnostics)
    }

    /// 404 `REC_NOT_FOUND`/`not-found`.
    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::NotFound, IssueType::NotFound, diagnostics)
    }

    /// 409 `REC_CONFLICT`/`conflict`: local data changed since the sender last saw it.
    pub fn conflict(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::Conflict, IssueType::Conflict, diagnostics)
    }

    /// 422 `REC_UNPROCESSABLE_ENTITY` with the given issue type.
    pub fn unprocessable(issue: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::UnprocessableEntity, issue, diagnostics)
    }

    /// 500 `REC_SERVER_ERROR`/`exception`. Log the cause yourself; say nothing of it here.
    pub fn server_error(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::ServerError, IssueType::Exception, diagnostics)
    }

    /// 501 `REC_NOT_IMPLEMENTED`/`not-supported`.
    pub fn not_implemented(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::NotImplemented, IssueType::NotSupported, diagnostics)
    }

    /// 503 `REC_SERVICE_UNAVAILABLE`/`transient`.
    pub fn unavailable(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::ServiceUnavailable, IssueType::Transient, diagnostics)
    }

    /// 408 `REC_TIMEOUT`/`timeout`.
    pub fn timeout(diagnostics: impl Into<String>) -> Self {
        Self::new(RecCode::Timeout, IssueType::Timeout, diagnostics)
    }

    /// The BaRS code.
    pub fn code(&self) -> RecCode {
        self.code
    }

    /// The FHIR issue type.
    pub fn issue(&self) -> IssueType {
        self.issue
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.relayed
            .as_ref()
            .map_or_else(|| self.code.status(), |r| r.status)
    }

    /// The diagnostics text sent to the caller.
    pub fn diagnostics(&self) -> &str {
        &self.diagnostics
    }

    /// Marks this error as not final: a retry with the same `X-Request-Id` is processed
    /// again instead of being answered with this error. Use it when the cause lies outside
    /// the request (a downstream system unavailable, an interrupted upload).
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// Whether a retry with the same `X-Request-Id` should be processed again rather than
    /// answered with this error: errors marked [`RecError::retryable`], every 5xx (the
    /// receiver's fault, not the message's), and the refusals that mean "not now" (408, 425,
    /// 429). Everything else depends only on the request, so a retry gets the same answer.
    pub fn is_transient(&self) -> bool {
        self.retryable
            || self.status() >= 500
            || matches!(
                self.code,
                RecCode::Timeout | RecCode::TooEarly | RecCode::TooManyRequests
            )
            || matches!(self.issue, IssueType::Transient | IssueType::NoStore)
    }

    /// The OperationOutcome as JSON text, as it is sent: a relayed one exactly as it was
    /// received.
    pub fn to_operation_outcome_text(&self) -> String {
        match &self.relayed {
            Some(relayed) => relayed.text.to_string(),
            None => self.to_operation_outcome().to_string(),
        }
    }

    /// The one-issue OperationOutcome (a relayed one as it was received).
    pub fn to_operation_outcome(&self) -> Value {
        if let Some(relayed) = &self.relayed {
            return relayed.outcome.clone();
        }
        let mut outcome = json!({
            "resourceType": "OperationOutcome",
            "id": self.id.to_string(),
            "meta": {"profile": [OPERATION_OUTCOME_PROFILE]},
            "issue": [{
                "severity": "error",
                "code": self.issue.as_str(),
                "details": {"coding": [{
                    "system": HTTP_ERROR_CODE_SYSTEM,
                    "code": self.code.as_str(),
                    "display": self.code.display(),
                }]},
                "diagnostics": self.diagnostics,
            }],
        });
        if !self.expression.is_empty() {
            outcome["issue"][0]["expression"] = json!(self.expression);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_one_issue_operation_outcome() {
        let oo = RecError::bad_request(IssueType::Required, "X-Request-Id is missing").to_operation_outcome();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert!(Uuid::parse_str(oo["id"].as_str().unwrap_or_default()).is_ok());
        let issues = oo["issue"].as_array().unwrap();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0]["severity"], "error");
        assert_eq!(issues[0]["code"], "required");
        let coding = &issues[0]["details"]["coding"][0];
        assert_eq!(coding["system"], HTTP_ERROR_CODE_SYSTEM);
        assert_eq!(coding["code"], "REC_BAD_REQUEST");
        assert!(coding["display"].as_str().unwrap().starts_with("400"));
        assert_eq!(issues[0]["diagnostics"], "X-Request-Id is missing");
        assert!(issues[0].get("expression").is_none());
        let named = RecError::bad_request(IssueType::Required, "x").with_expression("context");
        assert_eq!(
            named.to_operation_outcome()["issue"][0]["expression"],
            json!(["context"])
        );
    }

    #[test]
    fn names_the_element_at_fault_in_the_expression() {
        let e = RecError::bad_request(IssueType::Value, "bad status").with_expression("http.status");
        assert_eq!(e.expression(), ["http.status"]);
        assert_eq!(
            e.to_operation_outcome()["issue"][0]["expression"],
            json!(["http.status"])
        );
    }

    #[test]
    fn names_the_element_at_fault_in_the_issue_expression() {
        let plain = RecError::bad_request(IssueType::Required, "x").to_operation_outcome();
        assert!(plain["issue"][0].get("expression").is_none());
        let err = RecError::bad_request(IssueType::Required, "x")
            .with_expression("Bundle.entry[0].resource.source.endpoint");
        assert_eq!(
            err.expression().first().map(String::as_str),
            Some("Bundle.entry[0].resource.source.endpoint")
        );
        let oo = err.to_operation_outcome();
        assert_eq!(
            oo["issue"][0]["expression"],
            json!(["Bundle.entry[0].resource.source.endpoint"])
        );
    }

    #[test]
    fn size_and_media_type_refusals_keep_the_bad_request_code() {
        assert_eq!(RecCode::PayloadTooLarge.status(), 413);
        assert_eq!(RecCode::PayloadTooLarge.as_str(), "REC_BAD_REQUEST");
        assert_eq!(RecCode::UnsupportedMediaType.status(), 415);
        assert_eq!(RecCode::UnsupportedMediaType.as_str(), "REC_BAD_REQUEST");
    }

    #[test]
    fn only_request_determined_refusals_are_final() {
        assert!(!RecError::bad_request(IssueType::Value, "x").is_transient());
        assert!(!RecError::unprocessable(IssueType::NotSupported, "x").is_transient());
        assert!(
            RecError::bad_request(IssueType::Structure, "x")
                .retryable()
                .is_transient()
        );
        assert!(RecError::server_error("x").is_transient());
        assert!(RecError::unavailable("x").is_transient());
        assert!(RecError::timeout("x").is_transient());
        assert!(RecError::new(RecCode::TooManyRequests, IssueType::Throttled, "x").is_transient());
    }

    #[test]
    fn relays_a_downstream_operation_outcome_unchanged() {
        let outcome = json!({"resourceType": "OperationOutcome", "id": "x", "issue": [{
            "severity": "error", "code": "business-rule", "diagnostics": "slot taken"}]});
        let e = RecError::relayed(409, outcome.clone()).unwrap();
        assert_eq!(e.status(), 409);
        assert_eq!(e.code(), RecCode::Conflict);
        assert_eq!(e.to_operation_outcome(), outcome);
        assert_eq!(e.diagnostics(), "slot taken");
        assert!(!e.is_transient());
        let gone = RecError::relayed(410, outcome.clone()).unwrap();
        assert_eq!(gone.status(), 410);
        assert!(RecError::relayed(502, outcome.clone()).unwrap().is_transient());
        assert!(RecError::relayed(200, outcome).is_none());
        assert!(RecError::relayed(400, json!({"resourceType": "Bundle"})).is_none());
        assert_eq!(IssueType::from_code("no-store"), Some(IssueType::NoStore));
        assert_eq!(RecCode::from_status(425), Some(RecCode::TooEarly));
    }

    #[test]
    fn a_relayed_outcome_text_is_sent_byte_for_byte() {
        let text = "{ \"resourceType\" : \"OperationOutcome\", \"issue\": [{\"severity\": \"error\",\n  \"code\": \"value\", \"diagnostics\": \"too many\", \"extension\": [{\"valueDecimal\": 1e2}]}] }";
        let e = RecError::relayed_text(400, text).unwrap();
        assert_eq!(e.to_operation_outcome_text(), text);
        assert_eq!(
            (e.status(), e.issue(), e.diagnostics()),
            (400, IssueType::Value, "too many")
        );
        assert!(RecError::relayed_text(400, "{\"resourceType\": \"Bundle\"}").is_none());
        assert!(RecError::relayed_text(400, "not json").is_none());
        assert!(RecError::relayed_text(200, text).is_none());
        let own = RecError::not_found("x");
        assert_eq!(
            own.to_operation_outcome_text(),
            own.to_operation_outcome().to_string()
        );
    }

    #[test]
    fn renders_the_same_resource_id_every_time() {
        let e = RecError::not_found("x");
        assert_eq!(e.to_operation_outcome(), e.to_operation_outcome());
        assert_ne!(
            e.to_operation_outcome()["id"],
            RecError::not_found("x").to_operation_outcome()["id"]
        );
    }

    #[test]
    fn every_display_starts_with_its_status() {
        for code in [
            RecCode::BadRequest,
            RecCode::Unauthorized,
            RecCode::Forbidden,
            RecCode::NotFound,
            RecCode::MethodNotAllowed,
            RecCode::NotAcceptable,
            RecCode::Timeout,
            RecCode::Conflict,
            RecCode::PayloadTooLarge,
            RecCode::UnsupportedMediaType,
            RecCode::UnprocessableEntity,
            RecCode::TooEarly,
            RecCode::TooManyRequests,
            RecCode::ServerError,
            RecCode::NotImplemented,
            RecCode::ServiceUnavailable,
        ] {
            assert!(code.display().starts_with(&code.status().to_string()), "{code:?}");
            assert!(code.as_str().starts_with("REC_"));
        }
    }
}
