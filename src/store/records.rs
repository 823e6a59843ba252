//! The rows the store keeps, as every backend keeps them.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// An accepted `$process-message`, as committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewMessage {
    /// The receiver's reference for the message (a UUID it assigns).
    pub id: String,
    /// Arrival time, RFC 3339 UTC with microseconds.
    pub received_at: String,
    /// `X-Request-Id`.
    pub request_id: Uuid,
    /// `X-Correlation-Id`.
    pub correlation_id: Uuid,
    /// `Bundle.id`.
    pub bundle_id: String,
    /// The BaRS event code.
    pub event: String,
    /// The BaRS reason code.
    pub reason: String,
    /// `NHSD-Target-Identifier` as `system|value`.
    pub target: Option<String>,
    /// The decoded BaRS headers (ids, NHSD-* resources, Accept).
    pub headers: Value,
    /// The verified peer identity and source address.
    pub peer: Value,
    /// The bundle exactly as received (shared with the message it came from, not copied).
    pub body: Arc<str>,
}

/// A stored message, with its position in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRecord {
    /// Arrival order.
    pub seq: i64,
    /// Everything committed.
    #[serde(flatten)]
    pub message: NewMessage,
}

/// One line of `inbox list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSummary {
    /// Arrival order.
    pub seq: i64,
    /// Receiver reference.
    pub id: String,
    /// Arrival time.
    pub received_at: String,
    /// `X-Request-Id`.
    pub request_id: String,
    /// `X-Correlation-Id`.
    pub correlation_id: String,
    /// Event code.
    pub event: String,
    /// Reason code.
    pub reason: String,
    /// Target service.
    pub target: Option<String>,
    /// Caller certificate subject CN.
    pub peer_cn: Option<String>,
    /// Delivery to the upstream, for relayed messages.
    pub delivery: Option<super::DeliveryStatus>,
}

/// Whether a de-duplicated request succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutcomeState {
    /// Processed: a retry is a duplicate.
    Done,
    /// Refused or failed: a retry gets the same answer.
    Failed,
}

impl OutcomeState {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// The state stored under `text`: anything but `done` replays as a failure.
    pub(crate) fn parse(text: &str) -> Self {
        if text == "done" { Self::Done } else { Self::Failed }
    }
}

/// How a de-duplicated request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestOutcome {
    /// `X-Request-Id`.
    pub(crate) request_id: Uuid,
    /// Done or failed.
    pub(crate) state: OutcomeState,
    /// The HTTP status answered.
    pub(crate) status: u16,
    /// For failures, the OperationOutcome body to replay.
    pub(crate) response: Option<String>,
    /// For successes, the receiver's reference for what was created, if any.
    pub(crate) reference: Option<String>,
    /// The interaction name.
    pub(crate) interaction: String,
    /// SHA-256 of the request body (hex), to tell a retry from a different message that
    /// reuses the id.
    pub(crate) body_sha256: String,
    /// When it was recorded ([`timestamp`] format).
    pub(crate) recorded_at: String,
}

/// RFC 3339 UTC with a fixed six-digit fraction, so that stored times sort as text.
pub(crate) fn timestamp(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}
