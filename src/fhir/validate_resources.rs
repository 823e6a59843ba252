//! The rules a message's resources are held to, element by element: what FHIR R4 requires
//! of the resource types BaRS messages carry (elements with min 1, their JSON shape, the
//! codes of required bindings), plus the constraints of the BaRS ServiceRequest profiles.
//! Types not listed here are checked only for their `resourceType` and `id`.

use super::tree::Json;

use super::error::{IssueType, RecError};
use super::validate_definitions::DefinitionRules;

/// The shape a required element takes.
#[derive(Clone, Copy)]
enum Shape {
    /// A `code` from a required binding: one of these.
    Code(&'static [&'static str]),
    /// A string (dateTime, instant, string).
    Text,
    /// A JSON object (Reference, CodeableConcept, Coding, Period).
    Object,
    /// A non-empty JSON array.
    List,
    /// A Reference with its `reference`.
    Reference,
}

use Shape::{Code, List, Object, Reference, Text};

const REQUEST_STATUS: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];

/// The elements FHIR R4 requires (min 1) of each type, with their shapes.
const REQUIRED: &[(&str, &[(&str, Shape)])] = &[
    (
        "ServiceRequest",
        &[
            ("status", Code(REQUEST_STATUS)),
            (
                "intent",
                Code(&[
                    "proposal",
                    "plan",
                    "directive",
                    "order",
                    "original-order",
                    "reflex-order",
                    "filler-order",
                    "instance-order",
                    "option",
                ]),
            ),
            ("subject", Reference),
        ],
    ),
    (
        "Appointment",
        &[
            (
                "status",
                Code(&[
                    "proposed",
                    "pending",
                    "booked",
                    "arrived",
                    "fulfilled",
                    "cancelled",
                    "noshow",
                    "entered-in-error",
                    "checked-in",
                    "waitlist",
                ]),
            ),
            ("participant", List),
        ],
    ),
    (
        "Encounter",
        &[
            (
                "status",
                Code(&[
                    "planned",
                    "arrived",
                    "triaged",
                    "in-progress",
                    "onleave",
                    "finished",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ]),
            ),
            ("class", Object),
        ],
    ),
    (
        "Slot",
        &[
            ("schedule", Reference),
            (
                "status",
                Code(&[
                    "busy",
                    "free",
                    "busy-unavailable",
                    "busy-tentative",
                    "entered-in-error",
                ]),
            ),
            ("start", Text),
            ("end", Text),
        ],
    ),
    ("Schedule", &[("actor", List)]),
    (
        "CarePlan",
        &[
            ("status", Code(REQUEST_STATUS)),
            ("intent", Code(&["proposal", "plan", "order", "option"])),
            ("subject", Reference),
        ],
    ),
    (
        "Consent",
        &[
            (
                "status",
                Code(&[
                    "draft",
                    "proposed",
                    "active",
                    "rejected",
                    "inactive",
                    "entered-in-error",
                ]),
            ),
            ("scope", Object),
            ("category", List),
        ],
    ),
    (
        "Flag",
        &[
            ("status", Code(&["active", "inactive", "entered-in-error"])),
            ("code", Object),
            ("subject", Reference),
        ],
    ),
    (
        "Observation",
        &[
            (
                "status",
                Code(&[
                    "registered",
                    "preliminary",
                    "final",
                    "amended",
                    "corrected",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ]),
            ),
            ("code", Object),
        ],
    ),
];

const REFERRAL_PROFILE: &str = "https://fhir.nhs.uk/StructureDefinition/BARSServiceRequest-request-referral";
const VALIDATION_PROFILE: &str =
    "https://fhir.nhs.uk/StructureDefinition/BARSServiceRequest-request-validation";

/// A string member, trimmed; `None` when absent, not a string or empty.
pub(super) fn text<'v>(value: &'v Json<'v>, name: &str) -> Option<&'v str> {
    value[name].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// Checks one entry's resource, found at `at` (`Bundle.entry[3].resource`), against the
/// rules of its type and, for a ServiceRequest, the BaRS profile its definition names
/// (`new`: the message's reason is `new`).
pub(super) fn check_resource(
    resource: &Json<'_>,
    at: &str,
    rules: Option<&DefinitionRules>,
    new: bool,
) -> Result<(), RecError> {
    let resource_type = text(resource, "resourceType").unwrap_or_default();
    let required = REQUIRED
        .iter()
        .find(|(ty, _)| *ty == resource_type)
        .map_or(&[][..], |(_, elements)| *elements);
    for &(name, shape) in required {
        check_element(resource, at, resource_type, name, shape)?;
    }
    if let (Some(rules), "ServiceRequest") = (rules, resource_type) {
        check_bars_service_request(resource, at, rules, new)?;
    }
    Ok(())
}

fn check_element(resource: &Json<'_>, at: &str, ty: &str, name: &str, shape: Shape) -> Result<(), RecError> {
    let path = format!("{at}.{name}");
    let value = &resource[name];
    let missing = match value {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    };
    if missing {
        return Err(
            RecError::bad_request(IssueType::Required, format!("{ty}.{name} is required"))
                .with_expression(path),
        );
    }
    let wrong = |kind: &str| {
        Err(
            RecError::bad_request(IssueType::Structure, format!("{ty}.{name} must be {kind}"))
                .with_expression(path.clone()),
        )
    };
    match shape {
        Code(codes) => match value.as_str() {
            Some(code) if codes.contains(&code) => Ok(()),
            Some(_) => Err(RecError::bad_request(
                IssueType::Value,
                format!("{ty}.{name} must be one of {}", codes.join(", ")),
            )
            .with_expression(path)),
            None => wrong("a code (a JSON string)"),
        },
        Text if !value.is_string() => wrong("a JSON string"),
        Object if !value.is_object() => wrong("a JSON object"),
        List if !value.is_array() => wrong("a JSON array"),
        Reference if !value.is_object() => wrong("a Reference (a JSON object)"),
        Reference if text(value, "reference").is_none() && value.get("identifier").is_none() => {
            Err(RecError::bad_request(
                IssueType::Required,
                format!("{ty}.{name} must carry a reference or an identifier"),
            )
            .with_expression(format!("{path}.reference")))
        }
        _ => Ok(()),
    }
}

/// BARSServiceRequest-request-referral 1.0.5 and -request-validation 1.0.3: `intent`
/// fixed to `plan`, `category` 1..1; a new referral needs `authoredOn` (the IG's own
/// update examples carry none, and must be accepted).
fn check_bars_service_request(
    resource: &Json<'_>,
    at: &str,
    rules: &DefinitionRules,
    new: bool,
) -> Result<(), RecError> {
    let profile = rules
        .focus
        .iter()
        .find(|f| f.resource_type == "ServiceRequest")
        .map(|f| f.profile.as_str());
    if !matches!(profile, Some(REFERRAL_PROFILE | VALIDATION_PROFILE)) {
        return Ok(());
    }
    if resource["intent"] != "plan" {
        return Err(RecError::bad_request(
            IssueType::Value,
            "ServiceRequest.intent is fixed to 'plan' by the BaRS ServiceRequest profiles",
        )
        .with_expression(format!("{at}.intent")));
    }
    match resource["category"].as_array().map(<[_]>::len) {
        Some(1) => {}
        None | Some(0) => {
            return Err(RecError::bad_request(
                IssueType::Required,
                "ServiceRequest.category is required (one category)",
            )
            .with_expression(format!("{at}.category")));
        }
        Some(_) => {
            return Err(RecError::bad_request(
                IssueType::Structure,
                "ServiceRequest.category allows one category",
            )
            .with_expression(format!("{at}.category[1]")));
        }
    }
    if new && profile == Some(REFERRAL_PROFILE) && text(resource, "authoredOn").is_none() {
        return Err(RecError::bad_request(
            IssueType::Required,
            "ServiceRequest.authoredOn is required on a referral",
        )
        .with_expression(format!("{at}.authoredOn")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::validate_definitions::{DefinitionCatalogue, Definitions};
    use serde_json::{Value, json};

    /// `check_resource` on the tree of `resource`'s text.
    fn check(resource: &Value, at: &str, rules: Option<&DefinitionRules>, new: bool) -> Result<(), RecError> {
        let text = resource.to_string();
        check_resource(&crate::fhir::json::parse_tree(&text).unwrap(), at, rules, new)
    }

    fn referral() -> DefinitionRules {
        Definitions::bars()
            .lookup(
                "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
                None,
            )
            .unwrap()
            .clone()
    }

    fn service_request() -> Value {
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "plan",
               "category": [{"text": "x"}], "subject": {"reference": "urn:uuid:p"},
               "authoredOn": "2026-01-01T00:00:00Z"})
    }

    fn refusal(edit: impl FnOnce(&mut Value)) -> RecError {
        let mut sr = service_request();
        edit(&mut sr);
        check(&sr, "Bundle.entry[1].resource", Some(&referral()), true).unwrap_err()
    }

    #[test]
    fn names_the_element_and_issue_of_each_broken_rule() {
        check(
            &service_request(),
            "Bundle.entry[1].resource",
            Some(&referral()),
            true,
        )
        .unwrap();
        let mut update = service_request();
        update.as_object_mut().unwrap().remove("authoredOn");
        check(&update, "Bundle.entry[1].resource", Some(&referral()), false).unwrap();
        type Edit = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Edit, IssueType, &str)> = vec![
            (
                Box::new(|sr| sr["status"] = json!("")),
                IssueType::Required,
                ".status",
            ),
            (
                Box::new(|sr| sr["status"] = json!("maybe")),
                IssueType::Value,
                ".status",
            ),
            (
                Box::new(|sr| sr["status"] = json!(1)),
                IssueType::Structure,
                ".status",
            ),
            (
                Box::new(|sr| sr["intent"] = json!("order")),
                IssueType::Value,
                ".intent",
            ),
            (
                Box::new(|sr| sr["subject"] = json!({"display": "x"})),
                IssueType::Required,
                ".subject.reference",
            ),
            (
                Box::new(|sr| sr["category"] = json!([])),
                IssueType::Required,
                ".category",
            ),
            (
                Box::new(|sr| sr["category"] = json!([{}, {}])),
                IssueType::Structure,
                ".category[1]",
            ),
            (
                Box::new(|sr| {
                    sr.as_object_mut().unwrap().remove("authoredOn");
                }),
                IssueType::Required,
                ".authoredOn",
            ),
        ];
        for (edit, issue, element) in cases {
            let err = refusal(edit);
            assert_eq!(err.issue(), issue, "{err}");
            assert_eq!(
                err.expression().first().map(String::as_str),
                Some(format!("Bundle.entry[1].resource{element}").as_str()),
                "{err}"
            );
        }
    }

    #[test]
    fn types_without_rules_pass() {
        let patient = json!({"resourceType": "Patient"});
        check(&patient, "Bundle.entry[2].resource", Some(&referral()), true).unwrap();
    }
}
