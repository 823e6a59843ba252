//! The set of handlers a server dispatches to.

use std::sync::Arc;

use super::{MessageDefinitionHandler, MessagingHandler, ResourceHandler, RestInteraction, SlotHandler};
use crate::fhir::{Registered, RegisteredResource, ResourceType};

/// The registered handlers. Messaging is mandatory for every BaRS receiver, so it is the one
/// argument of [`Handlers::new`]; everything else is optional and answers 501 when absent.
#[derive(Clone)]
pub struct Handlers {
    pub(crate) messaging: Arc<dyn MessagingHandler>,
    pub(crate) slots: Option<Arc<dyn SlotHandler>>,
    pub(crate) message_definitions: Option<Arc<dyn MessageDefinitionHandler>>,
    pub(crate) appointments: Option<Arc<dyn ResourceHandler>>,
    pub(crate) service_requests: Option<Arc<dyn ResourceHandler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("registered", &self.registered())
            .finish()
    }
}

impl Handlers {
    /// Handlers with the given messaging handler and nothing else.
    pub fn new(messaging: Arc<dyn MessagingHandler>) -> Self {
        Self {
            messaging,
            slots: None,
            message_definitions: None,
            appointments: None,
            service_requests: None,
        }
    }

    /// Adds slot search.
    pub fn with_slots(mut self, handler: Arc<dyn SlotHandler>) -> Self {
        self.slots = Some(handler);
        self
    }

    /// Adds MessageDefinition search.
    pub fn with_message_definitions(mut self, handler: Arc<dyn MessageDefinitionHandler>) -> Self {
        self.message_definitions = Some(handler);
        self
    }

    /// Adds RESTful Appointment interactions.
    pub fn with_appointments(mut self, handler: Arc<dyn ResourceHandler>) -> Self {
        self.appointments = Some(handler);
        self
    }

    /// Adds RESTful ServiceRequest interactions.
    pub fn with_service_requests(mut self, handler: Arc<dyn ResourceHandler>) -> Self {
        self.service_requests = Some(handler);
        self
    }

    pub(crate) fn resource(&self, ty: ResourceType) -> Option<&Arc<dyn ResourceHandler>> {
        match ty {
            ResourceType::Appointment => self.appointments.as_ref(),
            ResourceType::ServiceRequest => self.service_requests.as_ref(),
        }
    }

    /// Whether `interaction` on `ty` is registered (declared by its handler).
    pub(crate) fn supports(&self, ty: ResourceType, interaction: RestInteraction) -> bool {
        self.resource(ty)
            .is_some_and(|h| h.interactions().contains(&interaction))
    }

    /// What is registered, for the CapabilityStatement.
    pub fn registered(&self) -> Registered {
        let resource = |ty: ResourceType| {
            self.resource(ty).map(|h| RegisteredResource {
                resource_type: ty,
                interactions: h.interactions().iter().map(|i| i.code()).collect(),
                search_params: h.search_params(),
            })
        };
        Registered {
            slots: self.slots.is_some(),
            message_definitions: self.message_definitions.is_some(),
            resources: [ResourceType::Appointment, ResourceType::ServiceRequest]
                .into_iter()
                .filter_map(resource)
                .filter(|r| !r.interactions.is_empty())
                .collect(),
        }
    }
}
