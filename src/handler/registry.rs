//! The set of handlers a server dispatches to ([`Handlers`], with a [`ResourceHandlers`] per
//! RESTful resource type), and the background work they need.

use std::sync::Arc;

use super::boxed::{DynCreate, DynDelete, DynMessaging, DynPatch, DynRead, DynSearch, DynSlots, DynUpdate};
use super::rest::{CreateHandler, DeleteHandler, PatchHandler, ReadHandler, SearchHandler, UpdateHandler};
use super::{MessagingHandler, RestInteraction, SlotHandler};
use crate::config::UpstreamSettings;
use crate::fhir::{Registered, RegisteredResource, ResourceType, SearchParam};
use crate::store::Store;
use crate::upstream::Upstream;

/// The registered handlers. Messaging is mandatory for every BaRS receiver, so it is the one
/// argument of [`Handlers::new`]; everything else is optional and answers 501 when absent.
///
/// A server runs exactly what it is given: the relay delivery worker runs only for handlers
/// built by [`super::RelayHandler::handlers`].
#[derive(Clone)]
pub struct Handlers {
    pub(crate) messaging: Arc<dyn DynMessaging>,
    pub(crate) slots: Option<Arc<dyn DynSlots>>,
    pub(crate) appointments: ResourceHandlers,
    pub(crate) service_requests: ResourceHandlers,
    /// The relay's delivery worker, for relay handlers only.
    pub(crate) relay: Option<RelayJob>,
}

/// What the relay delivery worker needs: the store it drains, its own upstream client (its
/// own pool, so that a backlog of deliveries never starves synchronous requests) and the
/// upstream settings its retry policy comes from.
#[derive(Clone, Debug)]
pub(crate) struct RelayJob {
    pub(crate) store: Store,
    pub(crate) upstream: Upstream,
    pub(crate) settings: UpstreamSettings,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("registered", &self.registered())
            .field("relay", &self.relay.is_some())
            .finish()
    }
}

impl Handlers {
    /// Handlers with the given messaging handler and nothing else.
    pub fn new(messaging: impl MessagingHandler) -> Self {
        Self {
            messaging: Arc::new(messaging),
            slots: None,
            appointments: ResourceHandlers::new(),
            service_requests: ResourceHandlers::new(),
            relay: None,
        }
    }

    /// Adds slot search.
    pub fn with_slots(mut self, handler: impl SlotHandler) -> Self {
        self.slots = Some(Arc::new(handler));
        self
    }

    /// Registers RESTful Appointment interactions.
    pub fn with_appointments(mut self, handlers: ResourceHandlers) -> Self {
        self.appointments = handlers;
        self
    }

    /// Registers RESTful ServiceRequest interactions.
    pub fn with_service_requests(mut self, handlers: ResourceHandlers) -> Self {
        self.service_requests = handlers;
        self
    }

    pub(crate) fn resource(&self, ty: ResourceType) -> &ResourceHandlers {
        match ty {
            ResourceType::Appointment => &self.appointments,
            ResourceType::ServiceRequest => &self.service_requests,
        }
    }

    /// What is registered, for the CapabilityStatement.
    pub(crate) fn registered(&self) -> Registered {
        Registered {
            slots: self.slots.is_some(),
            resources: [ResourceType::Appointment, ResourceType::ServiceRequest]
                .into_iter()
                .map(|ty| (ty, self.resource(ty)))
                .filter(|(_, r)| !r.interactions().is_empty())
                .map(|(ty, r)| RegisteredResource {
                    resource_type: ty,
                    interactions: r.interactions().iter().map(|i| i.code()).collect(),
                    search_params: r.search_params.clone(),
                })
                .collect(),
        }
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
