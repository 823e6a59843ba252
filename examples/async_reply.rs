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

use bars_receiver::sender::{BarsClient, SendError};
use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, IssueType, MessageBundle, MessageEvent, MessagingHandler,
    RecError, ReplyTo, RequestContext, Server, Settings, Store,
};
use serde_json::Value;
use tokio::sync::mpsc;

/// One validation to answer.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Where the answer goes.
    pub reply_to: ReplyTo,
    /// The request as received.
    pub request: Value,
}

/// Accepts `servicerequest-request` messages and queues them for validation.
#[derive(Debug)]
pub struct ValidationRequests {
    queue: mpsc::UnboundedSender<Validation>,
}
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
            request: message.raw().clone(),
        };
        if self.queue.send(work).is_err() {
            // The sender may retry: nothing was accepted.
            return Err(RecError::unavailable("Validation is not running; retry later").retryable());
        }
        tracing::info!(request_id = %ctx.request_id, bundle = %message.id, "validation request accepted");
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

/// The validation response to `validation`: a `servicerequest-response` message focused on an
/// Encounter that records the outcome, answering the original `Bundle.id`.
pub fn validation_response(validation: &Validation) -> Value {
    validation.reply_to.validation_response(
        &validation.request,
        "Example validation service",
        "bars-receiver async_reply example",
    )
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
