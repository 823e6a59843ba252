//! `$process-message` conformance: a message that passed the structural rules
//! ([`MessageBundle`]) is held to the BaRS profiles it claims and to the MessageDefinition
//! its `MessageHeader.definition` names, then to this receiver's own address (its services
//! and organisation). The first rule broken refuses the message with a one-issue
//! OperationOutcome whose `expression` names the element in FHIRPath.
//!
//! Profiles (IG Core 1.5.0): BARSBundleMessage 1.0.0 on UKCore-Bundle (Bundle.type fixed
//! `message`, timestamp 1..1, bdl-7 unique `fullUrl`s); the MessageHeader profiles
//! BARSMessageHeader-servicerequest-request 1.0.3, -servicerequest-response 1.0.3 and
//! -booking-request 1.0.1 (destination 1..*, destination.endpoint and receiver.reference
//! 1..1, sender.reference 1..1 when a sender is given, source.endpoint 1..1,
//! focus.reference 1..1); BARSServiceRequest-request-referral 1.0.5 and -request-validation
//! 1.0.3 (intent fixed `plan`, category 1..1, authoredOn 1..1 for referrals). Focus
//! resources are also held to the elements FHIR R4 requires of them and to the codes of
//! their required bindings ([`super::validate_resources`]).

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::bundle::{MessageBundle, MessageReason};
use super::error::{IssueType, RecError};
use super::headers::TargetIdentifier;
use super::id_places::Spans;
use super::json::parse_tree;
use super::tree::Json;
use super::validate_definitions::{DefinitionCatalogue, DefinitionMiss, DefinitionRules};
use super::validate_resources::{check_resource, text};

/// The ODS organisation code system.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

const HEADER: &str = "Bundle.entry[0].resource";

/// What a message is checked against besides the profiles: who this receiver is.
#[derive(Clone, Copy)]
pub(crate) struct Receiver<'a> {
    /// The services handled; empty: any.
    pub(crate) services: &'a [TargetIdentifier],
    /// This receiver's ODS code, when configured: `destination.receiver` must be it.
    pub(crate) organisation: Option<&'a str>,
    /// The MessageDefinitions this receiver accepts.
    pub(crate) definitions: &'a dyn DefinitionCatalogue,
}

/// Reads a `$process-message` body and checks it in full. One strict pass builds the tree
/// (repeated member names refused), the message's fields and structural rules are read
/// from it ([`MessageBundle`]), then it is held to the BaRS profiles, its
/// MessageDefinition and `receiver`. The message is returned with where its ids lie, read
/// from the same tree, so that assigning the receiver's ids
/// ([`MessageBundle::with_receiver_ids`]) needs no other pass over the text.
pub(crate) fn read_message(text: &str, receiver: &Receiver<'_>) -> Result<MessageBundle, RecError> {
    let source: Arc<str> = Arc::from(text);
    let tree = parse_tree(&source)?;
    let message = MessageBundle::from_tree(source.clone(), &tree)?;
    check_message(&message, &tree, receiver)?;
    let places = Spans::from_tree(&message.source, &tree);
    Ok(message.with_id_places(places))
}

fn check_message(
    message: &MessageBundle,
    bundle: &Json<'_>,
    receiver: &Receiver<'_>,
) -> Result<(), RecError> {
    check_bundle(bundle)?;
    let entries = entries(bundle);
    let index = FullUrls::new(entries);
    let header = &entries[0]["resource"];
    let destinations = check_header(header, &index, message.reason)?;
    // A `delete` may name no definition: the IG defines none for it.
    let rules = match text(header, "definition") {
        Some(_) => Some(definition(header, receiver.definitions, message)?),
        None => None,
    };
    if let Some(rules) = rules {
        check_focus(entries, rules)?;
    }
    let new = message.reason == MessageReason::New;
    for (i, entry) in entries.iter().enumerate() {
        check_resource(
            &entry["resource"],
            &format!("Bundle.entry[{i}].resource"),
            rules,
            new,
        )?;
    }
    check_destination(&destinations, receiver)
}

fn bad(issue: IssueType, at: String, what: impl Into<String>) -> RecError {
    RecError::bad_request(issue, what).with_expression(at)
}

fn entries<'v>(bundle: &'v Json<'v>) -> &'v [Json<'v>] {
    // Invariant: MessageBundle refused a bundle whose entry is not a non-empty array.
    bundle["entry"].as_array().unwrap_or_default()
}

fn check_bundle(bundle: &Json<'_>) -> Result<(), RecError> {
    let id = text(bundle, "id").unwrap_or_default();
    if Uuid::parse_str(id).is_err() || id.len() != 36 {
        return Err(bad(
            IssueType::Value,
            "Bundle.id".into(),
            "Bundle.id must be a UUID (replies refer to it)",
        ));
    }
    let Some(timestamp) = text(bundle, "timestamp") else {
        return Err(bad(
            IssueType::Required,
            "Bundle.timestamp".into(),
            "Bundle.timestamp is required (BARSBundleMessage)",
        ));
    };
    if !is_instant(timestamp) {
        return Err(bad(
            IssueType::Value,
            "Bundle.timestamp".into(),
            "Bundle.timestamp must be a FHIR instant: date, time to the second and UTC offset",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, entry) in entries(bundle).iter().enumerate() {
        let at = format!("Bundle.entry[{i}].fullUrl");
        let full_url = text(entry, "fullUrl").unwrap_or_default();
        if full_url_uuid(full_url).is_none() {
            return Err(bad(
                IssueType::Value,
                at,
                format!("Bundle.entry[{i}].fullUrl must be urn:uuid: followed by a UUID"),
            ));
        }
        if let Some(first) = seen.insert(full_url, i) {
            return Err(bad(
                IssueType::Invariant,
                at,
                format!("Bundle.entry[{i}].fullUrl repeats Bundle.entry[{first}].fullUrl (bdl-7)"),
            ));
        }
        if let Some(id) = entry["resource"].get("id") {
            if !id.as_str().is_some_and(is_fhir_id) {
                return Err(bad(
                    IssueType::Value,
                    format!("Bundle.entry[{i}].resource.id"),
                    "A resource id is 1 to 64 letters, digits, '-' and '.'",
                ));
            }
        }
    }
    Ok(())
}

/// The UUID of a `urn:uuid:` fullUrl.
fn full_url_uuid(full_url: &str) -> Option<Uuid> {
    let uuid = full_url.strip_prefix("urn:uuid:")?;
    (uuid.len() == 36).then(|| Uuid::parse_str(uuid).ok()).flatten()
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub(super) fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// FHIR `instant`: a date, a time with seconds (fractions allowed) and a zone, `T` and `Z`
/// upper case.
pub(super) fn is_instant(value: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    value.len() >= 20
        && value.as_bytes()[10] == b'T'
        && !value.contains(['t', 'z'])
        && time::OffsetDateTime::parse(value, &Rfc3339).is_ok()
}

/// The entries by `fullUrl`, to resolve references inside the bundle.
struct FullUrls<'v> {
    entries: &'v [Json<'v>],
    by_url: HashMap<&'v str, usize>,
}

impl<'v> FullUrls<'v> {
    fn new(entries: &'v [Json<'v>]) -> Self {
        let by_url = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| text(e, "fullUrl").map(|u| (u, i)))
            .collect();
        Self { entries, by_url }
    }

    fn resolve(&self, reference: &str) -> Option<&'v Json<'v>> {
        self.by_url.get(reference).map(|&i| &self.entries[i]["resource"])
    }
}

/// A `destination[]` that passed the profile: its index, endpoint and receiver.
struct Destination<'v> {
    index: usize,
    endpoint: &'v str,
    receiver: &'v Json<'v>,
}

fn check_header<'v>(
    header: &'v Json<'v>,
    index: &FullUrls<'v>,
    reason: MessageReason,
) -> Result<Vec<Destination<'v>>, RecError> {
    if text(header, "definition").is_none() && reason != MessageReason::Delete {
        return Err(bad(
            IssueType::Required,
            format!("{HEADER}.definition"),
            "MessageHeader.definition is required (but on a delete): it names the MessageDefinition the message follows",
        ));
    }
    let list = header["destination"].as_array().filter(|d| !d.is_empty());
    let Some(list) = list else {
        return Err(bad(
            IssueType::Required,
            format!("{HEADER}.destination"),
            "MessageHeader.destination is required: the service and organisation addressed",
        ));
    };
    let mut destinations = Vec::with_capacity(list.len());
    for (k, destination) in list.iter().enumerate() {
        let at = format!("{HEADER}.destination[{k}]");
        let endpoint = text(destination, "endpoint").ok_or_else(|| {
            bad(
                IssueType::Required,
                format!("{at}.endpoint"),
                "MessageHeader.destination.endpoint is required: the service addressed",
            )
        })?;
        let receiver = resolved(
            &destination["receiver"],
            &format!("{at}.receiver.reference"),
            "MessageHeader.destination.receiver",
            index,
        )?;
        destinations.push(Destination {
            index: k,
            endpoint,
            receiver,
        });
    }
    if header.get("sender").is_some() {
        resolved(
            &header["sender"],
            &format!("{HEADER}.sender.reference"),
            "MessageHeader.sender",
            index,
        )?;
    }
    let source_endpoint = format!("{HEADER}.source.endpoint");
    let Some(endpoint) = text(&header["source"], "endpoint") else {
        return Err(bad(
            IssueType::Required,
            source_endpoint,
            "MessageHeader.source.endpoint is required: it is where replies go",
        ));
    };
    if TargetIdentifier::parse_token(endpoint).is_none() {
        return Err(bad(
            IssueType::Value,
            source_endpoint,
            "MessageHeader.source.endpoint must be system|value, e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489",
        ));
    }
    for (k, focus) in header["focus"].as_array().into_iter().flatten().enumerate() {
        resolved(
            focus,
            &format!("{HEADER}.focus[{k}].reference"),
            "MessageHeader.focus",
            index,
        )?;
    }
    Ok(destinations)
}

/// The resource a Reference names inside the bundle: 400 `required` without a reference,
/// `invariant` when it resolves to no entry.
fn resolved<'v>(
    reference: &Json<'_>,
    at: &str,
    what: &str,
    index: &FullUrls<'v>,
) -> Result<&'v Json<'v>, RecError> {
    let Some(target) = text(reference, "reference") else {
        return Err(bad(
            IssueType::Required,
            at.to_owned(),
            format!("{what}.reference is required"),
        ));
    };
    index.resolve(target).ok_or_else(|| {
        bad(
            IssueType::Invariant,
            at.to_owned(),
            format!("{what}.reference does not resolve to an entry of the bundle"),
        )
    })
}

/// The rules of the MessageDefinition the header names (`url` or `url|version`).
fn definition<'r>(
    header: &Json<'_>,
    definitions: &'r dyn DefinitionCatalogue,
    message: &MessageBundle,
) -> Result<&'r DefinitionRules, RecError> {
    let at = format!("{HEADER}.definition");
    let canonical = text(header, "definition").unwrap_or_default();
    let (url, version) = match canonical.split_once('|') {
        Some((url, version)) => (url, Some(version)),
        None => (canonical, None),
    };
    let shown = shown(canonical);
    let rules = definitions.lookup(url, version).map_err(|miss| {
        let what = match miss {
            DefinitionMiss::UnknownUrl => {
                format!("The MessageDefinition {shown} is not supported by this receiver")
            }
            DefinitionMiss::UnknownVersion => {
                format!("The MessageDefinition {shown} is not supported at this version by this receiver")
            }
        };
        RecError::unprocessable(IssueType::NotSupported, what).with_expression(at.clone())
    })?;
    if rules.event != message.event {
        return Err(bad(
            IssueType::Invariant,
            at,
            format!(
                "The MessageDefinition {} is for {} messages, not {}",
                rules.url,
                rules.event.code(),
                message.event.code()
            ),
        ));
    }
    Ok(rules)
}

/// Every focus resource of the definition present with its cardinality. Maximums are held
/// only for the resources that identify the message's subject ([`ONE_ONLY`]): the IG's own
/// examples carry more Encounters than its definitions allow (an update's earlier and new
/// encounter, an acknowledgment's), and must be accepted.
fn check_focus(entries: &[Json<'_>], rules: &DefinitionRules) -> Result<(), RecError> {
    for resource_type in rules.resource_types() {
        let Some((min, max)) = rules.cardinality(resource_type) else {
            continue;
        };
        let of_type: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e["resource"]["resourceType"] == resource_type)
            .map(|(i, _)| i)
            .collect();
        // The Bundle is a focus itself (1..1), present once by being the message.
        let count = if resource_type == "Bundle" {
            1
        } else {
            of_type.len()
        };
        if count < min as usize {
            return Err(bad(
                IssueType::Required,
                "Bundle.entry".into(),
                format!(
                    "The MessageDefinition {} requires at least {min} {resource_type} resource(s); the bundle has {count}",
                    rules.url
                ),
            ));
        }
        let max = max.filter(|&max| count > max as usize && ONE_ONLY.contains(&resource_type));
        if let Some(max) = max {
            let first_excess = of_type.get(max as usize).copied().unwrap_or_default();
            return Err(bad(
                IssueType::Structure,
                format!("Bundle.entry[{first_excess}].resource"),
                format!(
                    "The MessageDefinition {} allows at most {max} {resource_type} resource(s); the bundle has {count}",
                    rules.url
                ),
            ));
        }
    }
    Ok(())
}

/// The focus types whose maximum is held: the header and the referral or booking itself.
const ONE_ONLY: &[&str] = &["MessageHeader", "ServiceRequest", "Appointment"];

/// The message is addressed to this receiver: a destination endpoint among its services
/// (when configured), and that destination's receiver its organisation (when configured).
fn check_destination(destinations: &[Destination<'_>], receiver: &Receiver<'_>) -> Result<(), RecError> {
    let ours: Vec<&Destination<'_>> = destinations
        .iter()
        .filter(|d| {
            receiver.services.is_empty() || receiver.services.iter().any(|s| s.matches_token(d.endpoint))
        })
        .collect();
    let Some(first) = ours.first() else {
        let at = match destinations {
            [only] => format!("{HEADER}.destination[{}].endpoint", only.index),
            _ => format!("{HEADER}.destination.endpoint"),
        };
        return Err(RecError::unprocessable(
            IssueType::NotSupported,
            "MessageHeader.destination does not name a service handled by this receiver",
        )
        .with_expression(at));
    };
    let Some(ods) = receiver.organisation else {
        return Ok(());
    };
    if ours.iter().any(|d| organisation_is(d.receiver, ods)) {
        return Ok(());
    }
    Err(RecError::unprocessable(
        IssueType::NotSupported,
        format!("MessageHeader.destination.receiver is not this receiver's organisation ({ods})"),
    )
    .with_expression(format!("{HEADER}.destination[{}].receiver", first.index)))
}

/// A sender's canonical in diagnostics: visible ASCII only, and short.
fn shown(text: &str) -> String {
    text.chars().filter(char::is_ascii_graphic).take(160).collect()
}

/// Whether `resource` is the Organization with ODS code `ods`.
fn organisation_is(resource: &Json<'_>, ods: &str) -> bool {
    resource["resourceType"] == "Organization"
        && resource["identifier"].as_array().into_iter().flatten().any(|id| {
            id["system"] == ODS_SYSTEM && text(id, "value").is_some_and(|v| v.eq_ignore_ascii_case(ods))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_seconds_and_a_zone() {
        for ok in [
            "2021-10-11T12:15:10+00:00",
            "2021-10-06T10:00:00.000+00:00",
            "2026-01-01T00:00:00Z",
            "2026-06-30T23:59:59-05:00",
        ] {
            assert!(is_instant(ok), "{ok}");
        }
        for bad in [
            "",
            "not-a-date",
            "2021-10-11",
            "2021-10-11T12:15+00:00",
            "2021-10-11T12:15:10",
            "2021-10-11 12:15:10Z",
            "2021-10-11t12:15:10z",
            "2021-13-11T12:15:10Z",
        ] {
            assert!(!is_instant(bad), "{bad}");
        }
    }

    #[test]
    fn ids_and_full_urls_have_their_fhir_shapes() {
        assert!(is_fhir_id("a-B.9"));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id("{ScheduleItem}"));
        assert!(!is_fhir_id(&"a".repeat(65)));
        assert!(full_url_uuid("urn:uuid:c5957fdd-097b-409d-a406-49c52ceef2cd").is_some());
        assert!(full_url_uuid("urn:uuid:c5957fdd097b409da40649c52ceef2cd").is_none());
        assert!(full_url_uuid("https://example.org/Patient/1").is_none());
    }
}
