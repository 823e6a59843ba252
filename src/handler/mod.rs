//! The public handler traits integrators implement, the [`RequestContext`] they receive, the
//! [`Handlers`] registry the server dispatches to, and the built-in handlers: inbox, forward
//! and relay (with the headers these two send upstream about the verified caller).
//!
//! The traits take only this crate's types (no axum or hyper types) and are native
//! `async fn` traits: an integrator writes `async fn process_message(...)` in a plain
//! `impl`, with no macro. The registry stores each handler in a private boxed form
//! ([`boxed`]), so the traits need not be dyn-compatible.
//!
//! Registration is the capability: messaging is mandatory ([`Handlers::new`]); slot search
//! and each RESTful interaction are registered one by one, and the CapabilityStatement lists
//! exactly what was registered. `GET /metadata` and `GET /MessageDefinition` are answered by
//! the receiver itself, from what is registered and configured, never by a handler.

mod boxed;
mod context;
mod forward;
mod inbox;
mod outbound;
mod registry;
mod relay;
mod reply;
mod rest;
mod types;

use std::future::Future;
use std::sync::Arc;

pub use context::RequestContext;
pub(crate) use context::claims_identity;
pub use forward::ForwardHandler;
pub use inbox::InboxHandler;
pub(crate) use registry::RelayJob;
pub use registry::{Handlers, ResourceHandlers};
pub use relay::RelayHandler;
pub use reply::ReplyTo;
pub use rest::{CreateHandler, DeleteHandler, PatchHandler, ReadHandler, SearchHandler, UpdateHandler};
pub(crate) use types::check_patient_search;
pub use types::{
    FhirResponse, HandlerResult, REQUIRED_SLOT_INCLUDES, RestInteraction, SLOT_SERVICE_PARAM, SearchParams,
    SlotQuery, SlotStatus,
};

use crate::fhir::MessageBundle;

/// `POST /$process-message`: every BaRS receiver must handle messages, so this trait has no
/// default and its handler is the one argument of [`Handlers::new`].
///
/// A state-changing handler is never cancelled: one still running at `http.deadline` keeps
/// running (the sender gets 408, its retries 425) and its outcome is recorded for the retry
/// whenever it ends. A process exit can still stop it part-way, so commit idempotently on
/// [`RequestContext::request_id`].
pub trait MessagingHandler: Send + Sync + 'static {
    /// Processes a message bundle that passed the BaRS structural checks. Answer
    /// [`FhirResponse::ok`] with the message bundle once it is safely accepted.
    fn process_message(
        &self,
        ctx: &RequestContext,
        message: MessageBundle,
    ) -> impl Future<Output = HandlerResult> + Send;
}

/// `GET /Slot`: free/busy slots of a service ([`Handlers::with_slots`]).
pub trait SlotHandler: Send + Sync + 'static {
    /// Answers a validated slot search with a searchset Bundle.
    fn search_slots(
        &self,
        ctx: &RequestContext,
        query: SlotQuery,
    ) -> impl Future<Output = HandlerResult> + Send;
}

impl<T: MessagingHandler> MessagingHandler for Arc<T> {
    fn process_message(
        &self,
        ctx: &RequestContext,
        message: MessageBundle,
    ) -> impl Future<Output = HandlerResult> + Send {
        T::process_message(self, ctx, message)
    }
}

impl<T: SlotHandler> SlotHandler for Arc<T> {
    fn search_slots(
        &self,
        ctx: &RequestContext,
        query: SlotQuery,
    ) -> impl Future<Output = HandlerResult> + Send {
        T::search_slots(self, ctx, query)
    }
}
