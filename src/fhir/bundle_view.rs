//! The parts of a `$process-message` bundle that the BaRS message rules read, gathered in
//! the one strict pass over the body (`json`): every other member is checked for repeated
//! names and skipped, never held. Strings are borrowed from the body unless they carry
//! escapes, so what this view holds stays small whatever the bundle carries.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess};

use super::json::{ArrayView, AsObject, Member, ObjectView, Scope, Skip};

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

impl<'de> ObjectView<'de> for BundleView<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        match name {
            "resourceType" => self.resource_type = m.string()?,
            "type" => self.bundle_type = m.string()?,
            "id" => self.id = m.string()?,
            "timestamp" => self.timestamp = m.string()?,
            "meta" => self.version = m.object::<Meta<'de>>()?.version_id,
            "entry" => self.entries = m.array()?,
            _ => {}
        }
        Ok(())
    }
}

#[derive(Default)]
struct Meta<'de> {
    version_id: Option<Cow<'de, str>>,
}

impl<'de> ObjectView<'de> for Meta<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        if name == "versionId" {
            self.version_id = m.string()?;
        }
        Ok(())
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

impl<'de> ArrayView<'de> for Entries<'de> {
    fn element<A: SeqAccess<'de>>(
        &mut self,
        index: usize,
        seq: &mut A,
        scope: Scope<'_, 'de>,
    ) -> Result<bool, A::Error> {
        let (full_url, resource_type) = if index == 0 {
            let Some(entry) = seq.next_element_seed(AsObject::<Entry<'de, Header<'de>>>::new(scope))? else {
                return Ok(false);
            };
            self.header = entry.resource;
            (entry.full_url, self.header.resource_type.clone())
        } else {
            let Some(entry) = seq.next_element_seed(AsObject::<Entry<'de, TypeOnly<'de>>>::new(scope))?
            else {
                return Ok(false);
            };
            (entry.full_url, entry.resource.value)
        };
        self.count += 1;
        if self.first_problem.is_none() {
            if non_empty(full_url.as_deref()).is_none() {
                self.first_problem = Some((index, EntryProblem::NoFullUrl));
            } else if non_empty(resource_type.as_deref()).is_none() {
                self.first_problem = Some((index, EntryProblem::NoResourceType));
            }
        }
        if self.focus_type.is_none() {
            let focus = non_empty(self.header.focus_reference.as_deref());
            if focus.is_some() && full_url.as_deref() == focus {
                self.focus_type = resource_type;
            }
        }
        Ok(true)
    }
}

/// One entry: its `fullUrl` and its resource, read as `R`.
#[derive(Default)]
struct Entry<'de, R> {
    full_url: Option<Cow<'de, str>>,
    resource: R,
}

impl<'de, R: ObjectView<'de>> ObjectView<'de> for Entry<'de, R> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        match name {
            "fullUrl" => self.full_url = m.string()?,
            "resource" => self.resource = m.object()?,
            _ => {}
        }
        Ok(())
    }
}

/// An object of which only the string member `N::NAME` is read: a resource's type, a
/// reference, an endpoint.
struct OneString<'de, N> {
    value: Option<Cow<'de, str>>,
    name: PhantomData<N>,
}

impl<N> Default for OneString<'_, N> {
    fn default() -> Self {
        Self {
            value: None,
            name: PhantomData,
        }
    }
}

/// Names the member a [`OneString`] reads.
trait MemberName {
    const NAME: &'static str;
}

impl<'de, N: MemberName> ObjectView<'de> for OneString<'de, N> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        if name == N::NAME {
            self.value = m.string()?;
        }
        Ok(())
    }
}

struct ResourceTypeMember;
impl MemberName for ResourceTypeMember {
    const NAME: &'static str = "resourceType";
}

struct ReferenceMember;
impl MemberName for ReferenceMember {
    const NAME: &'static str = "reference";
}

struct EndpointMember;
impl MemberName for EndpointMember {
    const NAME: &'static str = "endpoint";
}

/// A resource of which only the type is read.
type TypeOnly<'de> = OneString<'de, ResourceTypeMember>;
/// A Reference of which only `reference` is read.
type Reference<'de> = OneString<'de, ReferenceMember>;
/// An element of which only `endpoint` is read.
type Endpoint<'de> = OneString<'de, EndpointMember>;

/// The first entry's resource, read as a MessageHeader.
#[derive(Default)]
pub(super) struct Header<'de> {
    pub(super) resource_type: Option<Cow<'de, str>>,
    /// `eventCoding.system` and `.code`.
    pub(super) event_system: Option<Cow<'de, str>>,
    pub(super) event_code: Option<Cow<'de, str>>,
    /// `reason.coding`: whether it is an array, and the code of its first coding from
    /// [`REASON_SYSTEM`] (outer `None`: no such coding).
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

impl<'de> ObjectView<'de> for Header<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        match name {
            "resourceType" => self.resource_type = m.string()?,
            "eventCoding" => {
                let coding = m.object::<Coding<'de>>()?;
                self.event_system = coding.system;
                self.event_code = coding.code;
            }
            "reason" => self.reason_code = m.object::<Reason<'de>>()?.code,
            "focus" => self.focus_reference = m.array::<FirstReference<'de>>()?.reference,
            "definition" => self.definition = m.string()?,
            "destination" => self.destination_endpoints = m.array::<Endpoints<'de>>()?.endpoints,
            "source" => self.source_endpoint = m.object::<Endpoint<'de>>()?.value,
            "response" => {
                let response = m.object::<Response<'de>>()?;
                self.response_identifier = response.identifier;
                self.response_code = response.code;
            }
            _ => {}
        }
        Ok(())
    }
}

#[derive(Default)]
struct Coding<'de> {
    system: Option<Cow<'de, str>>,
    code: Option<Cow<'de, str>>,
}

impl<'de> ObjectView<'de> for Coding<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        match name {
            "system" => self.system = m.string()?,
            "code" => self.code = m.string()?,
            _ => {}
        }
        Ok(())
    }
}

/// `MessageHeader.reason`: the code of the first coding from [`REASON_SYSTEM`].
#[derive(Default)]
struct Reason<'de> {
    code: Option<Option<Cow<'de, str>>>,
}

impl<'de> ObjectView<'de> for Reason<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        if name == "coding" {
            self.code = m.array::<ReasonCodings<'de>>()?.code;
        }
        Ok(())
    }
}

#[derive(Default)]
struct ReasonCodings<'de> {
    code: Option<Option<Cow<'de, str>>>,
}

impl<'de> ArrayView<'de> for ReasonCodings<'de> {
    fn element<A: SeqAccess<'de>>(
        &mut self,
        _: usize,
        seq: &mut A,
        scope: Scope<'_, 'de>,
    ) -> Result<bool, A::Error> {
        if self.code.is_some() {
            return Ok(seq.next_element_seed(Skip(scope))?.is_some());
        }
        let Some(coding) = seq.next_element_seed(AsObject::<Coding<'de>>::new(scope))? else {
            return Ok(false);
        };
        if coding.system.as_deref() == Some(REASON_SYSTEM) {
            self.code = Some(coding.code);
        }
        Ok(true)
    }
}

/// `reference` of an array's first element.
#[derive(Default)]
struct FirstReference<'de> {
    reference: Option<Cow<'de, str>>,
}

impl<'de> ArrayView<'de> for FirstReference<'de> {
    fn element<A: SeqAccess<'de>>(
        &mut self,
        index: usize,
        seq: &mut A,
        scope: Scope<'_, 'de>,
    ) -> Result<bool, A::Error> {
        if index > 0 {
            return Ok(seq.next_element_seed(Skip(scope))?.is_some());
        }
        let Some(reference) = seq.next_element_seed(AsObject::<Reference<'de>>::new(scope))? else {
            return Ok(false);
        };
        self.reference = reference.value;
        Ok(true)
    }
}

/// `endpoint` of every element that has one.
#[derive(Default)]
struct Endpoints<'de> {
    endpoints: Vec<Cow<'de, str>>,
}

impl<'de> ArrayView<'de> for Endpoints<'de> {
    fn element<A: SeqAccess<'de>>(
        &mut self,
        _: usize,
        seq: &mut A,
        scope: Scope<'_, 'de>,
    ) -> Result<bool, A::Error> {
        let Some(endpoint) = seq.next_element_seed(AsObject::<Endpoint<'de>>::new(scope))? else {
            return Ok(false);
        };
        self.endpoints.extend(endpoint.value);
        Ok(true)
    }
}

#[derive(Default)]
struct Response<'de> {
    identifier: Option<Cow<'de, str>>,
    code: Option<Cow<'de, str>>,
}

impl<'de> ObjectView<'de> for Response<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        m: &mut Member<'_, '_, 'de, A>,
    ) -> Result<(), A::Error> {
        match name {
            "identifier" => self.identifier = m.string()?,
            "code" => self.code = m.string()?,
            _ => {}
        }
        Ok(())
    }
}

/// A string the rules require: trimmed, and `None` when empty.
pub(super) fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|s| !s.is_empty())
}
