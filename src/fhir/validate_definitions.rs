//! What a `$process-message` payload must carry according to the MessageDefinition named in
//! its `MessageHeader.definition`: the focus resources with their cardinalities.
//!
//! The built-in definitions are the BaRS ones, from the one catalogue the receiver also
//! publishes (`message_definition_catalogue.rs`: canonical URL, version, event and each
//! `focus`). The check itself takes any [`DefinitionCatalogue`].

use super::bundle::MessageEvent;
use super::message_definition_catalogue::MessageDefinition;

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
        let mut all: Vec<DefinitionRules> = MessageDefinition::catalogue().iter().filter_map(rules).collect();
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

/// The rules of a catalogue definition (`None` for an event this build does not parse,
/// which no message can then claim).
fn rules(d: &MessageDefinition) -> Option<DefinitionRules> {
    Some(DefinitionRules {
        url: d.url.to_owned(),
        version: d.version.to_owned(),
        event: MessageEvent::from_code(d.event)?,
        focus: d
            .focus
            .iter()
            .map(|f| FocusRule {
                resource_type: f.code.to_owned(),
                profile: f.profile.to_owned(),
                min: f.min,
                max: f.max,
            })
            .collect(),
    })
}

const MESSAGE_DEFINITION_BASE: &str = "https://fhir.nhs.uk/MessageDefinition/";

/// The name the IG's examples REFRESP02 and REFRESP03 give the short referral response;
/// the IG defines it as `bars-message-servicerequest-response-referral-short`.
const EXAMPLES_SHORT_RESPONSE: &str = "bars-message-servicerequest-request-response-short";

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
        assert_eq!(
            all.lookup(url, Some("1.0.0")).unwrap().event,
            MessageEvent::BookingRequest
        );
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
