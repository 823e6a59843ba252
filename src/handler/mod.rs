//! The public handler traits integrators implement, the [`RequestContext`] they receive, the
//! [`Handlers`] registry the server dispatches to, and the built-in handlers: inbox, forward
//! and relay (with the headers these two send upstream about the verified caller).
//!
//! The traits take only this crate's types (no axum or hyper types), are dyn-compatible
//! (stored as `Arc<dyn ...>`), and every method has a default that answers
//! `501 REC_NOT_IMPLEMENTED`.

mod context;
mod forward;
mod inbox;
mod outbound;
mod registry;
mod relay;
mod reply;
mod types;

use async_trait::async_trait;

pub use context::RequestContext;
pub(crate) use context::claims_identity;
pub use forward::ForwardHandler;
pub use inbox::InboxHandler;
pub use registry::Handlers;
pub use relay::RelayHandler;
pub use reply::ReplyTo;
pub use types::{FhirResponse, HandlerResult, RestInteraction, SearchParams, SlotQuery};

use crate::fhir::{MessageBundle, RecError};

/// `POST /$process-message`: every BaRS receiver must handle messages.
#[async_trait]
pub trait MessagingHandler: Send + Sync + 'static {
    /// Processes a message bundle that passed the BaRS structural checks. Answer
    /// [`FhirResponse::ok`] with the message bundle once it is safely accepted.
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        let _ = (ctx, message);
        Err(RecError::not_implemented(
            "Messaging is not implemented by this receiver",
        ))
    }
}

/// `GET /Slot`: free/busy slots of a service.
#[async_trait]
pub trait SlotHandler: Send + Sync + 'static {
    /// Answers a validated slot search with a searchset Bundle.
    async fn search_slots(&self, ctx: &RequestContext, query: SlotQuery) -> HandlerResult {
        let _ = (ctx, query);
        Err(RecError::not_implemented(
            "Slot search is not implemented by this receiver",
        ))
    }
}

/// `GET /MessageDefinition`: the message definitions this receiver expects.
#[async_trait]
pub trait MessageDefinitionHandler: Send + Sync + 'static {
    /// Answers a MessageDefinition search with a searchset Bundle.
    async fn search_message_definitions(&self, ctx: &RequestContext, params: SearchParams) -> HandlerResult {
        let _ = (ctx, params);
        Err(RecError::not_implemented(
            "MessageDefinition search is not implemented by this receiver",
        ))
    }
}

/// RESTful `Appointment` or `ServiceRequest` interactions. Register one handler per resource
/// type with [`Handlers::with_appointments`] / [`Handlers::with_service_requests`].
///
/// Only the interactions listed by [`ResourceHandler::interactions`] are routed to the
/// handler and advertised in the CapabilityStatement; the others answer 501 without calling it.
#[async_trait]
pub trait ResourceHandler: Send + Sync + 'static {
    /// The interactions this handler implements. Default: none.
    fn interactions(&self) -> Vec<RestInteraction> {
        Vec::new()
    }

    /// The search parameters advertised for `search` (name, FHIR type, documentation).
    fn search_params(&self) -> Vec<(String, String, String)> {
        Vec::new()
    }

    /// `GET /{type}/{id}`.
    async fn read(&self, ctx: &RequestContext, id: &str) -> HandlerResult {
        let _ = (ctx, id);
        Err(RecError::not_implemented(
            "Read is not implemented by this receiver",
        ))
    }

    /// `GET /{type}?...`.
    async fn search(&self, ctx: &RequestContext, params: SearchParams) -> HandlerResult {
        let _ = (ctx, params);
        Err(RecError::not_implemented(
            "Search is not implemented by this receiver",
        ))
    }

    /// `POST /{type}`.
    async fn create(&self, ctx: &RequestContext, resource: serde_json::Value) -> HandlerResult {
        let _ = (ctx, resource);
        Err(RecError::not_implemented(
            "Create is not implemented by this receiver",
        ))
    }

    /// `PUT /{type}/{id}`.
    async fn update(&self, ctx: &RequestContext, id: &str, resource: serde_json::Value) -> HandlerResult {
        let _ = (ctx, id, resource);
        Err(RecError::not_implemented(
            "Update is not implemented by this receiver",
        ))
    }

    /// `PATCH /{type}/{id}`.
    async fn patch(&self, ctx: &RequestContext, id: &str, patch: serde_json::Value) -> HandlerResult {
        let _ = (ctx, id, patch);
        Err(RecError::not_implemented(
            "Patch is not implemented by this receiver",
        ))
    }

    /// `DELETE /{type}/{id}`.
    async fn delete(&self, ctx: &RequestContext, id: &str) -> HandlerResult {
        let _ = (ctx, id);
        Err(RecError::not_implemented(
            "Delete is not implemented by this receiver",
        ))
    }
}
