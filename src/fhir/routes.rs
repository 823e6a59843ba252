//! The BaRS receiver routes: which paths exist, which methods each takes, and the 404/405
//! answers for everything else.

use http::Method;

use super::error::{IssueType, RecCode, RecError};

/// The two resource types a receiver may serve RESTfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// `Appointment` (bookings).
    Appointment,
    /// `ServiceRequest` (referrals).
    ServiceRequest,
}

impl ResourceType {
    /// The FHIR resource type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appointment => "Appointment",
            Self::ServiceRequest => "ServiceRequest",
        }
    }
}

/// A matched BaRS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/metadata`
    Metadata,
    /// `/MessageDefinition`
    MessageDefinition,
    /// `/$process-message`
    ProcessMessage,
    /// `/Slot`
    Slot,
    /// `/Appointment` or `/ServiceRequest`
    ResourceType(ResourceType),
    /// `/Appointment/{id}` or `/ServiceRequest/{id}`
    ResourceInstance(ResourceType, String),
}

/// A handler function a request maps to, once its route and method are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Interaction {
    /// `GET /metadata`
    Capabilities,
    /// `GET /MessageDefinition`
    SearchMessageDefinitions,
    /// `POST /$process-message`
    ProcessMessage,
    /// `GET /Slot`
    SearchSlots,
    /// `GET /{type}`
    Search(ResourceType),
    /// `GET /{type}/{id}`
    Read(ResourceType),
    /// `POST /{type}`
    Create(ResourceType),
    /// `PUT /{type}/{id}`
    Update(ResourceType),
    /// `PATCH /{type}/{id}`
    Patch(ResourceType),
    /// `DELETE /{type}/{id}`
    Delete(ResourceType),
}

impl Route {
    /// Matches a path relative to the base path (`/metadata`, `/Appointment/123`...).
    /// `$` may arrive percent-encoded. Unknown paths are a 404 `REC_NOT_FOUND`.
    pub(crate) fn match_path(path: &str) -> Result<Self, RecError> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut segments = trimmed.split('/');
        let first = segments.next().unwrap_or_default();
        let second = segments.next();
        let extra = segments.next();
        let route = match (first, second, extra) {
            ("metadata", None, None) => Some(Self::Metadata),
            ("MessageDefinition", None, None) => Some(Self::MessageDefinition),
            ("$process-message" | "%24process-message", None, None) => Some(Self::ProcessMessage),
            ("Slot", None, None) => Some(Self::Slot),
            (ty, None, None) => resource_type(ty).map(Self::ResourceType),
            // Any id routes, so that a malformed one is answered 400 by the id check rather
            // than 404: the path names an endpoint that exists.
            (ty, Some(id), None) => resource_type(ty).map(|t| Self::ResourceInstance(t, id.to_owned())),
            _ => None,
        };
        route.ok_or_else(|| RecError::not_found("No BaRS endpoint at this path on this receiver"))
    }

    /// The methods this route takes, for `Allow`.
    pub(crate) fn allowed_methods(&self) -> &'static [Method] {
        match self {
            Self::Metadata | Self::MessageDefinition | Self::Slot => &[Method::GET],
            Self::ProcessMessage => &[Method::POST],
            Self::ResourceType(_) => &[Method::GET, Method::POST],
            Self::ResourceInstance(..) => &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
        }
    }

    /// The `Allow` header value.
    pub(crate) fn allow_header(&self) -> String {
        self.allowed_methods()
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The interaction for `method` on this route, or 405 `REC_METHOD_NOT_ALLOWED`.
    pub(crate) fn interaction(&self, method: &Method) -> Result<Interaction, RecError> {
        let interaction = match (self, method.as_str()) {
            (Self::Metadata, "GET") => Interaction::Capabilities,
            (Self::MessageDefinition, "GET") => Interaction::SearchMessageDefinitions,
            (Self::ProcessMessage, "POST") => Interaction::ProcessMessage,
            (Self::Slot, "GET") => Interaction::SearchSlots,
            (Self::ResourceType(t), "GET") => Interaction::Search(*t),
            (Self::ResourceType(t), "POST") => Interaction::Create(*t),
            (Self::ResourceInstance(t, _), "GET") => Interaction::Read(*t),
            (Self::ResourceInstance(t, _), "PUT") => Interaction::Update(*t),
            (Self::ResourceInstance(t, _), "PATCH") => Interaction::Patch(*t),
            (Self::ResourceInstance(t, _), "DELETE") => Interaction::Delete(*t),
            _ => {
                return Err(RecError::new(
                    RecCode::MethodNotAllowed,
                    IssueType::NotSupported,
                    format!("{method} is not allowed here; allowed: {}", self.allow_header()),
                ));
            }
        };
        Ok(interaction)
    }

    /// The resource id of an instance route, as it appears in the path.
    pub(crate) fn resource_id(&self) -> Option<&str> {
        match self {
            Self::ResourceInstance(_, id) => Some(id),
            _ => None,
        }
    }

    /// The resource id of an instance route, which BaRS requires to be a UUID (Core 1.5.0,
    /// failure scenarios of `GET /Appointment/{id}` and `GET /ServiceRequest/{id}`; the
    /// OpenAPI spec's `id` is `format: uuid` for every method): an empty id is 400
    /// `required`, anything but a hyphenated UUID 400 `value`, both with expression
    /// `http.id`. So no other id ever reaches a handler, or the URL of a system behind the
    /// forwarder.
    pub(crate) fn checked_resource_id(&self) -> Result<&str, RecError> {
        let Self::ResourceInstance(ty, id) = self else {
            return Err(RecError::server_error(
                "An unexpected error occurred at the receiver.",
            ));
        };
        if id.is_empty() {
            return Err(RecError::bad_request(
                IssueType::Required,
                format!("The {} id is missing from the path", ty.as_str()),
            )
            .with_expression("http.id"));
        }
        if !is_uuid(id) {
            return Err(RecError::bad_request(
                IssueType::Value,
                format!("The {} id in the path is not a UUID", ty.as_str()),
            )
            .with_expression("http.id"));
        }
        Ok(id)
    }
}

impl Interaction {
    /// Whether the interaction changes state, and so is de-duplicated on `X-Request-Id`.
    pub(crate) fn is_mutation(self) -> bool {
        matches!(
            self,
            Self::ProcessMessage | Self::Create(_) | Self::Update(_) | Self::Patch(_) | Self::Delete(_)
        )
    }

    /// A short stable name for logs and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Capabilities => "metadata",
            Self::SearchMessageDefinitions => "message-definition-search",
            Self::ProcessMessage => "process-message",
            Self::SearchSlots => "slot-search",
            Self::Search(ResourceType::Appointment) => "appointment-search",
            Self::Search(ResourceType::ServiceRequest) => "service-request-search",
            Self::Read(ResourceType::Appointment) => "appointment-read",
            Self::Read(ResourceType::ServiceRequest) => "service-request-read",
            Self::Create(ResourceType::Appointment) => "appointment-create",
            Self::Create(ResourceType::ServiceRequest) => "service-request-create",
            Self::Update(ResourceType::Appointment) => "appointment-update",
            Self::Update(ResourceType::ServiceRequest) => "service-request-update",
            Self::Patch(ResourceType::Appointment) => "appointment-patch",
            Self::Patch(ResourceType::ServiceRequest) => "service-request-patch",
            Self::Delete(ResourceType::Appointment) => "appointment-delete",
            Self::Delete(ResourceType::ServiceRequest) => "service-request-delete",
        }
    }
}

fn resource_type(segment: &str) -> Option<ResourceType> {
    match segment {
        "Appointment" => Some(ResourceType::Appointment),
        "ServiceRequest" => Some(ResourceType::ServiceRequest),
        _ => None,
    }
}

/// The hyphenated 36-character UUID form only (either case), as the ids headers: braces,
/// URNs and bare hex would give one resource several ids.
fn is_uuid(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_every_bars_endpoint() {
        assert_eq!(Route::match_path("/metadata").unwrap(), Route::Metadata);
        assert_eq!(
            Route::match_path("/MessageDefinition").unwrap(),
            Route::MessageDefinition
        );
        assert_eq!(
            Route::match_path("/$process-message").unwrap(),
            Route::ProcessMessage
        );
        assert_eq!(
            Route::match_path("/%24process-message").unwrap(),
            Route::ProcessMessage
        );
        assert_eq!(Route::match_path("/Slot").unwrap(), Route::Slot);
        assert_eq!(
            Route::match_path("/Appointment").unwrap(),
            Route::ResourceType(ResourceType::Appointment)
        );
        assert_eq!(
            Route::match_path("/ServiceRequest/abc-123").unwrap(),
            Route::ResourceInstance(ResourceType::ServiceRequest, "abc-123".into())
        );
    }

    const UUID: &str = "91607239-b002-470a-8709-6b25bd50fdd1";

    #[test]
    fn instance_ids_must_be_uuids() {
        let ok = Route::match_path(&format!("/Appointment/{UUID}")).unwrap();
        assert_eq!(ok.checked_resource_id().unwrap(), UUID);
        let upper = Route::match_path(&format!("/ServiceRequest/{}", UUID.to_uppercase())).unwrap();
        assert!(upper.checked_resource_id().is_ok());
        for bad in [
            "non-uuid",
            "1",
            "..",
            ".",
            "a%20b",
            "91607239b002470a87096b25bd50fdd1",
            "{91607239-b002-470a-8709-6b25bd50fdd1}",
            "91607239-b002-470a-8709-6b25bd50fdd1x",
        ] {
            let route = Route::match_path(&format!("/Appointment/{bad}")).unwrap();
            let err = route.checked_resource_id().unwrap_err();
            assert_eq!((err.status(), err.issue()), (400, IssueType::Value), "{bad}");
            assert_eq!(err.expression().first().map(String::as_str), Some("http.id"));
        }
        let empty = Route::match_path("/Appointment//").unwrap();
        let err = empty.checked_resource_id().unwrap_err();
        assert_eq!((err.status(), err.issue()), (400, IssueType::Required));
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/DocumentReference",
            "/Binary/1",
            "/Appointment/1/_history",
            "/metadata/x",
        ] {
            let err = Route::match_path(path).unwrap_err();
            assert_eq!(err.status(), 404, "{path}");
            assert_eq!(err.issue(), IssueType::NotFound);
        }
    }

    #[test]
    fn wrong_methods_are_405_with_the_allowed_list() {
        let route = Route::match_path("/$process-message").unwrap();
        let err = route.interaction(&Method::GET).unwrap_err();
        assert_eq!(err.status(), 405);
        assert_eq!(err.code().as_str(), "REC_METHOD_NOT_ALLOWED");
        assert_eq!(err.issue(), IssueType::NotSupported);
        assert_eq!(route.allow_header(), "POST");
        let instance = Route::match_path("/Appointment/1").unwrap();
        assert_eq!(instance.allow_header(), "GET, PUT, PATCH, DELETE");
        assert!(instance.interaction(&Method::POST).is_err());
    }

    #[test]
    fn mutations_are_the_non_read_interactions() {
        assert!(Interaction::ProcessMessage.is_mutation());
        assert!(Interaction::Delete(ResourceType::Appointment).is_mutation());
        assert!(!Interaction::Read(ResourceType::Appointment).is_mutation());
        assert!(!Interaction::SearchSlots.is_mutation());
    }
}
