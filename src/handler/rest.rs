//! RESTful `Appointment` and `ServiceRequest` interactions: one trait per interaction, each
//! registered on its own in a [`super::ResourceHandlers`]. Only what is registered is routed
//! and advertised; every other interaction answers 501 without a handler call.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::{HandlerResult, RequestContext, SearchParams};

/// `GET /{type}/{id}`.
pub trait ReadHandler: Send + Sync + 'static {
    /// Answers the resource with this id.
    fn read(&self, ctx: &RequestContext, id: &str) -> impl Future<Output = HandlerResult> + Send;
}

/// `GET /{type}?...`.
pub trait SearchHandler: Send + Sync + 'static {
    /// Answers a search with a searchset Bundle.
    fn search(
        &self,
        ctx: &RequestContext,
        params: SearchParams,
    ) -> impl Future<Output = HandlerResult> + Send;
}

/// `POST /{type}`.
pub trait CreateHandler: Send + Sync + 'static {
    /// Creates the resource; answer [`super::FhirResponse::created`].
    fn create(&self, ctx: &RequestContext, resource: Value) -> impl Future<Output = HandlerResult> + Send;
}

/// `PUT /{type}/{id}`.
pub trait UpdateHandler: Send + Sync + 'static {
    /// Replaces the resource with this id.
    fn update(
        &self,
        ctx: &RequestContext,
        id: &str,
        resource: Value,
    ) -> impl Future<Output = HandlerResult> + Send;
}

/// `PATCH /{type}/{id}`.
pub trait PatchHandler: Send + Sync + 'static {
    /// Applies a JSON patch to the resource with this id.
    fn patch(
        &self,
        ctx: &RequestContext,
        id: &str,
        patch: Value,
    ) -> impl Future<Output = HandlerResult> + Send;
}

/// `DELETE /{type}/{id}`.
pub trait DeleteHandler: Send + Sync + 'static {
    /// Deletes the resource with this id.
    fn delete(&self, ctx: &RequestContext, id: &str) -> impl Future<Output = HandlerResult> + Send;
}

impl<T: ReadHandler> ReadHandler for Arc<T> {
    fn read(&self, ctx: &RequestContext, id: &str) -> impl Future<Output = HandlerResult> + Send {
        T::read(self, ctx, id)
    }
}

impl<T: SearchHandler> SearchHandler for Arc<T> {
    fn search(
        &self,
        ctx: &RequestContext,
        params: SearchParams,
    ) -> impl Future<Output = HandlerResult> + Send {
        T::search(self, ctx, params)
    }
}

impl<T: CreateHandler> CreateHandler for Arc<T> {
    fn create(&self, ctx: &RequestContext, resource: Value) -> impl Future<Output = HandlerResult> + Send {
        T::create(self, ctx, resource)
    }
}

impl<T: UpdateHandler> UpdateHandler for Arc<T> {
    fn update(
        &self,
        ctx: &RequestContext,
        id: &str,
        resource: Value,
    ) -> impl Future<Output = HandlerResult> + Send {
        T::update(self, ctx, id, resource)
    }
}

impl<T: PatchHandler> PatchHandler for Arc<T> {
    fn patch(
        &self,
        ctx: &RequestContext,
        id: &str,
        patch: Value,
    ) -> impl Future<Output = HandlerResult> + Send {
        T::patch(self, ctx, id, patch)
    }
}

impl<T: DeleteHandler> DeleteHandler for Arc<T> {
    fn delete(&self, ctx: &RequestContext, id: &str) -> impl Future<Output = HandlerResult> + Send {
        T::delete(self, ctx, id)
    }
}
