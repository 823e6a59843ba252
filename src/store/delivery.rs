//! The delivery state of relayed messages (pending, delivered, dead), as every backend keeps
//! it. Within one `X-Correlation-Id` only the oldest undelivered message is ever due, so a
//! conversation is delivered in arrival order and a dead letter holds the rest of its
//! conversation until it is retried.

use serde::Serialize;
use uuid::Uuid;

/// Where a relayed message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    /// The upstream accepted it.
    Delivered,
    /// Attempts exhausted, or refused for good: waits for `inbox retry`.
    Dead,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// The state stored under this name.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// The delivery of one relayed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryStatus {
    /// Pending, delivered or dead.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the upstream accepted it.
    pub delivered_at: Option<String>,
    /// Pending behind a dead letter of the same conversation.
    pub held: bool,
}

/// A message the worker is to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) request_id: Uuid,
    pub(crate) correlation_id: Uuid,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    /// The upstream has it.
    Delivered { at: String },
    /// Try again at `next_at`.
    Retry { next_at: String, error: String },
    /// No more attempts.
    Dead { error: String },
}

/// What the relay has yet to deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryBacklog {
    /// Messages waiting for (another) attempt, including those held behind a dead letter.
    pub pending: u64,
    /// Dead letters, each holding its conversation until `inbox retry`.
    pub dead: u64,
    /// Arrival time of the oldest pending message.
    pub oldest_pending: Option<String>,
}
