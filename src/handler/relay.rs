//! The built-in `relay` handler: a message is committed to the inbox together with what the
//! delivery worker will send upstream (the BaRS headers and the verified caller), and the
//! 200 leaves once that commit is durable. As with the inbox, the message stored, answered
//! and delivered carries the receiver-assigned ids, and the same commit records the request's
//! de-duplication outcome. The worker then delivers it at least once.

use super::inbox::{answer, new_message, with_receiver_ids};
use super::outbound::outbound_headers;
use super::{ForwardHandler, HandlerResult, Handlers, MessagingHandler, RelayJob, RequestContext};
use crate::config::UpstreamSettings;
use crate::fhir::MessageBundle;
use crate::store::Store;
use crate::upstream::{Upstream, UpstreamError};

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

    /// Handlers that relay messages through the store, delivered to `upstream` by the relay
    /// worker (which a server given these handlers runs), and forward the other interactions
    /// `upstream.interactions` names (slots, Appointment, ServiceRequest) synchronously:
    /// those need the upstream's answer now. The worker gets its own client, so that a
    /// backlog of deliveries never starves synchronous requests.
    pub fn handlers(self, upstream: &UpstreamSettings) -> Result<Handlers, UpstreamError> {
        let job = RelayJob {
            store: self.store.clone(),
            upstream: Upstream::new(upstream)?,
            settings: upstream.clone(),
        };
        let mut handlers = ForwardHandler::new(Upstream::new(upstream)?).handlers_for(&upstream.interactions);
        handlers.messaging = std::sync::Arc::new(self);
        handlers.relay = Some(job);
        Ok(handlers)
    }
}

impl MessagingHandler for RelayHandler {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        let answered = with_receiver_ids(ctx, &message);
        let record = new_message(ctx, &answered);
        let headers = outbound_headers(ctx);
        let accepted = self
            .store
            .accept(record, Some(headers), ctx.settlement.as_ref())
            .await;
        answer(accepted, ctx, answered)
    }
}
