//! `[messaging]`: the BaRS message definitions this receiver supports (`[[messaging.definitions]]`),
//! each a definition of the built-in catalogue offered for some services in some use-case
//! categories, converted once into [`MessageDefinitions`].

use super::fields::Problems;
use super::raw::{RawDefinition, RawMessaging};
use crate::fhir::{MessageDefinition, MessageDefinitions, SupportedDefinition, TargetIdentifier, use_case};

/// Converts `[messaging]`. `services` are `receiver.services`: a definition's services
/// default to them, and must be among them when they are set (a request for any other
/// service is refused before it could use the definition).
pub(super) fn convert(
    p: &mut Problems,
    raw: Option<RawMessaging>,
    services: &[TargetIdentifier],
) -> MessageDefinitions {
    let definitions = raw.and_then(|m| m.definitions).unwrap_or_default();
    let supported = definitions
        .into_iter()
        .enumerate()
        .filter_map(|(i, d)| definition(p, &format!("messaging.definitions[{i}]"), d, services))
        .collect();
    MessageDefinitions::new(supported)
}

fn definition(
    p: &mut Problems,
    key: &str,
    raw: RawDefinition,
    receiver_services: &[TargetIdentifier],
) -> Option<SupportedDefinition> {
    let found = match raw.url.as_deref().map(str::trim) {
        None | Some("") => {
            p.add(
                &format!("{key}.url"),
                format!(
                    "required: the canonical URL of a BaRS message definition, one of {}",
                    known_urls()
                ),
            );
            None
        }
        Some(url) => {
            let found = MessageDefinition::find(url);
            if found.is_none() {
                p.add(
                    &format!("{key}.url"),
                    format!(
                        "'{url}' is not a BaRS message definition this build knows; known: {}",
                        known_urls()
                    ),
                );
            }
            found
        }
    };
    if let (Some(d), Some(version)) = (found, raw.version.as_deref().map(str::trim)) {
        if version != d.version {
            p.add(
                &format!("{key}.version"),
                format!(
                    "'{version}' is not a version of {} this build has; it has {}",
                    d.url, d.version
                ),
            );
        }
    }

    let services: Vec<TargetIdentifier> = match raw.services {
        None => {
            if receiver_services.is_empty() {
                p.add(
                    &format!("{key}.services"),
                    "required while receiver.services is empty: the services (system|value, e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489) offering this definition",
                );
            }
            receiver_services.to_vec()
        }
        Some(tokens) => {
            if tokens.is_empty() {
                p.add(&format!("{key}.services"), "must name at least one service");
            }
            tokens
                .iter()
                .enumerate()
                .filter_map(|(i, token)| {
                    let key = format!("{key}.services[{i}]");
                    let Some(service) = TargetIdentifier::parse_token(token.trim()) else {
                        p.add(&key, format!("'{token}' is not system|value"));
                        return None;
                    };
                    if !receiver_services.is_empty() && !receiver_services.iter().any(|s| s.same_service(&service)) {
                        p.add(
                            &key,
                            format!("{service} is not among receiver.services, so no request for it reaches this receiver"),
                        );
                    }
                    Some(service)
                })
                .collect()
        }
    };

    let categories = raw.categories.unwrap_or_default();
    if categories.is_empty() {
        p.add(
            &format!("{key}.categories"),
            "required: the use-case categories (https://fhir.nhs.uk/CodeSystem/usecases-categories-bars) senders may use this definition for, e.g. [\"a4t1\"]",
        );
    }
    let mut known = Vec::new();
    for (i, code) in categories.iter().enumerate() {
        let code = code.trim();
        match use_case(code) {
            Some(_) if known.contains(&code) => {
                p.add(&format!("{key}.categories[{i}]"), format!("'{code}' is listed twice"));
            }
            Some(_) => known.push(code),
            None => p.add(
                &format!("{key}.categories[{i}]"),
                format!(
                    "'{code}' is not a code of https://fhir.nhs.uk/CodeSystem/usecases-categories-bars (version 1.5.0), such as a1t1 or a4t1 (lower case)"
                ),
            ),
        }
    }
    SupportedDefinition::new(found?, services, &known)
}

fn known_urls() -> String {
    MessageDefinition::catalogue()
        .iter()
        .map(|d| d.url)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::parse_raw;

    const VALIDATION: &str =
        "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation";

    /// The definitions of `text`, converted with `receiver_services`, or every key at fault.
    fn convert_text(text: &str, receiver_services: &[&str]) -> Result<MessageDefinitions, Vec<String>> {
        let raw = parse_raw(text, "t", Vec::new()).unwrap();
        let services: Vec<TargetIdentifier> = receiver_services
            .iter()
            .map(|s| TargetIdentifier::parse_token(s).unwrap())
            .collect();
        let mut p = Problems(Vec::new());
        let defs = convert(&mut p, raw.messaging, &services);
        if p.0.is_empty() {
            Ok(defs)
        } else {
            Err(p.0.into_iter().map(|problem| problem.key).collect())
        }
    }

    #[test]
    fn converts_definitions_defaulting_to_the_receiver_services() {
        let text = format!(
            "[[messaging.definitions]]\nurl = \"{VALIDATION}\"\nversion = \"1.1.0\"\ncategories = [\"a4t1\", \"a4t4\"]\n"
        );
        let defs = convert_text(&text, &["https://fhir.nhs.uk/Id/dos-service-id|1"]).unwrap();
        let d = &defs.supported()[0];
        assert_eq!(d.definition().url, VALIDATION);
        assert_eq!(d.services()[0].value, "1");
        assert_eq!(d.categories(), ["a4t1", "a4t4"]);
        assert!(convert_text("", &[]).unwrap().is_empty(), "none configured");
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let text = format!(
            "[[messaging.definitions]]\ncategories = [\"a4t1\"]\n\
             [[messaging.definitions]]\nurl = \"https://fhir.nhs.uk/MessageDefinition/bars-message-nonsense\"\ncategories = [\"a4t1\"]\n\
             [[messaging.definitions]]\nurl = \"{VALIDATION}\"\nversion = \"9.9.9\"\nservices = [\"nosystem\", \"https://fhir.nhs.uk/Id/dos-service-id|2\"]\ncategories = [\"A4T1\", \"a4t1\", \"a4t1\"]\n\
             [[messaging.definitions]]\nurl = \"{VALIDATION}\"\nservices = []\n"
        );
        let keys = convert_text(&text, &["https://fhir.nhs.uk/Id/dos-service-id|1"]).unwrap_err();
        assert_eq!(
            keys,
            [
                "messaging.definitions[0].url",
                "messaging.definitions[1].url",
                "messaging.definitions[2].version",
                "messaging.definitions[2].services[0]",
                "messaging.definitions[2].services[1]",
                "messaging.definitions[2].categories[0]",
                "messaging.definitions[2].categories[2]",
                "messaging.definitions[3].services",
                "messaging.definitions[3].categories",
            ]
        );
        let no_services =
            format!("[[messaging.definitions]]\nurl = \"{VALIDATION}\"\ncategories = [\"a4t1\"]\n");
        assert_eq!(
            convert_text(&no_services, &[]).unwrap_err(),
            ["messaging.definitions[0].services"],
            "with receiver.services empty (any), each definition names its services"
        );
        let unknown = parse_raw(
            "[[messaging.definitions]]\nurl = \"x\"\nversions = \"1\"\n",
            "t",
            Vec::new(),
        );
        assert!(
            unknown.unwrap_err().to_string().contains("versions"),
            "unknown keys are refused"
        );
    }

    #[test]
    fn the_development_configuration_supports_every_definition_of_the_catalogue() {
        let defs = convert_text(crate::config::DEV_CONFIG, &[]).unwrap();
        let urls: Vec<&str> = defs.supported().iter().map(|s| s.definition().url).collect();
        let catalogue: Vec<&str> = MessageDefinition::catalogue().iter().map(|d| d.url).collect();
        assert_eq!(urls, catalogue);
        for s in defs.supported() {
            assert_eq!(
                s.categories(),
                s.definition().guide_categories,
                "{}",
                s.definition().url
            );
            assert_eq!(
                s.services()[0].to_string(),
                "https://fhir.nhs.uk/Id/dos-service-id|2000072489"
            );
        }
    }
}
