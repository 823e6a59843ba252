//! The inputs and outputs of handlers.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::fhir::{IssueType, RecError};

/// What a handler returns.
pub type HandlerResult = Result<FhirResponse, RecError>;

/// A successful FHIR answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FhirResponse {
    /// 200 or 201 (any 2xx when relayed from another system).
    pub status: u16,
    /// The FHIR resource returned; `Value::Null` sends no body (unless the response was
    /// built from JSON text, [`FhirResponse::ok_json_text`]).
    pub body: Value,
    /// `Location` of a created resource.
    pub location: Option<String>,
    /// The receiver's own reference for what was accepted, quoted to senders that retry a
    /// processed message ("Reference ID" in the 409 diagnostics).
    pub reference: Option<String>,
    /// The body as FHIR JSON text, sent as is instead of `body`.
    text: Option<Arc<str>>,
}

impl FhirResponse {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            location: None,
            reference: None,
            text: None,
        }
    }

    /// 200 with a body that is FHIR JSON text already, sent exactly as given and never
    /// parsed (`body` stays `Value::Null`): a message echoed as received,
    /// `FhirResponse::ok_json_text(message.source)`, costs no copy of it.
    pub fn ok_json_text(text: impl Into<Arc<str>>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::ok(Value::Null)
        }
    }

    /// The body given as JSON text ([`FhirResponse::ok_json_text`]).
    pub fn json_text(&self) -> Option<&Arc<str>> {
        self.text.as_ref()
    }

    /// 201 with a body and its location.
    pub fn created(body: Value, location: impl Into<String>) -> Self {
        Self {
            status: 201,
            body,
            location: Some(location.into()),
            reference: None,
            text: None,
        }
    }

    /// Another system's 2xx answer, relayed with its status (`Value::Null`: no body).
    pub fn relayed(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            location: None,
            reference: None,
            text: None,
        }
    }

    /// Adds a `Location`.
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Adds the receiver reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// A RESTful interaction on a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestInteraction {
    /// `read`
    Read,
    /// `search-type`
    Search,
    /// `create`
    Create,
    /// `update`
    Update,
    /// `patch`
    Patch,
    /// `delete`
    Delete,
}

impl RestInteraction {
    /// Every interaction, in CapabilityStatement order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Read,
        Self::Search,
        Self::Create,
        Self::Update,
        Self::Patch,
        Self::Delete,
    ];

    /// The FHIR `TypeRestfulInteraction` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Search => "search-type",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// Query parameters in the order sent, percent-decoded. Names may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchParams(Vec<(String, String)>);

impl SearchParams {
    /// From decoded pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Every pair.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The name of the search parameter naming the service whose slots are asked for, as the
/// OpenAPI spec spells it; [`SLOT_SERVICE_PARAMS`] lists the spellings accepted.
pub const SLOT_SERVICE_PARAM: &str = "Schedule.actor:HealthcareService";

/// The spellings of the slot search's service parameter accepted: the OpenAPI spec's, the
/// FHIR chained-search form (`schedule` is the Slot parameter) and the implementation
/// guide's.
const SLOT_SERVICE_PARAMS: [&str; 3] = [
    SLOT_SERVICE_PARAM,
    "schedule.actor:HealthcareService",
    "Schedule:actor:HealthcareService",
];

/// The `_include`s every slot search must carry (Core 1.5.0: "a minimum of the following 2
/// _includes required for current Applications"). `Slot:*` covers `Slot:schedule`.
pub const REQUIRED_SLOT_INCLUDES: [&str; 2] = ["Slot:schedule", "Schedule:actor:HealthcareService"];

/// A slot status a BaRS slot search may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlotStatus {
    /// `free`
    Free,
    /// `busy`
    Busy,
}

impl SlotStatus {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Busy => "busy",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        match code {
            "free" => Some(Self::Free),
            "busy" => Some(Self::Busy),
            _ => None,
        }
    }
}

/// A validated `GET /Slot` search: the statuses, a closed start range normalised to UTC and
/// no wider than `receiver.max_slot_range`, the service, and the `_include`s asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotQuery {
    /// `status`: each `free` or `busy`, in the order sent (`status=free,busy`, or repeated).
    pub status: Vec<SlotStatus>,
    /// `start=ge...`, in UTC.
    pub start_from: OffsetDateTime,
    /// `start=le...`, in UTC.
    pub start_to: OffsetDateTime,
    /// `Schedule.actor:HealthcareService`: the service whose slots are asked for, as sent
    /// (an id, or `system|value`).
    pub healthcare_service: String,
    /// `_include` values, as sent; they hold at least [`REQUIRED_SLOT_INCLUDES`], and
    /// unsupported ones may be ignored.
    pub includes: Vec<String>,
    /// Every parameter as sent, for anything else.
    pub params: SearchParams,
}

impl SlotQuery {
    /// Validates a slot search by the rules of BaRS Core 1.5.0 (failure scenarios of
    /// `GET /Slot`), every refusal naming the parameter in its expression (`http.status`...):
    ///
    /// - `status` is required (400 `required`); each value, comma-separated, is `free` or
    ///   `busy` (400 `value`);
    /// - `start` is given twice, once `ge` and once `le`, each a dateTime with a UTC offset
    ///   (normalised to UTC), the range not ending before it begins (400 `required`/`value`);
    /// - `Schedule.actor:HealthcareService` is required (400 `required`, 400 `value` for a
    ///   `system|value` with an empty side);
    /// - `_include` holds `Slot:schedule` (or `Slot:*`) and `Schedule:actor:HealthcareService`
    ///   (400 `required`); others are passed on for the handler to honour or ignore;
    /// - a range wider than `max_range` is 422 `too-costly`.
    pub fn parse(params: SearchParams, max_range: std::time::Duration) -> Result<Self, RecError> {
        let status = slot_statuses(&params)?;
        let (start_from, start_to) = start_range(&params)?;
        let healthcare_service = slot_service(&params)?;
        let includes: Vec<String> = params
            .pairs()
            .iter()
            .filter(|(k, _)| k == "_include" || k == "_include:iterate")
            .map(|(_, v)| v.clone())
            .collect();
        for required in REQUIRED_SLOT_INCLUDES {
            let covered = includes
                .iter()
                .any(|i| i == required || (required == "Slot:schedule" && i == "Slot:*"));
            if !covered {
                return Err(RecError::bad_request(
                    IssueType::Required,
                    format!("Slot search needs _include={required}"),
                )
                .with_expression("http._include"));
            }
        }
        let width = start_to - start_from;
        if width > max_range {
            return Err(RecError::unprocessable(
                IssueType::TooCostly,
                format!(
                    "The start time range requested is too wide: this receiver answers at most {}",
                    humantime::format_duration(max_range)
                ),
            )
            .with_expression("http.start"));
        }
        Ok(Self {
            status,
            start_from,
            start_to,
            healthcare_service,
            includes,
            params,
        })
    }
}

/// `patient:identifier` of an Appointment or ServiceRequest search (Core 1.5.0, failure
/// scenarios of `GET /Appointment` and `GET /ServiceRequest`): required (400 `required`),
/// and every value a `system|value` token with both sides non-empty, such as
/// `https://fhir.nhs.uk/Id/nhs-number|9912003888` (400 `value`); expression
/// `http.patient:identifier`.
pub(crate) fn check_patient_search(params: &SearchParams) -> Result<(), RecError> {
    const NAME: &str = "patient:identifier";
    let expression = || format!("http.{NAME}");
    let values: Vec<&str> = params.get_all(NAME).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(RecError::bad_request(
            IssueType::Required,
            format!("The search needs {NAME}=<system>|<value>"),
        )
        .with_expression(expression()));
    }
    if !values.iter().all(|v| is_token(v)) {
        return Err(RecError::bad_request(
            IssueType::Value,
            format!("{NAME} must be system|value, e.g. https://fhir.nhs.uk/Id/nhs-number|<NHS number>"),
        )
        .with_expression(expression()));
    }
    Ok(())
}

fn is_token(text: &str) -> bool {
    text.split_once('|')
        .is_some_and(|(system, value)| !system.is_empty() && !value.is_empty())
}

fn slot_statuses(params: &SearchParams) -> Result<Vec<SlotStatus>, RecError> {
    let values: Vec<&str> = params.get_all("status").filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(
            RecError::bad_request(IssueType::Required, "Slot search needs status")
                .with_expression("http.status"),
        );
    }
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|code| {
            SlotStatus::parse(code).ok_or_else(|| {
                RecError::bad_request(
                    IssueType::Value,
                    "Slot search status must be free or busy (comma-separated for both)",
                )
                .with_expression("http.status")
            })
        })
        .collect()
}

fn start_range(params: &SearchParams) -> Result<(OffsetDateTime, OffsetDateTime), RecError> {
    let invalid = |diagnostics: &str| {
        RecError::bad_request(IssueType::Value, diagnostics).with_expression("http.start")
    };
    let mut from = None;
    let mut to = None;
    for value in params.get_all("start") {
        let (bound, rest) = if let Some(rest) = value.strip_prefix("ge") {
            (&mut from, rest)
        } else if let Some(rest) = value.strip_prefix("le") {
            (&mut to, rest)
        } else {
            return Err(invalid("Slot search start must use the ge and le prefixes"));
        };
        if bound.is_some() {
            return Err(invalid(
                "Slot search start must be given twice: once with ge and once with le",
            ));
        }
        *bound = Some(parse_instant(rest).ok_or_else(|| {
            invalid("Slot search start must be ge or le followed by a dateTime with a UTC offset")
        })?);
    }
    let missing = |what: &str| {
        RecError::bad_request(IssueType::Required, format!("Slot search needs {what}"))
            .with_expression("http.start")
    };
    let from = from.ok_or_else(|| missing("start=ge<dateTime>"))?;
    let to = to.ok_or_else(|| missing("start=le<dateTime>"))?;
    if to < from {
        return Err(invalid("Slot search start range ends before it begins"));
    }
    Ok((from, to))
}

fn slot_service(params: &SearchParams) -> Result<String, RecError> {
    let expression = format!("http.{SLOT_SERVICE_PARAM}");
    let value = params
        .pairs()
        .iter()
        .find(|(k, v)| SLOT_SERVICE_PARAMS.contains(&k.as_str()) && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            RecError::bad_request(
                IssueType::Required,
                format!("Slot search needs {SLOT_SERVICE_PARAM}"),
            )
            .with_expression(expression.clone())
        })?;
    if value.contains('|') && !is_token(value) {
        return Err(RecError::bad_request(
            IssueType::Value,
            format!("{SLOT_SERVICE_PARAM} must be a service id or system|value"),
        )
        .with_expression(expression));
    }
    Ok(value.to_owned())
}

fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(parsed.to_offset(time::UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::IssueType;

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        SearchParams::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    }

    const GOOD: [(&str, &str); 6] = [
        ("status", "free"),
        ("start", "ge2026-03-01T09:00:00Z"),
        ("start", "le2026-03-02T09:00:00Z"),
        ("Schedule.actor:HealthcareService", "2000099999"),
        ("_include", "Slot:schedule"),
        ("_include", "Schedule:actor:HealthcareService"),
    ];

    fn with(replace: &[(&str, &str)], skip: &[&str]) -> SearchParams {
        let mut pairs: Vec<(&str, &str)> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| !skip.contains(k) && !replace.iter().any(|(r, _)| r == k))
            .collect();
        pairs.extend_from_slice(replace);
        params(&pairs)
    }

    #[track_caller]
    fn refused(p: SearchParams, status: u16, issue: IssueType, expression: &str) {
        let err = SlotQuery::parse(p, 31 * DAY).unwrap_err();
        assert_eq!((err.status(), err.issue()), (status, issue), "{err}");
        assert_eq!(
            err.expression().first().map(String::as_str),
            Some(expression),
            "{err}"
        );
    }

    #[test]
    fn parses_a_slot_search_and_normalises_to_utc() {
        let q = SlotQuery::parse(
            with(
                &[
                    ("start", "ge2026-03-01T09:00:00+01:00"),
                    ("start", "le2026-03-02T09:00:00Z"),
                ],
                &[],
            ),
            31 * DAY,
        )
        .unwrap();
        assert_eq!(q.status, vec![SlotStatus::Free]);
        assert_eq!(q.start_from.offset(), time::UtcOffset::UTC);
        assert_eq!(q.start_from.hour(), 8);
        assert_eq!(q.healthcare_service, "2000099999");
        assert_eq!(
            q.includes,
            vec!["Slot:schedule", "Schedule:actor:HealthcareService"]
        );
    }

    #[test]
    fn statuses_are_free_or_busy_comma_separated_or_repeated() {
        let q = SlotQuery::parse(with(&[("status", "free,busy")], &[]), 31 * DAY).unwrap();
        assert_eq!(q.status, vec![SlotStatus::Free, SlotStatus::Busy]);
        let q = SlotQuery::parse(with(&[("status", "busy"), ("status", "free")], &[]), 31 * DAY).unwrap();
        assert_eq!(q.status, vec![SlotStatus::Busy, SlotStatus::Free]);
        for bad in ["invalid", "free,", "Free", "free, busy", "proposed"] {
            refused(
                with(&[("status", bad)], &[]),
                400,
                IssueType::Value,
                "http.status",
            );
        }
        refused(with(&[], &["status"]), 400, IssueType::Required, "http.status");
        refused(
            with(&[("status", "")], &[]),
            400,
            IssueType::Required,
            "http.status",
        );
    }

    #[test]
    fn start_is_a_ge_and_an_le_with_offsets() {
        refused(with(&[], &["start"]), 400, IssueType::Required, "http.start");
        refused(
            with(&[("start", "ge2026-03-01T09:00:00Z")], &[]),
            400,
            IssueType::Required,
            "http.start",
        );
        for bad in [
            "ge2026-03-01T09:00:00",
            "eq2026-03-01T09:00:00Z",
            "2026-03-01T09:00:00Z",
            "g\u{e9}2026",
            "ge",
            "\u{e9}",
        ] {
            refused(
                with(&[("start", bad), ("start", "le2026-03-02T09:00:00Z")], &[]),
                400,
                IssueType::Value,
                "http.start",
            );
        }
        refused(
            with(
                &[
                    ("start", "ge2026-03-01T09:00:00Z"),
                    ("start", "ge2026-03-01T10:00:00Z"),
                    ("start", "le2026-03-02T09:00:00Z"),
                ],
                &[],
            ),
            400,
            IssueType::Value,
            "http.start",
        );
        refused(
            with(
                &[
                    ("start", "ge2026-03-03T09:00:00Z"),
                    ("start", "le2026-03-02T09:00:00Z"),
                ],
                &[],
            ),
            400,
            IssueType::Value,
            "http.start",
        );
    }

    #[test]
    fn the_service_and_the_minimum_includes_are_required() {
        let service = "http.Schedule.actor:HealthcareService";
        refused(
            with(&[], &["Schedule.actor:HealthcareService"]),
            400,
            IssueType::Required,
            service,
        );
        refused(
            with(&[("Schedule.actor:HealthcareService", "")], &[]),
            400,
            IssueType::Required,
            service,
        );
        refused(
            with(&[("Schedule.actor:HealthcareService", "|2000099999")], &[]),
            400,
            IssueType::Value,
            service,
        );
        let fhir_form = params(&[
            ("status", "free"),
            ("start", "ge2026-03-01T09:00:00Z"),
            ("start", "le2026-03-02T09:00:00Z"),
            (
                "schedule.actor:HealthcareService",
                "https://fhir.nhs.uk/Id/dos-service-id|2000099999",
            ),
            ("_include", "Slot:*"),
            ("_include:iterate", "Schedule:actor:HealthcareService"),
        ]);
        let q = SlotQuery::parse(fhir_form, 31 * DAY).unwrap();
        assert_eq!(
            q.healthcare_service,
            "https://fhir.nhs.uk/Id/dos-service-id|2000099999"
        );

        refused(
            with(&[], &["_include"]),
            400,
            IssueType::Required,
            "http._include",
        );
        refused(
            with(&[("_include", "Slot:schedule")], &[]),
            400,
            IssueType::Required,
            "http._include",
        );
        refused(
            with(
                &[
                    ("_include", "Schedule:actor:HealthcareService"),
                    ("_include", "Schedule"),
                ],
                &[],
            ),
            400,
            IssueType::Required,
            "http._include",
        );
        // Unsupported includes beside the minimum are passed on.
        let extra = with(
            &[
                ("_include", "Slot:schedule"),
                ("_include", "Schedule:actor:HealthcareService"),
                ("_include", "HealthcareService:location"),
            ],
            &[],
        );
        assert_eq!(SlotQuery::parse(extra, 31 * DAY).unwrap().includes.len(), 3);
    }

    #[test]
    fn a_range_wider_than_the_maximum_is_too_costly() {
        let wide = with(
            &[
                ("start", "ge2026-03-01T09:00:00Z"),
                ("start", "le2026-03-03T09:00:01Z"),
            ],
            &[],
        );
        let err = SlotQuery::parse(wide.clone(), 2 * DAY).unwrap_err();
        assert_eq!((err.status(), err.issue()), (422, IssueType::TooCostly));
        assert_eq!(err.code().as_str(), "REC_UNPROCESSABLE_ENTITY");
        assert_eq!(err.expression().first().map(String::as_str), Some("http.start"));
        assert!(SlotQuery::parse(wide, 3 * DAY).is_ok());
        let exact = with(
            &[
                ("start", "ge2026-03-01T09:00:00Z"),
                ("start", "le2026-03-03T09:00:00Z"),
            ],
            &[],
        );
        assert!(
            SlotQuery::parse(exact, 2 * DAY).is_ok(),
            "the maximum itself is allowed"
        );
    }

    #[test]
    fn patient_searches_need_a_system_and_value() {
        let ok = params(&[(
            "patient:identifier",
            "https://fhir.nhs.uk/Id/nhs-number|9912003888",
        )]);
        assert!(check_patient_search(&ok).is_ok());
        for (pairs, issue) in [
            (vec![], IssueType::Required),
            (vec![("patient:identifier", "")], IssueType::Required),
            (vec![("patient:name", "Smith")], IssueType::Required),
            (vec![("patient:identifier", "9912003888")], IssueType::Value),
            (vec![("patient:identifier", "|9912003888")], IssueType::Value),
            (
                vec![("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|")],
                IssueType::Value,
            ),
            (
                vec![
                    (
                        "patient:identifier",
                        "https://fhir.nhs.uk/Id/nhs-number|9912003888",
                    ),
                    ("patient:identifier", "4857773456"),
                ],
                IssueType::Value,
            ),
        ] {
            let err = check_patient_search(&params(&pairs)).unwrap_err();
            assert_eq!((err.status(), err.issue()), (400, issue), "{pairs:?}");
            assert_eq!(
                err.expression().first().map(String::as_str),
                Some("http.patient:identifier")
            );
        }
    }
}
