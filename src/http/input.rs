//! Reading what a request carries, in the order BaRS wants refusals: Accept (406),
//! Content-Type (415), size (413), JSON (400), then the shape each interaction needs.

use axum::body::Body;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::HttpConfig;
use crate::fhir::{
    BodyKind, Interaction, IssueType, MessageBundle, RecCode, RecError, ResourceType, Route,
    TargetIdentifier, check_accept, check_content_type,
};
use crate::handler::{SearchParams, SlotQuery};

/// What a handler call is made with.
pub(crate) enum Input {
    Message(Box<MessageBundle>),
    Slots(SlotQuery),
    Search(SearchParams),
    Id(String),
    Resource(Option<String>, Value),
    Patch(String, Value),
}

/// Validates the request for `interaction` and extracts its input.
pub(crate) async fn read(
    parts: &Parts,
    body: Body,
    interaction: Interaction,
    route: &Route,
    config: &HttpConfig,
) -> Result<Input, RecError> {
    let (max_body, services) = (config.max_body, config.services.as_slice());
    check_accept(&parts.headers)?;
    let id = || route.resource_id().unwrap_or_default().to_owned();
    match interaction {
        Interaction::Capabilities => Ok(Input::Search(query(parts))),
        Interaction::SearchMessageDefinitions | Interaction::Search(_) => Ok(Input::Search(query(parts))),
        Interaction::SearchSlots => SlotQuery::parse(query(parts)).map(Input::Slots),
        Interaction::Read(_) | Interaction::Delete(_) => Ok(Input::Id(id())),
        Interaction::ProcessMessage => {
            let json = json_body(parts, body, BodyKind::Resource, max_body).await?;
            let message = MessageBundle::parse(json)?;
            check_destination(&message, services)?;
            Ok(Input::Message(Box::new(message)))
        }
        Interaction::Create(ty) => {
            let json = json_body(parts, body, BodyKind::Resource, max_body).await?;
            check_resource_type(&json, ty)?;
            Ok(Input::Resource(None, json))
        }
        Interaction::Update(ty) => {
            let json = json_body(parts, body, BodyKind::Resource, max_body).await?;
            check_resource_type(&json, ty)?;
            if json["id"].as_str().is_some_and(|body_id| body_id != id()) {
                return Err(RecError::bad_request(
                    IssueType::Invalid,
                    "The resource id in the body does not match the id in the URL",
                ));
            }
            Ok(Input::Resource(Some(id()), json))
        }
        Interaction::Patch(_) => {
            let json = json_body(parts, body, BodyKind::Patch, max_body).await?;
            Ok(Input::Patch(id(), json))
        }
    }
}

/// Reads a JSON body within `max_body`.
async fn json_body(parts: &Parts, body: Body, kind: BodyKind, max_body: usize) -> Result<Value, RecError> {
    check_content_type(&parts.headers, kind)?;
    let too_large = || {
        RecError::new(
            RecCode::PayloadTooLarge,
            IssueType::TooCostly,
            format!("The request body is larger than this receiver's limit of {max_body} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => {
            return Err(RecError::bad_request(
                IssueType::Structure,
                "The request body could not be read",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RecError::bad_request(
            IssueType::Required,
            "The request body is empty",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        RecError::bad_request(
            IssueType::Structure,
            format!(
                "The request body is not well-formed JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

fn check_resource_type(json: &Value, ty: ResourceType) -> Result<(), RecError> {
    if json["resourceType"] == ty.as_str() {
        Ok(())
    } else {
        Err(RecError::bad_request(
            IssueType::Invalid,
            format!("The body must be a {} resource", ty.as_str()),
        ))
    }
}

/// With services configured, the message must be addressed to one of them.
fn check_destination(message: &MessageBundle, services: &[TargetIdentifier]) -> Result<(), RecError> {
    if services.is_empty()
        || message
            .destination_endpoints
            .iter()
            .any(|endpoint| services.iter().any(|s| s.matches_token(endpoint)))
    {
        return Ok(());
    }
    Err(RecError::unprocessable(
        IssueType::Processing,
        "MessageHeader.destination does not name a service handled by this receiver",
    ))
}

/// Query parameters, percent-decoded. A literal `+` stays a `+`: senders often leave the
/// `+` of a UTC offset unencoded, and FHIR search is not form encoding.
pub(crate) fn query(parts: &Parts) -> SearchParams {
    let raw = parts.uri.query().unwrap_or_default().replace('+', "%2B");
    SearchParams::new(form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
}
