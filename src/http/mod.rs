//! The HTTP side of the receiver: the axum router with its id-echo and access-log layer, the
//! request pipeline, input checks and de-duplication. Every answer after the handshake is a
//! FHIR response or a `REC_` OperationOutcome, with the BaRS ids echoed.

mod access;
mod budget;
mod dedup;
mod drain;
mod framing;
mod input;
mod pipeline;
mod ratelimit;
mod response;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::admin::Metrics;
use crate::fhir::{Definitions, MessageDefinitions, RequesterHeaders, TargetIdentifier};
use crate::handler::Handlers;
use crate::store::Store;
use crate::tasks::TaskTracker;

/// What the pipeline needs from configuration.
#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub(crate) max_body: usize,
    pub(crate) deadline: Duration,
    pub(crate) processing_limit: Duration,
    pub(crate) base_path: String,
    pub(crate) services: Vec<TargetIdentifier>,
    /// This receiver's ODS code: `MessageHeader.destination.receiver` must be it.
    pub(crate) ods_code: Option<String>,
    /// The MessageDefinitions messages are checked against.
    pub(crate) definitions: Definitions,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) max_inflight_body: usize,
    pub(crate) requester_headers: RequesterHeaders,
    pub(crate) max_slot_range: Duration,
    /// The message definitions supported: `GET /MessageDefinition` answers from them.
    pub(crate) message_definitions: MessageDefinitions,
    /// `receiver.base_url`, for the searchset's self link.
    pub(crate) base_url: Option<String>,
}

/// Shared by every request.
pub(crate) struct App {
    pub(crate) handlers: Handlers,
    pub(crate) dedup: Arc<dedup::Dedup>,
    pub(crate) config: HttpConfig,
    /// The CapabilityStatement's JSON text: generated once from the registered handlers and
    /// serialised once, here, rather than for every `GET /metadata`.
    pub(crate) capability: Bytes,
    pub(crate) rate_limit: ratelimit::RateLimit,
    pub(crate) body_budget: budget::BodyBudget,
    pub(crate) metrics: Arc<Metrics>,
    /// Handler tasks, which the shutdown drain waits for.
    pub(crate) tasks: TaskTracker,
}

/// Builds the router.
pub(crate) fn router(
    handlers: Handlers,
    store: Store,
    config: HttpConfig,
    capability: Value,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
) -> axum::Router {
    let app = Arc::new(App {
        handlers,
        dedup: dedup::Dedup::new(store, metrics.clone()),
        rate_limit: ratelimit::RateLimit::new(config.rate_limit),
        body_budget: budget::BodyBudget::new(config.max_inflight_body),
        config,
        capability: Bytes::from(capability.to_string()),
        metrics: metrics.clone(),
        tasks,
    });
    axum::Router::new()
        .fallback(pipeline::dispatch)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            access::echo_ids_and_log,
        ))
}
