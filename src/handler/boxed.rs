//! The private, dyn-compatible form of the handler traits: what [`super::Handlers`] stores.
//! Each public trait has a blanket implementation here that boxes its future, so integrators
//! write plain `async fn`s and the registry still holds `Arc<dyn ...>` trait objects.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::rest::{CreateHandler, DeleteHandler, PatchHandler, ReadHandler, SearchHandler, UpdateHandler};
use super::{HandlerResult, MessagingHandler, RequestContext, SearchParams, SlotHandler, SlotQuery};
use crate::fhir::MessageBundle;

/// A handler's answer, boxed.
pub(crate) type Answer<'a> = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'a>>;

pub(crate) trait DynMessaging: Send + Sync {
    fn process_message<'a>(&'a self, ctx: &'a RequestContext, message: MessageBundle) -> Answer<'a>;
}

impl<T: MessagingHandler> DynMessaging for T {
    fn process_message<'a>(&'a self, ctx: &'a RequestContext, message: MessageBundle) -> Answer<'a> {
        Box::pin(MessagingHandler::process_message(self, ctx, message))
    }
}

pub(crate) trait DynSlots: Send + Sync {
    fn search_slots<'a>(&'a self, ctx: &'a RequestContext, query: SlotQuery) -> Answer<'a>;
}

impl<T: SlotHandler> DynSlots for T {
    fn search_slots<'a>(&'a self, ctx: &'a RequestContext, query: SlotQuery) -> Answer<'a> {
        Box::pin(SlotHandler::search_slots(self, ctx, query))
    }
}

pub(crate) trait DynRead: Send + Sync {
    fn read<'a>(&'a self, ctx: &'a RequestContext, id: &'a str) -> Answer<'a>;
}

impl<T: ReadHandler> DynRead for T {
    fn read<'a>(&'a self, ctx: &'a RequestContext, id: &'a str) -> Answer<'a> {
        Box::pin(ReadHandler::read(self, ctx, id))
    }
}

pub(crate) trait DynSearch: Send + Sync {
    fn search<'a>(&'a self, ctx: &'a RequestContext, params: SearchParams) -> Answer<'a>;
}

impl<T: SearchHandler> DynSearch for T {
    fn search<'a>(&'a self, ctx: &'a RequestContext, params: SearchParams) -> Answer<'a> {
        Box::pin(SearchHandler::search(self, ctx, params))
    }
}

pub(crate) trait DynCreate: Send + Sync {
    fn create<'a>(&'a self, ctx: &'a RequestContext, resource: Value) -> Answer<'a>;
}

impl<T: CreateHandler> DynCreate for T {
    fn create<'a>(&'a self, ctx: &'a RequestContext, resource: Value) -> Answer<'a> {
        Box::pin(CreateHandler::create(self, ctx, resource))
    }
}

pub(crate) trait DynUpdate: Send + Sync {
    fn update<'a>(&'a self, ctx: &'a RequestContext, id: &'a str, resource: Value) -> Answer<'a>;
}

impl<T: UpdateHandler> DynUpdate for T {
    fn update<'a>(&'a self, ctx: &'a RequestContext, id: &'a str, resource: Value) -> Answer<'a> {
        Box::pin(UpdateHandler::update(self, ctx, id, resource))
    }
}

pub(crate) trait DynPatch: Send + Sync {
    fn patch<'a>(&'a self, ctx: &'a RequestContext, id: &'a str, patch: Value) -> Answer<'a>;
}

impl<T: PatchHandler> DynPatch for T {
    fn patch<'a>(&'a self, ctx: &'a RequestContext, id: &'a str, patch: Value) -> Answer<'a> {
        Box::pin(PatchHandler::patch(self, ctx, id, patch))
    }
}

pub(crate) trait DynDelete: Send + Sync {
    fn delete<'a>(&'a self, ctx: &'a RequestContext, id: &'a str) -> Answer<'a>;
}

impl<T: DeleteHandler> DynDelete for T {
    fn delete<'a>(&'a self, ctx: &'a RequestContext, id: &'a str) -> Answer<'a> {
        Box::pin(DeleteHandler::delete(self, ctx, id))
    }
}
