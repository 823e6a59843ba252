//! RESTful `Appointment` and `ServiceRequest` interactions: one trait per interaction, and
//! [`ResourceHandlers`], the set registered for one resource type. Only what is registered
//! is routed and advertised; every other interaction answers 501 without a handler call.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::boxed::{DynCreate, DynDelete, DynPatch, DynRead, DynSearch, DynUpdate};
use super::{HandlerResult, RequestContext, RestInteraction, SearchParams};
use crate::fhir::SearchParam;

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

/// The interactions registered for one resource type, each with its own handler (one value
/// may implement several traits: register an `Arc` of it for each). Pass it to
/// [`super::Handlers::with_appointments`] or [`super::Handlers::with_service_requests`].
///
/// ```
/// # use std::sync::Arc;
/// # use bars_receiver::{HandlerResult, RecError, RequestContext, ResourceHandlers, SearchParam, SearchParams};
/// # use bars_receiver::handler::{ReadHandler, SearchHandler};
/// struct Bookings;
/// impl ReadHandler for Bookings {
///     async fn read(&self, _ctx: &RequestContext, id: &str) -> HandlerResult {
///         Err(RecError::not_found(format!("No appointment {id}")))
///     }
/// }
/// impl SearchHandler for Bookings {
///     async fn search(&self, _ctx: &RequestContext, _params: SearchParams) -> HandlerResult {
///         Err(RecError::not_found("No appointments"))
///     }
/// }
/// let bookings = Arc::new(Bookings);
/// let appointments = ResourceHandlers::new()
///     .read(bookings.clone())
///     .search(bookings, [SearchParam::token("patient:identifier", "The patient's NHS number, system|value")]);
/// assert_eq!(appointments.interactions().len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct ResourceHandlers {
    pub(crate) read: Option<Arc<dyn DynRead>>,
    pub(crate) search: Option<Arc<dyn DynSearch>>,
    pub(crate) search_params: Vec<SearchParam>,
    pub(crate) create: Option<Arc<dyn DynCreate>>,
    pub(crate) update: Option<Arc<dyn DynUpdate>>,
    pub(crate) patch: Option<Arc<dyn DynPatch>>,
    pub(crate) delete: Option<Arc<dyn DynDelete>>,
}

impl std::fmt::Debug for ResourceHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceHandlers")
            .field("interactions", &self.interactions())
            .field("search_params", &self.search_params)
            .finish()
    }
}

impl ResourceHandlers {
    /// No interaction registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `read`.
    pub fn read(mut self, handler: impl ReadHandler) -> Self {
        self.read = Some(Arc::new(handler));
        self
    }

    /// Registers `search-type`, advertising `params` in the CapabilityStatement.
    pub fn search(
        mut self,
        handler: impl SearchHandler,
        params: impl IntoIterator<Item = SearchParam>,
    ) -> Self {
        self.search = Some(Arc::new(handler));
        self.search_params = params.into_iter().collect();
        self
    }

    /// Registers `create`.
    pub fn create(mut self, handler: impl CreateHandler) -> Self {
        self.create = Some(Arc::new(handler));
        self
    }

    /// Registers `update`.
    pub fn update(mut self, handler: impl UpdateHandler) -> Self {
        self.update = Some(Arc::new(handler));
        self
    }

    /// Registers `patch`.
    pub fn patch(mut self, handler: impl PatchHandler) -> Self {
        self.patch = Some(Arc::new(handler));
        self
    }

    /// Registers `delete`.
    pub fn delete(mut self, handler: impl DeleteHandler) -> Self {
        self.delete = Some(Arc::new(handler));
        self
    }

    /// The registered interactions, in CapabilityStatement order.
    pub fn interactions(&self) -> Vec<RestInteraction> {
        RestInteraction::ALL
            .into_iter()
            .filter(|i| self.supports(*i))
            .collect()
    }

    /// Whether `interaction` is registered.
    pub fn supports(&self, interaction: RestInteraction) -> bool {
        match interaction {
            RestInteraction::Read => self.read.is_some(),
            RestInteraction::Search => self.search.is_some(),
            RestInteraction::Create => self.create.is_some(),
            RestInteraction::Update => self.update.is_some(),
            RestInteraction::Patch => self.patch.is_some(),
            RestInteraction::Delete => self.delete.is_some(),
        }
    }
}
