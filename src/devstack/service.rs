//! Receiver B, the service: its messaging handler commits each message to its inbox (the
//! 200 leaves only once it is durable), and each validation request it accepted is answered
//! later, as a new message sent back through the BaRS API with the sender library: new
//! `X-Request-Id`, same `X-Correlation-Id`, roles reversed (B is the sender, A's
//! `MessageHeader.source.endpoint` the target), `MessageHeader.response.identifier` = the
//! request's `Bundle.id`.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fhir::{MessageBundle, MessageEvent};
use crate::handler::{HandlerResult, InboxHandler, MessagingHandler, ReplyTo, RequestContext};
use crate::sender::{BarsClient, SendError};

/// One accepted request still to be answered.
#[derive(Debug)]
pub(crate) struct Pending {
    reply_to: ReplyTo,
    request: Value,
    due: Instant,
}

/// B's messaging handler: the inbox, then a queued reply for every request.
pub(crate) struct ValidationService {
    inbox: InboxHandler,
    queue: mpsc::UnboundedSender<Pending>,
    delay: Duration,
}

impl ValidationService {
    pub(crate) fn new(inbox: InboxHandler, queue: mpsc::UnboundedSender<Pending>, delay: Duration) -> Self {
        Self { inbox, queue, delay }
    }
}

impl MessagingHandler for ValidationService {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        // Only requests are answered; a request that says nowhere to reply to is refused now
        // (400) rather than accepted and never answered.
        let is_request = matches!(
            message.event,
            MessageEvent::ServiceRequestRequest | MessageEvent::BookingRequest
        );
        let reply_to = if is_request {
            Some(ctx.reply_to(&message)?)
        } else {
            None
        };
        let request = message.raw().clone();
        let accepted = self.inbox.process_message(ctx, message).await?;
        if let Some(reply_to) = reply_to {
            let pending = Pending {
                reply_to,
                request,
                due: Instant::now() + self.delay,
            };
            if self.queue.send(pending).is_err() {
                tracing::warn!(request_id = %ctx.request_id, "the reply worker has stopped; this request will not be answered");
            }
        }
        Ok(accepted)
    }
}

/// Answers queued requests through the BaRS API, each once its delay is over.
pub(crate) async fn reply_worker(client: BarsClient, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(pending) = queue.recv().await {
        tokio::time::sleep_until(pending.due).await;
        let response = validation_response(&pending.reply_to, &pending.request);
        match client.reply(&pending.reply_to, response).await {
            Ok(sent) => tracing::info!(
                request_id = %sent.request_id,
                correlation_id = %sent.correlation_id,
                answered = %pending.reply_to.bundle_id,
                status = sent.status,
                "validation response delivered to the referrer through the proxy"
            ),
            Err(SendError::Refused(outcome)) => tracing::error!(
                answered = %pending.reply_to.bundle_id,
                %outcome,
                "validation response refused"
            ),
            Err(e) => tracing::error!(
                answered = %pending.reply_to.bundle_id,
                error = %e,
                "validation response not delivered"
            ),
        }
    }
}

/// The dev-stack service's answer to a validation request.
pub(crate) fn validation_response(reply_to: &ReplyTo, request: &Value) -> Value {
    reply_to.validation_response(request, "dev-stack service (B)", "bars-receiver dev-stack")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::TargetIdentifier;
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn the_response_answers_the_request_from_the_addressed_service() {
        let reply_to: ReplyTo = serde_json::from_value(json!({
            "target": {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "1"},
            "correlation_id": Uuid::new_v4(),
            "bundle_id": "original",
            "request_id": Uuid::new_v4(),
            "event": "servicerequest-request",
            "replying_service": {"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2"},
        }))
        .unwrap();
        let request = json!({"entry": [{"fullUrl": "urn:uuid:sr", "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order"}}]});
        let response = MessageBundle::parse(validation_response(&reply_to, &request)).unwrap();
        assert_eq!(response.event, MessageEvent::ServiceRequestResponse);
        assert_eq!(response.response.as_ref().unwrap().identifier, "original");
        assert_eq!(
            response.destination_endpoints,
            ["https://fhir.nhs.uk/Id/dos-service-id|1"]
        );
        let source = TargetIdentifier::parse_token(response.source_endpoint.as_deref().unwrap()).unwrap();
        assert_eq!(source.value, "2");
        assert_eq!(response.raw()["entry"].as_array().unwrap().len(), 3);
    }
}
