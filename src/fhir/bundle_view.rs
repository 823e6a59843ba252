//! The parts of a `$process-message` bundle that the BaRS message rules read, taken from the
//! tree the strict pass built ([`super::json::parse_tree`]). Strings are the tree's own,
//! borrowed from the body unless they carry escapes, so what this view holds stays small
//! whatever the bundle carries. A member that is absent and one of another JSON type read
//! alike: as `None`, or as an empty or default part.

use std::borrow::Cow;

use super::tree::Json;

/// The BaRS message event code system.
pub const EVENT_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-events-bars";
/// The BaRS message reason code system.
pub const REASON_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/message-reason-bars";

/// A `Bundle`, as far as the message rules read it. Each field is `None` when absent or
/// not a string, as the rules treat both alike.
#[derive(Default)]
pub(super) struct BundleView<'de> {
    pub(super) resource_type: Option<Cow<'de, str>>,
    pub(super) bundle_type: Option<Cow<'de, str>>,
    pub(super) id: Option<Cow<'de, str>>,
    pub(super) timestamp: Option<Cow<'de, str>>,
    /// `meta.versionId`.
    pub(super) version: Option<Cow<'de, str>>,
    /// `entry`; empty when absent or not an array.
    pub(super) entries: Entries<'de>,
}

impl<'de> BundleView<'de> {
    /// The view of `bundle`, the body's tree (anything but an object gives an empty view).
    pub(super) fn read(bundle: &Json<'de>) -> Self {
        Self {
            resource_type: string(bundle.get("resourceType")),
            bundle_type: string(bundle.get("type")),
            id: string(bundle.get("id")),
            timestamp: string(bundle.get("timestamp")),
            version: string(bundle.get("meta").and_then(|meta| meta.get("versionId"))),
            entries: bundle
                .get("entry")
                .and_then(Json::as_array)
                .map(Entries::read)
                .unwrap_or_default(),
        }
    }
}

/// What the rules need of `Bundle.entry`: how many there are, the first one missing its
/// `fullUrl` or its resource type, the first entry's resource (the MessageHeader), and the
/// resource type of the first entry that the header's focus names.
#[derive(Default)]
pub(super) struct Entries<'de> {
    pub(super) count: usize,
    pub(super) first_problem: Option<(usize, EntryProblem)>,
    /// The resource of `entry[0]`.
    pub(super) header: Header<'de>,
    /// The focus is resolved against the entries in order, the header's own included: the
    /// header comes first, so its focus is known before the entries it may name.
    pub(super) focus_type: Option<Cow<'de, str>>,
}

/// An entry that the rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryProblem {
    /// No `fullUrl` (or an empty one).
    NoFullUrl,
    /// A resource without `resourceType`.
    NoResourceType,
}

impl<'de> Entries<'de> {
    fn read(entries: &[Json<'de>]) -> Self {
        let mut view = Self {
            count: entries.len(),
            ..Self::default()
        };
        for (index, entry) in entries.iter().enumerate() {
            // An entry or resource that is not an object has neither member.
            let full_url = string(entry.get("fullUrl"));
            let resource = entry.get("resource").filter(|r| r.is_object());
            if index == 0 {
                view.header = resource.map(Header::read).unwrap_or_default();
            }
            let resource_type = string(resource.and_then(|r| r.get("resourceType")));
            if view.first_problem.is_none() {
                if non_empty(full_url.as_deref()).is_none() {
                    view.first_problem = Some((index, EntryProblem::NoFullUrl));
                } else if non_empty(resource_type.as_deref()).is_none() {
                    view.first_problem = Some((index, EntryProblem::NoResourceType));
                }
            }
            if view.focus_type.is_none() {
                let focus = non_empty(view.header.focus_reference.as_deref());
                if focus.is_some() && full_url.as_deref() == focus {
                    view.focus_type = resource_type;
                }
            }
        }
        view
    }
}

/// The first entry's resource, read as a MessageHeader.
#[derive(Default)]
pub(super) struct Header<'de> {
    pub(super) resource_type: Option<Cow<'de, str>>,
    /// `eventCoding.system` and `.code`.
    pub(super) event_system: Option<Cow<'de, str>>,
    pub(super) event_code: Option<Cow<'de, str>>,
    /// `reason.coding`: the code of its first coding from [`REASON_SYSTEM`] (outer `None`:
    /// no such coding).
    pub(super) reason_code: Option<Option<Cow<'de, str>>>,
    /// `focus[0].reference`.
    pub(super) focus_reference: Option<Cow<'de, str>>,
    pub(super) definition: Option<Cow<'de, str>>,
    /// `destination[].endpoint`, the strings among them.
    pub(super) destination_endpoints: Vec<Cow<'de, str>>,
    /// `source.endpoint`.
    pub(super) source_endpoint: Option<Cow<'de, str>>,
    /// `response.identifier` and `.code`.
    pub(super) response_identifier: Option<Cow<'de, str>>,
    pub(super) response_code: Option<Cow<'de, str>>,
}

impl<'de> Header<'de> {
    fn read(header: &Json<'de>) -> Self {
        let event = header.get("eventCoding");
        let response = header.get("response");
        Self {
            resource_type: string(header.get("resourceType")),
            event_system: string(event.and_then(|c| c.get("system"))),
            event_code: string(event.and_then(|c| c.get("code"))),
            reason_code: header
                .get("reason")
                .and_then(|reason| reason.get("coding"))
                .and_then(Json::as_array)
                .and_then(|codings| {
                    codings
                        .iter()
                        .find(|coding| string(coding.get("system")).as_deref() == Some(REASON_SYSTEM))
                })
                .map(|coding| string(coding.get("code"))),
            focus_reference: string(
                header
                    .get("focus")
                    .and_then(Json::as_array)
                    .and_then(<[Json<'de>]>::first)
                    .and_then(|focus| focus.get("reference")),
            ),
            definition: string(header.get("definition")),
            destination_endpoints: header
                .get("destination")
                .and_then(Json::as_array)
                .unwrap_or_default()
                .iter()
                .filter_map(|destination| string(destination.get("endpoint")))
                .collect(),
            source_endpoint: string(header.get("source").and_then(|s| s.get("endpoint"))),
            response_identifier: string(response.and_then(|r| r.get("identifier"))),
            response_code: string(response.and_then(|r| r.get("code"))),
        }
    }
}

/// The value if it is a string.
fn string<'de>(value: Option<&Json<'de>>) -> Option<Cow<'de, str>> {
    match value {
        Some(Json::String(text)) => Some(text.clone()),
        _ => None,
    }
}

/// A string the rules require: trimmed, and `None` when empty.
pub(super) fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|s| !s.is_empty())
}
