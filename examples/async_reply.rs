//! An asynchronous reply: a handler that accepts a BaRS validation request at once and, once
//! the validation is done, sends the validation response back to the original sender through
//! the BaRS API, in the same conversation.
//!
//! The handler answers the proxy within the 5 s deadline with the message echoed; the reply
//! is a *new* request (new `X-Request-Id`, same `X-Correlation-Id`) to the sender's
//! `MessageHeader.source.endpoint`, with `MessageHeader.response.identifier` = the original
//! `Bundle.id`. [`ReplyTo`] carries all three and is serialisable, so a real system would
//! store it with its work item and reply after clinical review, hours later.
//!
//! Run it with a configuration that has a `[sender]` section (the embedded development one
//! sends to the public BaRS sandbox):
//!
//! ```text
//! cargo run -- dev-pki            # once: writes certs/dev
//! cargo run --example async_reply [config.toml]
//! ```

use std::sync::Arc;

use bars_receiver::inspect::{EVENT_SYSTEM, REASON_SYSTEM};
use bars_receiver::sender::{BarsClient, SendError};
use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, IssueType, MessageBundle, MessageEvent, MessagingHandler,
    RecError, ReplyTo, RequestContext, Server, Settings, Store, async_trait,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

/// One validation to answer.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Where the answer goes.
    pub reply_to: ReplyTo,
    /// The request as received.
    pub request: Value,
}

/// Accepts `servicerequest-request` messages and queues them for validation.
pub struct ValidationRequests {
    queue: mpsc::UnboundedSender<Validation>,
}

#[async_trait]
impl MessagingHandler for ValidationRequests {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        if message.event != MessageEvent::ServiceRequestRequest {
            return Err(RecError::unprocessable(
                IssueType::NotSupported,
                format!(
                    "This service takes validation requests only, not {}",
                    message.event.code()
                ),
            ));
        }
        // 400 when the message says nowhere to reply to: better refused now than unanswerable.
        let reply_to = ctx.reply_to(&message)?;
        let work = Validation {
            reply_to,
            request: message.raw.clone(),
        };
        if self.queue.send(work).is_err() {
            // The sender may retry: nothing was accepted.
            return Err(RecError::unavailable("Validation is not running; retry later").retryable());
        }
        tracing::info!(request_id = %ctx.request_id, bundle = %message.id, "validation request accepted");
        Ok(FhirResponse::ok(message.raw))
    }
}

/// The validation response to `validation`: a `servicerequest-response` message focused on an
/// Encounter that records the outcome, answering the original `Bundle.id`.
pub fn validation_response(validation: &Validation) -> Value {
    let reply_to = &validation.reply_to;
    let header_id = Uuid::new_v4();
    let encounter_id = Uuid::new_v4();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut entries = vec![
        json!({"fullUrl": format!("urn:uuid:{header_id}"), "resource": {
            "resourceType": "MessageHeader",
            "id": header_id.to_string(),
            "eventCoding": {"system": EVENT_SYSTEM, "code": "servicerequest-response"},
            "destination": [{"endpoint": reply_to.target.to_string()}],
            "source": {
                "name": "Example validation service",
                "software": "bars-receiver async_reply example",
                "endpoint": reply_to.replying_service.as_ref().map(ToString::to_string),
            },
            "reason": {"coding": [{"system": REASON_SYSTEM, "code": "new"}]},
            "response": {"identifier": reply_to.bundle_id, "code": "ok"},
            "focus": [{"reference": format!("urn:uuid:{encounter_id}")}],
            "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation",
        }}),
        json!({"fullUrl": format!("urn:uuid:{encounter_id}"), "resource": {
            "resourceType": "Encounter",
            "id": encounter_id.to_string(),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"},
        }}),
    ];
    // The ServiceRequest answered travels with the response.
    if let Some(service_request) = validation.request["entry"].as_array().and_then(|e| {
        e.iter()
            .find(|e| e["resource"]["resourceType"] == "ServiceRequest")
    }) {
        entries.push(service_request.clone());
    }
    json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "meta": {"versionId": "1.4.0", "profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
        "type": "message",
        "timestamp": now,
        "entry": entries,
    })
}

/// Validates queued requests and sends each response. The client already retries transport
/// failures with the same `X-Request-Id`; anything else is logged for a person to look at.
pub async fn reply_worker(client: BarsClient, mut queue: mpsc::UnboundedReceiver<Validation>) {
    while let Some(validation) = queue.recv().await {
        let response = validation_response(&validation);
        match client.reply(&validation.reply_to, response).await {
            Ok(sent) => tracing::info!(
                request_id = %sent.request_id,
                correlation_id = %sent.correlation_id,
                answered = %validation.reply_to.bundle_id,
                "validation response delivered"
            ),
            Err(SendError::Refused(outcome)) => tracing::error!(
                answered = %validation.reply_to.bundle_id,
                %outcome,
                "validation response refused"
            ),
            Err(e) => tracing::error!(
                answered = %validation.reply_to.bundle_id,
                error = %e,
                "validation response not delivered"
            ),
        }
    }
}

/// The handlers of this example; spawns the reply worker (call inside a Tokio runtime).
pub fn handlers(client: BarsClient) -> Handlers {
    let (queue, work) = mpsc::unbounded_channel();
    tokio::spawn(reply_worker(client, work));
    Handlers::new(Arc::new(ValidationRequests { queue }))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let settings = match std::env::args().nth(1) {
        Some(path) => Settings::load(path.as_ref())?,
        None => Settings::dev()?,
    };
    let sender = settings
        .sender
        .as_ref()
        .ok_or("this example needs a [sender] section in the configuration")?;
    let client = BarsClient::new(sender)?;
    let store = Store::open(&settings.inbox.path)?;
    let server = Server::new(&settings, handlers(client), store)?;
    let listener = tokio::net::TcpListener::bind(settings.listen.address).await?;
    println!(
        "async_reply example listening on https://{}",
        listener.local_addr()?
    );
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
