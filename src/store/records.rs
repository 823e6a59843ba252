//! The rows the store keeps, and the SQL that reads and writes them.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};
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

pub(super) const MESSAGE_COLUMNS: &str =
    "seq, id, received_at, request_id, correlation_id, bundle_id, event, reason, target, headers, peer, body";

pub(super) fn insert_message(conn: &Connection, m: &NewMessage) -> rusqlite::Result<super::Inserted> {
    // Cached statements: the writer runs these for every message, and preparing them anew
    // (parsing the SQL) cost more than the insert itself.
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM messages WHERE request_id = ?1")?
        .query_row(params![m.request_id.to_string()], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(super::Inserted::AlreadyPresent(id));
    }
    conn.prepare_cached(
        "INSERT INTO messages (id, received_at, request_id, correlation_id, bundle_id, event, reason, target, headers, peer, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
            m.id,
            m.received_at,
            m.request_id.to_string(),
            m.correlation_id.to_string(),
            m.bundle_id,
            m.event,
            m.reason,
            m.target,
            m.headers.to_string(),
            m.peer.to_string(),
            &*m.body,
    ])?;
    Ok(super::Inserted::New(m.id.clone()))
}

pub(super) fn record_outcome(conn: &Connection, o: &RequestOutcome) -> rusqlite::Result<()> {
    let state = match o.state {
        OutcomeState::Done => "done",
        OutcomeState::Failed => "failed",
    };
    conn.prepare_cached(
        "INSERT INTO requests (request_id, state, status, response, reference, interaction, recorded_at, body_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(request_id) DO UPDATE SET state = excluded.state, status = excluded.status,
           response = excluded.response, reference = excluded.reference,
           interaction = excluded.interaction, recorded_at = excluded.recorded_at,
           body_sha256 = excluded.body_sha256",
    )?
    .execute(params![
        o.request_id.to_string(),
        state,
        o.status,
        o.response,
        o.reference,
        o.interaction,
        o.recorded_at,
        o.body_sha256
    ])?;
    Ok(())
}

pub(super) fn find_outcome(conn: &Connection, request_id: Uuid) -> rusqlite::Result<Option<RequestOutcome>> {
    let row = conn
        .prepare_cached(
            "SELECT state, status, response, reference, interaction, recorded_at, body_sha256 FROM requests WHERE request_id = ?1",
        )?
        .query_row(params![request_id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(
        |(state, status, response, reference, interaction, recorded_at, body_sha256)| RequestOutcome {
            request_id,
            state: if state == "done" {
                OutcomeState::Done
            } else {
                OutcomeState::Failed
            },
            status,
            response,
            reference,
            interaction,
            body_sha256: body_sha256.unwrap_or_default(),
            recorded_at,
        },
    ))
}

/// Forgets up to `limit` request outcomes recorded before `cutoff` ([`timestamp`] format).
pub(super) fn prune_outcomes(conn: &Connection, cutoff: &str, limit: u32) -> rusqlite::Result<u64> {
    conn.execute(
        "DELETE FROM requests WHERE rowid IN
           (SELECT rowid FROM requests WHERE recorded_at < ?1 ORDER BY recorded_at LIMIT ?2)",
        params![cutoff, limit],
    )
    .map(|n| n as u64)
}

pub(super) fn list(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<MessageSummary>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, id, received_at, request_id, correlation_id, event, reason, target,
                json_extract(peer, '$.common_name'), {}
             FROM messages m ORDER BY seq DESC LIMIT ?1",
        super::delivery::STATUS_COLUMNS
    ))?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(MessageSummary {
            seq: r.get(0)?,
            id: r.get(1)?,
            received_at: r.get(2)?,
            request_id: r.get(3)?,
            correlation_id: r.get(4)?,
            event: r.get(5)?,
            reason: r.get(6)?,
            target: r.get(7)?,
            peer_cn: r.get(8)?,
            delivery: super::delivery::status_from_row(r, 9)?,
        })
    })?;
    rows.collect()
}

pub(super) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<MessageRecord>> {
    conn.query_row(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 OR request_id = ?1"),
        params![id],
        message_from_row,
    )
    .optional()
}

pub(super) fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let json = |i: usize| -> rusqlite::Result<Value> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let uuid = |i: usize| -> rusqlite::Result<Uuid> {
        let text: String = r.get(i)?;
        Uuid::parse_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(MessageRecord {
        seq: r.get(0)?,
        message: NewMessage {
            id: r.get(1)?,
            received_at: r.get(2)?,
            request_id: uuid(3)?,
            correlation_id: uuid(4)?,
            bundle_id: r.get(5)?,
            event: r.get(6)?,
            reason: r.get(7)?,
            target: r.get(8)?,
            headers: json(9)?,
            peer: json(10)?,
            body: r.get::<_, String>(11)?.into(),
        },
    })
}
