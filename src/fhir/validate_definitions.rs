//! What a `$process-message` payload must carry according to the MessageDefinition named in
//! its `MessageHeader.definition`: the focus resources with their cardinalities.
//!
//! The built-in definitions are the BaRS ones (NHSDigital-FHIR-BookingAndReferrals, Core
//! 1.5.0, `MessageDefinition/`), written here as facts: canonical URL, version, event and
//! each `focus` (resource type, profile, min, max). The check itself takes any
//! [`DefinitionCatalogue`], so a catalogue built from configuration plugs in unchanged.

use super::bundle::MessageEvent;

/// One `MessageDefinition.focus`: how many resources of `resource_type` (conforming to
/// `profile`) the message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FocusRule {
    /// `focus.code`, e.g. `ServiceRequest`.
    pub(crate) resource_type: String,
    /// `focus.profile`.
    pub(crate) profile: String,
    /// `focus.min`.
    pub(crate) min: u32,
    /// `focus.max`; `None` for `*`.
    pub(crate) max: Option<u32>,
}

/// The parts of a MessageDefinition that a payload is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefinitionRules {
    /// `MessageDefinition.url`.
    pub(crate) url: String,
    /// `MessageDefinition.version`.
    pub(crate) version: String,
    /// `MessageDefinition.eventCoding.code`.
    pub(crate) event: MessageEvent,
    /// `MessageDefinition.focus`, in order. A type may appear more than once (with
    /// different profiles): its count is then held to the sum of their cardinalities.
    pub(crate) focus: Vec<FocusRule>,
}

impl DefinitionRules {
    /// The cardinality allowed for `resource_type` across all its focus entries: `None`
    /// when the definition does not list the type.
    pub(crate) fn cardinality(&self, resource_type: &str) -> Option<(u32, Option<u32>)> {
        self.focus
            .iter()
            .filter(|f| f.resource_type == resource_type)
            .fold(None, |sum, f| {
                let (min, max) = sum.unwrap_or((0, Some(0)));
                Some((min + f.min, max.zip(f.max).map(|(a, b)| a + b)))
            })
    }

    /// The resource types the definition lists, each once, in order.
    pub(crate) fn resource_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = Vec::new();
        for f in &self.focus {
            if !types.contains(&f.resource_type.as_str()) {
                types.push(&f.resource_type);
            }
        }
        types
    }
}

/// Why a `MessageHeader.definition` found no rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefinitionMiss {
    /// No definition has this canonical URL.
    UnknownUrl,
    /// The URL is known, but not at the version asked for.
    UnknownVersion,
}

/// Looks up the rules of a MessageDefinition by canonical URL and, when the message names
/// one (`url|version`), version.
pub(crate) trait DefinitionCatalogue: Send + Sync {
    /// The rules of `url` at `version` (any version when `None`: the latest listed).
    fn lookup(&self, url: &str, version: Option<&str>) -> Result<&DefinitionRules, DefinitionMiss>;
}

/// A list of definitions: the built-in BaRS set ([`Definitions::bars`]). A later entry
/// with the same URL counts as the later version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definitions(Vec<DefinitionRules>);

impl Definitions {
    /// The BaRS MessageDefinitions of the implementation guide (Core 1.5.0), and the
    /// URL its own referral-response examples use for the short response
    /// ([`EXAMPLES_SHORT_RESPONSE`]) with the rules of the one it defines.
    pub(crate) fn bars() -> Self {
        let mut all: Vec<DefinitionRules> = BARS.iter().map(Builtin::rules).collect();
        let short = all
            .iter()
            .find(|d| {
                d.url
                    .ends_with("/bars-message-servicerequest-response-referral-short")
            })
            .cloned();
        if let Some(mut short) = short {
            short.url = format!("{MESSAGE_DEFINITION_BASE}{EXAMPLES_SHORT_RESPONSE}");
            all.push(short);
        }
        Self(all)
    }
}

impl DefinitionCatalogue for Definitions {
    fn lookup(&self, url: &str, version: Option<&str>) -> Result<&DefinitionRules, DefinitionMiss> {
        let mut same_url = self.0.iter().filter(|d| d.url == url).peekable();
        if same_url.peek().is_none() {
            return Err(DefinitionMiss::UnknownUrl);
        }
        match version {
            Some(v) => same_url
                .find(|d| d.version == v)
                .ok_or(DefinitionMiss::UnknownVersion),
            None => same_url.last().ok_or(DefinitionMiss::UnknownUrl),
        }
    }
}

/// A built-in definition as written below.
struct Builtin {
    name: &'static str,
    version: &'static str,
    event: MessageEvent,
    /// `(type, profile, min, max)`, max `None` for `*`.
    focus: &'static [(&'static str, &'static str, u32, Option<u32>)],
}

impl Builtin {
    fn rules(&self) -> DefinitionRules {
        DefinitionRules {
            url: format!("{MESSAGE_DEFINITION_BASE}{}", self.name),
            version: self.version.to_owned(),
            event: self.event,
            focus: self
                .focus
                .iter()
                .map(|&(resource_type, profile, min, max)| FocusRule {
                    resource_type: resource_type.to_owned(),
                    profile: expand(profile),
                    min,
                    max,
                })
                .collect(),
        }
    }
}

const MESSAGE_DEFINITION_BASE: &str = "https://fhir.nhs.uk/MessageDefinition/";

/// The name the IG's examples REFRESP02 and REFRESP03 give the short referral response;
/// the IG defines it as `bars-message-servicerequest-response-referral-short`.
const EXAMPLES_SHORT_RESPONSE: &str = "bars-message-servicerequest-request-response-short";

/// Profiles are written short below: `bars:X` for `https://fhir.nhs.uk/StructureDefinition/X`,
/// `ukcore:X` for `https://fhir.hl7.org.uk/StructureDefinition/UKCore-X`, `core:X` for
/// the base FHIR resource.
fn expand(profile: &str) -> String {
    if let Some(name) = profile.strip_prefix("bars:") {
        format!("https://fhir.nhs.uk/StructureDefinition/{name}")
    } else if let Some(name) = profile.strip_prefix("ukcore:") {
        format!("https://fhir.hl7.org.uk/StructureDefinition/UKCore-{name}")
    } else if let Some(name) = profile.strip_prefix("core:") {
        format!("http://hl7.org/fhir/StructureDefinition/{name}")
    } else {
        profile.to_owned()
    }
}

const ONE: Option<u32> = Some(1);
const MANY: Option<u32> = None;

use MessageEvent::{BookingRequest, ServiceRequestRequest, ServiceRequestResponse};

/// The BaRS MessageDefinitions (IG Core 1.5.0, `MessageDefinition/*.xml`).
const BARS: &[Builtin] = &[
    Builtin {
        name: "bars-message-booking-request",
        version: "1.0.0",
        event: BookingRequest,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            ("MessageHeader", "bars:BARSMessageHeader-booking-request", 1, ONE),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-referral",
                0,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Location", "ukcore:Location", 0, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 0, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 0, MANY),
            ("Consent", "ukcore:Consent", 0, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 1, ONE),
            ("Appointment", "ukcore:Appointment", 1, ONE),
            ("Slot", "ukcore:Slot", 1, ONE),
            ("Schedule", "ukcore:Schedule", 1, ONE),
        ],
    },
    Builtin {
        name: "bars-message-booking-request-cancelled",
        version: "1.0.0",
        event: BookingRequest,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            ("MessageHeader", "bars:BARSMessageHeader-booking-request", 1, ONE),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Appointment", "ukcore:Appointment", 1, ONE),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-request-referral",
        version: "1.0.0-beta",
        event: ServiceRequestRequest,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-request",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-referral",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 1, ONE),
            ("CarePlan", "ukcore:CarePlan", 1, ONE),
            (
                "Location",
                "https://fhir.hl7.org.uk/StructureDefinition/BARSLocation-incident-location",
                0,
                ONE,
            ),
            ("Location", "ukcore:Location", 0, MANY),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("Observation", "ukcore:Observation", 0, MANY),
            ("Flag", "bars:BARSFlag-scene-safety", 0, MANY),
            ("Flag", "core:Flag", 0, MANY),
            ("MedicationStatement", "ukcore:MedicationStatement", 0, MANY),
            ("AllergyIntolerance", "ukcore:AllergyIntolerance", 0, MANY),
            ("Questionnaire", "ukcore:Questionnaire", 0, MANY),
            ("QuestionnaireResponse", "ukcore:QuestionnaireResponse", 0, MANY),
            ("Consent", "ukcore:Consent", 1, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 1, MANY),
            ("Condition", "ukcore:Condition", 0, MANY),
            ("Task", "ukcore:Task", 0, MANY),
            ("Communication", "ukcore:Communication", 0, MANY),
            ("Procedure", "ukcore:Procedure", 0, MANY),
            ("Device", "core:Device", 0, ONE),
            ("RelatedPerson", "ukcore:RelatedPerson", 0, MANY),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-request-validation",
        version: "1.1.0",
        event: ServiceRequestRequest,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-request",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-validation",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 1, ONE),
            ("CarePlan", "ukcore:CarePlan", 1, ONE),
            ("Location", "ukcore:Location", 1, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("Observation", "ukcore:Observation", 0, MANY),
            ("Flag", "bars:BARSFlag-scene-safety", 0, MANY),
            ("Flag", "core:Flag", 0, MANY),
            ("Consent", "ukcore:Consent", 1, MANY),
            ("MedicationStatement", "ukcore:MedicationStatement", 0, MANY),
            ("AllergyIntolerance", "ukcore:AllergyIntolerance", 0, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 1, ONE),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-request-cancelled",
        version: "1.0.0",
        event: ServiceRequestRequest,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-request",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-referral",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-response-referral",
        version: "1.0.0-beta",
        event: ServiceRequestResponse,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            // The IG names the request's MessageHeader profile here.
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-request",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-referral",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 0, ONE),
            ("CarePlan", "ukcore:CarePlan", 0, ONE),
            ("Location", "ukcore:Location", 0, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("Observation", "ukcore:Observation", 0, MANY),
            ("Flag", "bars:BARSFlag-scene-safety", 0, MANY),
            ("Flag", "core:Flag", 0, MANY),
            ("MedicationStatement", "ukcore:MedicationStatement", 0, MANY),
            ("AllergyIntolerance", "ukcore:AllergyIntolerance", 0, MANY),
            ("QuestionnaireResponse", "ukcore:QuestionnaireResponse", 0, MANY),
            ("Consent", "ukcore:Consent", 1, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 1, ONE),
            ("Appointment", "ukcore:Appointment", 0, ONE),
            ("Condition", "ukcore:Condition", 0, MANY),
            ("Task", "ukcore:Task", 0, MANY),
            ("RelatedPerson", "ukcore:RelatedPerson", 0, MANY),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-response-referral-short",
        version: "1.0.0-beta",
        event: ServiceRequestResponse,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-response",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-referral",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 2, Some(2)),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 0, MANY),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-response-validation-full",
        version: "1.1.0",
        event: ServiceRequestResponse,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-response",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-validation",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 2, Some(3)),
            ("CarePlan", "ukcore:CarePlan", 1, ONE),
            ("Location", "ukcore:Location", 1, ONE),
            ("Organization", "ukcore:Organization", 2, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("Observation", "ukcore:Observation", 0, MANY),
            ("Flag", "bars:BARSFlag-scene-safety", 0, MANY),
            ("Flag", "core:Flag", 0, MANY),
            ("Consent", "ukcore:Consent", 1, MANY),
            ("MedicationStatement", "ukcore:MedicationStatement", 0, MANY),
            ("AllergyIntolerance", "ukcore:AllergyIntolerance", 0, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 1, ONE),
        ],
    },
    Builtin {
        name: "bars-message-servicerequest-response-validation-interim",
        version: "1.1.0",
        event: ServiceRequestResponse,
        focus: &[
            ("Bundle", "bars:BARSBundleMessage", 1, ONE),
            (
                "MessageHeader",
                "bars:BARSMessageHeader-servicerequest-response",
                1,
                ONE,
            ),
            (
                "ServiceRequest",
                "bars:BARSServiceRequest-request-validation",
                1,
                ONE,
            ),
            ("Patient", "ukcore:Patient", 1, ONE),
            ("Encounter", "ukcore:Encounter", 2, Some(2)),
            ("Organization", "ukcore:Organization", 1, MANY),
            ("Practitioner", "ukcore:Practitioner", 1, MANY),
            ("PractitionerRole", "ukcore:PractitionerRole", 1, MANY),
            ("HealthcareService", "ukcore:HealthcareService", 0, MANY),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_definition_holds_one_bundle_and_one_header() {
        let all = Definitions::bars();
        assert_eq!(all.0.len(), 10);
        for d in &all.0 {
            assert!(d.url.starts_with(MESSAGE_DEFINITION_BASE), "{}", d.url);
            assert_eq!(d.cardinality("Bundle"), Some((1, Some(1))), "{}", d.url);
            assert_eq!(d.cardinality("MessageHeader"), Some((1, Some(1))), "{}", d.url);
        }
    }

    #[test]
    fn a_type_listed_twice_sums_its_cardinalities() {
        let all = Definitions::bars();
        let referral = all
            .lookup(
                "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
                None,
            )
            .unwrap();
        assert_eq!(referral.cardinality("Location"), Some((0, None)));
        assert_eq!(referral.cardinality("Flag"), Some((0, None)));
        assert_eq!(referral.cardinality("Device"), Some((0, Some(1))));
        assert_eq!(referral.cardinality("Organization"), Some((2, None)));
        assert_eq!(referral.cardinality("Slot"), None);
        assert!(referral.resource_types().contains(&"RelatedPerson"));
    }

    #[test]
    fn looks_up_by_url_and_version() {
        let all = Definitions::bars();
        let url = "https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request";
        assert_eq!(all.lookup(url, Some("1.0.0")).unwrap().event, BookingRequest);
        assert_eq!(
            all.lookup(url, Some("9.9.9")),
            Err(DefinitionMiss::UnknownVersion)
        );
        assert_eq!(
            all.lookup("https://example.org/MessageDefinition/x", None),
            Err(DefinitionMiss::UnknownUrl)
        );
    }
}
