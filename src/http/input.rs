//! Reading what a request carries: the body within the size limit (413), then, in the order
//! BaRS wants refusals, Accept (406), Content-Type (415), JSON (400) and the shape each
//! interaction needs.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::HttpConfig;
use crate::fhir::{
    BodyKind, Interaction, IssueType, MessageBundle, RecCode, RecError, Receiver, ResourceType, Route,
    check_accept, check_content_type, parse_value, read_message,
};
use crate::handler::{SearchParams, SlotQuery, check_patient_search};

/// What a handler call is made with.
pub(crate) enum Input {
    Message(Box<MessageBundle>),
    Slots(SlotQuery),
    Search(SearchParams),
    Id(String),
    Resource(Option<String>, Value),
    Patch(String, Value),
}

/// Whether `interaction` carries a request body.
pub(crate) fn has_body(interaction: Interaction) -> bool {
    matches!(
        interaction,
        Interaction::ProcessMessage | Interaction::Create(_) | Interaction::Update(_) | Interaction::Patch(_)
    )
}

/// Reads the whole body within `max_body` (empty for interactions without one).
pub(crate) async fn read_body(
    parts: &Parts,
    body: Body,
    interaction: Interaction,
    max_body: usize,
) -> Result<Bytes, RecError> {
    if !has_body(interaction) {
        return Ok(Bytes::new());
    }
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
    // Collected into one buffer sized from the declared length, rather than as chunks joined
    // at the end: the joined copy would double what the body holds at its peak.
    let capacity = declared.map_or(0, |len| len as usize);
    let mut buffer = Vec::with_capacity(capacity);
    let mut limited = Limited::new(body, max_body);
    while let Some(frame) = limited.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    buffer.extend_from_slice(data);
                }
            }
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
            // The upload broke off: nothing about the message is known, so a retry must be
            // processed afresh rather than answered with this.
            Err(_) => {
                return Err(RecError::bad_request(
                    IssueType::Structure,
                    "The request body could not be read completely",
                )
                .retryable());
            }
        }
    }
    Ok(Bytes::from(buffer))
}

/// Validates the request for `interaction` and extracts its input from `body`.
pub(crate) fn parse(
    parts: &Parts,
    body: &Bytes,
    interaction: Interaction,
    route: &Route,
    config: &HttpConfig,
) -> Result<Input, RecError> {
    check_accept(&parts.headers)?;
    // The path before the body: a request for a malformed id is refused unparsed.
    if route.resource_id().is_some() {
        route.checked_resource_id()?;
    }
    let id = || route.resource_id().unwrap_or_default().to_owned();
    match interaction {
        Interaction::Capabilities | Interaction::SearchMessageDefinitions => Ok(Input::Search(query(parts))),
        Interaction::Search(_) => {
            let params = query(parts);
            check_patient_search(&params)?;
            Ok(Input::Search(params))
        }
        Interaction::SearchSlots => SlotQuery::parse(query(parts), config.max_slot_range).map(Input::Slots),
        Interaction::Read(_) | Interaction::Delete(_) => Ok(Input::Id(id())),
        Interaction::ProcessMessage => {
            let text = body_text(parts, body, BodyKind::Resource)?;
            let receiver = Receiver {
                services: &config.services,
                organisation: config.ods_code.as_deref(),
                definitions: &config.definitions,
            };
            let message = read_message(text, &receiver)?;
            // With `[[messaging.definitions]]` configured, only those are accepted (without
            // any, every definition of the built-in catalogue is, as warned at start).
            if let Some(definition) = &message.definition {
                if !config.message_definitions.is_empty() {
                    config
                        .message_definitions
                        .lookup(definition, None)
                        .map_err(|e| e.to_rec_error())?;
                }
            }
            Ok(Input::Message(Box::new(message)))
        }
        Interaction::Create(ty) => {
            let json = parse_value(body_text(parts, body, BodyKind::Resource)?)?;
            check_resource_type(&json, ty)?;
            Ok(Input::Resource(None, json))
        }
        Interaction::Update(ty) => {
            let json = parse_value(body_text(parts, body, BodyKind::Resource)?)?;
            check_resource_type(&json, ty)?;
            if json["id"].as_str().is_some_and(|body_id| body_id != id()) {
                return Err(RecError::bad_request(
                    IssueType::Invalid,
                    "The resource id in the body does not match the id in the URL",
                ));
            }
            Ok(Input::Resource(Some(id()), json))
        }
        Interaction::Patch(_) => Ok(Input::Patch(
            id(),
            parse_value(body_text(parts, body, BodyKind::Patch)?)?,
        )),
    }
}

/// The body as UTF-8 text, after the Content-Type check.
fn body_text<'a>(parts: &Parts, body: &'a Bytes, kind: BodyKind) -> Result<&'a str, RecError> {
    check_content_type(&parts.headers, kind)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RecError::bad_request(
            IssueType::Required,
            "The request body is empty",
        ));
    }
    std::str::from_utf8(body)
        .map_err(|_| RecError::bad_request(IssueType::Structure, "The request body is not UTF-8"))
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

/// Query parameters, percent-decoded. A literal `+` stays a `+`: senders often leave the
/// `+` of a UTC offset unencoded, and FHIR search is not form encoding.
pub(crate) fn query(parts: &Parts) -> SearchParams {
    let raw = parts.uri.query().unwrap_or_default().replace('+', "%2B");
    SearchParams::new(form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
}
