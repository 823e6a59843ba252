//! The SQL of the inbox rows and the de-duplication outcomes.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use uuid::Uuid;

use crate::store::backend::CopiedDelivery;
use crate::store::{Inserted, MessageRecord, MessageSummary, NewMessage, OutcomeState, RequestOutcome};

pub(super) const MESSAGE_COLUMNS: &str =
    "seq, id, received_at, request_id, correlation_id, bundle_id, event, reason, target, headers, peer, body";

pub(super) fn insert_message(conn: &Connection, m: &NewMessage) -> rusqlite::Result<Inserted> {
    // Cached statements: the writer runs these for every message, and preparing them anew
    // (parsing the SQL) cost more than the insert itself.
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM messages WHERE request_id = ?1")?
        .query_row(params![m.request_id.to_string()], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(Inserted::AlreadyPresent(id));
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
    Ok(Inserted::New(m.id.clone()))
}

pub(super) fn record_outcome(conn: &Connection, o: &RequestOutcome) -> rusqlite::Result<()> {
    let state = o.state.as_str();
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
    // Cached: every state-changing request looks here first.
    let row = conn
        .prepare_cached(
            "SELECT state, status, response, reference, interaction, recorded_at, body_sha256 FROM requests WHERE request_id = ?1",
        )?
        .query_row(
            params![request_id.to_string()],
            |r| {
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
            state: OutcomeState::parse(&state),
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

/// The columns a copy of a message's delivery reads, after the message's own.
const DELIVERY_COLUMNS: &str =
    "delivery, attempts, next_attempt_at, last_error, delivered_at, upstream_headers";

/// Up to `limit` messages after `after`, oldest first, with their delivery columns.
pub(super) fn page(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<(MessageRecord, Option<CopiedDelivery>)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS}, {DELIVERY_COLUMNS} FROM messages WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit], |r| {
        let record = message_from_row(r)?;
        let delivery = match r.get::<_, Option<String>>(12)? {
            None => None,
            Some(state) => Some(CopiedDelivery {
                state,
                attempts: r.get(13)?,
                next_attempt_at: r.get(14)?,
                last_error: r.get(15)?,
                delivered_at: r.get(16)?,
                upstream_headers: r.get(17)?,
            }),
        };
        Ok((record, delivery))
    })?;
    rows.collect()
}

/// Every recorded outcome, oldest first.
pub(super) fn outcomes(conn: &Connection) -> rusqlite::Result<Vec<RequestOutcome>> {
    let mut stmt = conn.prepare(
        "SELECT request_id, state, status, response, reference, interaction, recorded_at, body_sha256
         FROM requests ORDER BY recorded_at",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        Ok(RequestOutcome {
            request_id: Uuid::parse_str(&id).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
            })?,
            state: OutcomeState::parse(&r.get::<_, String>(1)?),
            status: r.get(2)?,
            response: r.get(3)?,
            reference: r.get(4)?,
            interaction: r.get(5)?,
            recorded_at: r.get(6)?,
            body_sha256: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Stores a message as another store held it, unless its `X-Request-Id` is present.
pub(super) fn copy_message(
    conn: &Connection,
    record: &MessageRecord,
    delivery: Option<&CopiedDelivery>,
) -> rusqlite::Result<bool> {
    if let Inserted::AlreadyPresent(_) = insert_message(conn, &record.message)? {
        return Ok(false);
    }
    if let Some(d) = delivery {
        conn.execute(
            "UPDATE messages SET delivery = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5,
                 delivered_at = ?6, upstream_headers = ?7
             WHERE request_id = ?1",
            params![
                record.message.request_id.to_string(),
                d.state,
                d.attempts,
                d.next_attempt_at,
                d.last_error,
                d.delivered_at,
                d.upstream_headers
            ],
        )?;
    }
    Ok(true)
}
