//! The default handler: every accepted message is committed to the inbox (fsync'd on SQLite,
//! committed on PostgreSQL) before the 200 is sent. The 200 answers the message bundle with
//! receiver-assigned resource ids ([`MessageBundle::with_receiver_ids`]), and that answered
//! bundle is what the inbox stores: `inbox show`, exports and the provider's system see the
//! ids the sender was given. The request's de-duplication outcome is committed in the same
//! transaction, so the 200 waits for one commit.

use uuid::Uuid;

use super::{HandlerResult, MessagingHandler, RequestContext};
use crate::fhir::{IssueType, MessageBundle, RecCode, RecError};
use crate::store::{Inserted, NewMessage, Store, timestamp};

use super::FhirResponse;

/// Commits messages to the [`Store`].
#[derive(Debug, Clone)]
pub struct InboxHandler {
    store: Store,
}

impl InboxHandler {
    /// An inbox handler writing to `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl MessagingHandler for InboxHandler {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        let answered = with_receiver_ids(ctx, &message);
        let record = new_message(ctx, &answered);
        let accepted = self.store.accept(record, None, ctx.settlement.as_ref()).await;
        answer(accepted, ctx, answered)
    }
}

/// `message` with the ids this receiver assigns, logged with the ids they replace.
pub(super) fn with_receiver_ids(ctx: &RequestContext, message: &MessageBundle) -> MessageBundle {
    let (answered, assigned) = message.with_receiver_ids();
    tracing::debug!(
        request_id = %ctx.request_id,
        assigned = assigned.len(),
        "receiver ids assigned"
    );
    answered
}

/// The inbox row for an accepted message. Its id (the reference the sender is given) is a
/// UUID of version 7, which starts with the time: consecutive messages' ids sort together,
/// so the inbox's index of ids grows at its end (one page written per commit) instead of
/// at a random page per message, as a random (version 4) UUID would.
pub(super) fn new_message(ctx: &RequestContext, message: &MessageBundle) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7().to_string(),
        received_at: timestamp(ctx.received_at),
        request_id: ctx.request_id,
        correlation_id: ctx.correlation_id,
        bundle_id: message.id.clone(),
        event: message.event.code().to_owned(),
        reason: message.reason.code().to_owned(),
        target: ctx.target.as_ref().map(ToString::to_string),
        headers: ctx.headers_json(),
        peer: serde_json::to_value(&ctx.peer).unwrap_or_default(),
        body: message.source.clone(),
    }
}

/// The answer once the commit returned: the 200 only for a message that is durable.
pub(super) fn answer(
    inserted: Result<Inserted, crate::store::StoreError>,
    ctx: &RequestContext,
    message: MessageBundle,
) -> HandlerResult {
    match inserted {
        Ok(Inserted::New(reference)) => {
            Ok(FhirResponse::ok_json_text(message.source).with_reference(reference))
        }
        // Reached only when a crash fell between the inbox commit and the de-duplication
        // record: the message is safe, so the retry is the duplicate it is.
        Ok(Inserted::AlreadyPresent(reference)) => Err(RecError::new(
            RecCode::Conflict,
            IssueType::Duplicate,
            format!("This message has already been received and processed. Reference ID: {reference}"),
        )),
        Err(e) if e.is_unavailable() => {
            tracing::error!(error = %e, request_id = %ctx.request_id, "inbox commit failed: the database is unavailable");
            Err(RecError::new(
                RecCode::ServiceUnavailable,
                IssueType::Transient,
                "The receiver's database is unavailable; the message was not accepted. Retry later.",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, request_id = %ctx.request_id, "inbox commit failed");
            Err(RecError::new(
                RecCode::ServerError,
                IssueType::NoStore,
                "The message could not be stored; it was not accepted. Retry later.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn inbox_ids_are_time_ordered_uuids_in_the_order_messages_arrive() {
        let ctx = RequestContext::for_tests();
        let message = MessageBundle::from_json(include_str!(
            "../../tests/fixtures/nhs/examples1.4.0/process_message/POST-body.json"
        ))
        .unwrap();
        // Many within one millisecond: still in order.
        let ids: Vec<String> = (0..1000).map(|_| new_message(&ctx, &message).id).collect();
        for id in &ids {
            assert_eq!(Uuid::parse_str(id).unwrap().get_version_num(), 7, "{id}");
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
    }
}
