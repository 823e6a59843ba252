//! The built-in `relay` handler: a message is committed to the inbox together with what the
//! delivery worker will send upstream (the BaRS headers and the verified caller), and the
//! 200 leaves once that commit is durable. The worker then delivers it at least once.
//! Built on the public handler traits only.

use std::sync::Arc;

use async_trait::async_trait;

use super::inbox::{answer, new_message};
use super::outbound::outbound_headers;
use super::{ForwardHandler, HandlerResult, Handlers, MessagingHandler, RequestContext};
use crate::fhir::MessageBundle;
use crate::store::Store;
use crate::upstream::Upstream;

/// Commits messages for delivery by the relay worker.
#[derive(Debug, Clone)]
pub struct RelayHandler {
    store: Store,
}

impl RelayHandler {
    /// A relay handler writing to `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Handlers that relay messages through `store` and forward every other route (slots,
    /// MessageDefinition, Appointment, ServiceRequest) synchronously to `upstream`: those
    /// need the upstream's answer now.
    pub fn handlers(self, upstream: Upstream) -> Handlers {
        let forward = ForwardHandler::new(upstream).handlers();
        let mut handlers = forward;
        handlers.messaging = Arc::new(self);
        handlers
    }
}

#[async_trait]
impl MessagingHandler for RelayHandler {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        let record = new_message(ctx, &message);
        let headers = outbound_headers(ctx);
        answer(
            self.store.insert_for_delivery(record, headers).await,
            ctx,
            message,
        )
    }
}
