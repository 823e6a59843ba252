//! BaRS over FHIR: the request headers, Accept/Content-Type negotiation, the routes, the
//! message bundle rules, the MessageDefinitions supported, the CapabilityStatement and the
//! `REC_` OperationOutcome errors.
//! Pure functions over `http` types and JSON; nothing here knows of sockets or TLS.

mod bundle;
mod bundle_ids;
mod bundle_view;
mod capability;
mod error;
mod headers;
mod id_places;
mod json;
mod media;
mod message_definition;
mod message_definition_catalogue;
mod routes;
mod tree;
mod validate;
mod validate_definitions;
mod validate_resources;

pub use bundle::{MessageBundle, MessageEvent, MessageReason, MessageResponse};
pub use bundle_ids::AssignedId;
pub use bundle_view::{EVENT_SYSTEM, REASON_SYSTEM};
pub(crate) use capability::{ClientAuth, Describe, Registered, RegisteredResource, capability_statement};
pub use capability::{SearchParam, SearchParamType};
pub use error::{HTTP_ERROR_CODE_SYSTEM, IssueType, RecCode, RecError};
pub use headers::{
    BarsIds, EndUserOrganisation, NHSD_END_USER_ORGANISATION, NHSD_REQUESTING_PRACTITIONER,
    NHSD_REQUESTING_SOFTWARE, NHSD_TARGET_IDENTIFIER, NhsdHeaders, RequesterHeaders, RequestingPractitioner,
    RequestingSoftware, TargetIdentifier, X_CORRELATION_ID, X_REQUEST_ID, encode_header_json,
};
pub(crate) use headers::{X_CORRELATION_ID_NAME, X_REQUEST_ID_NAME};
pub(crate) use json::parse_value;
pub(crate) use media::{BodyKind, check_accept, check_content_type};
pub use message_definition::{MessageDefinitions, SupportedDefinition, UnsupportedDefinition, use_case};
pub use message_definition_catalogue::{AllowedResponse, Focus, MessageDefinition, USE_CASE_SYSTEM};
pub use routes::ResourceType;
pub(crate) use routes::{Interaction, Route};
pub use validate::ODS_SYSTEM;
pub(crate) use validate::{Receiver, read_message};
pub(crate) use validate_definitions::Definitions;
