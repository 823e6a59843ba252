//! The relay delivery worker: delivers the messages the relay handler committed, at least
//! once, to the upstream's `$process-message`, with the BaRS headers and the original
//! `X-Request-Id` as the idempotency key. Exponential backoff with jitter, a dead letter
//! after the last attempt, arrival order within a conversation, and resumption of
//! interrupted attempts after a stop or crash. All state is in the store.

mod attempt;
mod backoff;
mod worker;

pub(crate) use worker::{RelayPolicy, RelayWorker};
