//! The inputs and outputs of handlers.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::fhir::RecError;

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

/// A validated `GET /Slot` search: status, a closed start range normalised to UTC, and the
/// `_include`s asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotQuery {
    /// `status` (e.g. `free`).
    pub status: String,
    /// `start=ge...`, in UTC.
    pub start_from: OffsetDateTime,
    /// `start=le...`, in UTC.
    pub start_to: OffsetDateTime,
    /// `_include` values, as sent (unsupported ones may be ignored).
    pub includes: Vec<String>,
    /// Every parameter as sent, for anything else (`schedule.actor:healthcareservice`...).
    pub params: SearchParams,
}

impl SlotQuery {
    /// Validates a slot search: `status`, `start=ge<dateTime>` and `start=le<dateTime>` (each
    /// with a UTC offset, normalised to UTC) and at least one `_include` are required.
    pub fn parse(params: SearchParams) -> Result<Self, RecError> {
        use crate::fhir::IssueType;
        let missing =
            |what: &str| RecError::bad_request(IssueType::Required, format!("Slot search needs {what}"));
        let status = params
            .get("status")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("status"))?
            .to_owned();
        let mut from = None;
        let mut to = None;
        for value in params.get_all("start") {
            let (prefix, rest) = value.split_at(value.len().min(2));
            let at = parse_instant(rest).ok_or_else(|| {
                RecError::bad_request(
                    IssueType::Value,
                    "Slot search start must be ge or le followed by a dateTime with a UTC offset",
                )
            })?;
            match prefix {
                "ge" => from = Some(at),
                "le" => to = Some(at),
                _ => {
                    return Err(RecError::bad_request(
                        IssueType::Value,
                        "Slot search start must use the ge and le prefixes",
                    ));
                }
            }
        }
        let start_from = from.ok_or_else(|| missing("start=ge<dateTime>"))?;
        let start_to = to.ok_or_else(|| missing("start=le<dateTime>"))?;
        if start_to < start_from {
            return Err(RecError::bad_request(
                IssueType::Invalid,
                "Slot search start range ends before it begins",
            ));
        }
        let includes: Vec<String> = params.get_all("_include").map(str::to_owned).collect();
        if includes.is_empty() {
            return Err(missing("_include"));
        }
        Ok(Self {
            status,
            start_from,
            start_to,
            includes,
            params,
        })
    }
}

fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(parsed.to_offset(time::UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        SearchParams::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    }

    #[test]
    fn parses_a_slot_search_and_normalises_to_utc() {
        let q = SlotQuery::parse(params(&[
            ("status", "free"),
            ("start", "ge2026-03-01T09:00:00+01:00"),
            ("start", "le2026-03-02T09:00:00Z"),
            ("_include", "Slot:schedule"),
        ]))
        .unwrap();
        assert_eq!(q.status, "free");
        assert_eq!(q.start_from.offset(), time::UtcOffset::UTC);
        assert_eq!(q.start_from.hour(), 8);
        assert_eq!(q.includes, vec!["Slot:schedule"]);
    }

    #[test]
    fn refuses_incomplete_slot_searches() {
        let base = [
            ("status", "free"),
            ("start", "ge2026-03-01T09:00:00Z"),
            ("start", "le2026-03-02T09:00:00Z"),
            ("_include", "Slot:schedule"),
        ];
        for skip in 0..base.len() {
            let partial: Vec<_> = base
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            let err = SlotQuery::parse(params(&partial)).unwrap_err();
            assert_eq!(err.status(), 400);
        }
        let no_offset = SlotQuery::parse(params(&[
            ("status", "free"),
            ("start", "ge2026-03-01T09:00:00"),
            ("start", "le2026-03-02T09:00:00Z"),
            ("_include", "x"),
        ]));
        assert!(no_offset.is_err());
        let backwards = SlotQuery::parse(params(&[
            ("status", "free"),
            ("start", "ge2026-03-03T09:00:00Z"),
            ("start", "le2026-03-02T09:00:00Z"),
            ("_include", "x"),
        ]));
        assert_eq!(backwards.unwrap_err().issue(), crate::fhir::IssueType::Invalid);
    }
}
