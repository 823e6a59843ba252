//! The set of handlers a server dispatches to, and the background work they need.

use std::sync::Arc;

use super::boxed::{DynMessageDefinitions, DynMessaging, DynSlots};
use super::{MessageDefinitionHandler, MessagingHandler, ResourceHandlers, SlotHandler};
use crate::fhir::{Registered, RegisteredResource, ResourceType};
use crate::relay::RelayPolicy;
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
    pub(crate) message_definitions: Option<Arc<dyn DynMessageDefinitions>>,
    pub(crate) appointments: ResourceHandlers,
    pub(crate) service_requests: ResourceHandlers,
    /// The relay's delivery worker, for relay handlers only.
    pub(crate) relay: Option<RelayJob>,
}

/// What the relay delivery worker needs: the store it drains and its own upstream client
/// (its own pool, so that a backlog of deliveries never starves synchronous requests).
#[derive(Clone, Debug)]
pub(crate) struct RelayJob {
    pub(crate) store: Store,
    pub(crate) upstream: Upstream,
    pub(crate) policy: RelayPolicy,
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
            message_definitions: None,
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

    /// Adds MessageDefinition search.
    pub fn with_message_definitions(mut self, handler: impl MessageDefinitionHandler) -> Self {
        self.message_definitions = Some(Arc::new(handler));
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
            message_definitions: self.message_definitions.is_some(),
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
