//! The SQL of the relay delivery state.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::store::{Delivery, DeliveryBacklog, DeliveryState, DeliveryStatus, Finish};

/// The columns `list` and `status` read, after the message's own.
pub(super) const STATUS_COLUMNS: &str = "delivery, attempts, next_attempt_at, last_error, delivered_at,
    (delivery = 'pending' AND EXISTS (SELECT 1 FROM messages p WHERE p.correlation_id = m.correlation_id
        AND p.seq < m.seq AND p.delivery = 'dead'))";

/// Reads [`STATUS_COLUMNS`] starting at column `first`.
pub(super) fn status_from_row(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<Option<DeliveryStatus>> {
    let Some(state) = r.get::<_, Option<String>>(first)? else {
        return Ok(None);
    };
    let state = DeliveryState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            first,
            rusqlite::types::Type::Text,
            format!("unknown delivery state {state}").into(),
        )
    })?;
    Ok(Some(DeliveryStatus {
        state,
        attempts: r.get(first + 1)?,
        next_attempt_at: r.get(first + 2)?,
        last_error: r.get(first + 3)?,
        delivered_at: r.get(first + 4)?,
        held: r.get::<_, Option<bool>>(first + 5)?.unwrap_or(false),
    }))
}

/// Pending messages that head their conversation.
const HEADS: &str = "m.delivery = 'pending' AND NOT EXISTS (SELECT 1 FROM messages p
    WHERE p.correlation_id = m.correlation_id AND p.seq < m.seq AND p.delivery IN ('pending', 'dead'))";

/// Marks a freshly inserted message (by `X-Request-Id`) pending, due at once.
pub(super) fn queue(conn: &Connection, request_id: Uuid, headers: &str, now: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET delivery = 'pending', attempts = 0, next_attempt_at = ?3,
             upstream_headers = ?2
         WHERE request_id = ?1 AND delivery IS NULL",
    )?
    .execute(params![request_id.to_string(), headers, now])?;
    Ok(())
}

/// Up to `limit` conversation heads due at `now`, earliest first.
pub(super) fn due(conn: &Connection, now: &str, limit: u32) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, id, request_id, correlation_id, body, upstream_headers FROM messages m
         WHERE {HEADS} AND m.next_attempt_at <= ?1
         ORDER BY m.next_attempt_at, m.seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit], |r| {
        let uuid = |i: usize| -> rusqlite::Result<Uuid> {
            let text: String = r.get(i)?;
            Uuid::parse_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
            })
        };
        let headers: Option<String> = r.get(5)?;
        let headers: Vec<(String, String)> = match headers {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
            })?,
            None => Vec::new(),
        };
        Ok(Delivery {
            seq: r.get(0)?,
            id: r.get(1)?,
            request_id: uuid(2)?,
            correlation_id: uuid(3)?,
            body: r.get(4)?,
            headers,
        })
    })?;
    rows.collect()
}

/// When the earliest conversation head is due, if any.
pub(super) fn next_due(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        &format!("SELECT MIN(m.next_attempt_at) FROM messages m WHERE {HEADS}"),
        [],
        |r| r.get(0),
    )
}

/// Records that an attempt starts: counts it (so that a message that crashes the process
/// still runs out of attempts) and leases it until `lease_until`. Returns the attempt number.
pub(super) fn start_attempt(
    conn: &Connection,
    seq: i64,
    now: &str,
    lease_until: &str,
) -> rusqlite::Result<u64> {
    conn.query_row(
        "UPDATE messages SET attempts = attempts + 1, attempt_started_at = ?2, next_attempt_at = ?3
         WHERE seq = ?1 AND delivery = 'pending' RETURNING attempts",
        params![seq, now, lease_until],
        |r| r.get(0),
    )
}

/// Records how attempt `attempt` ended; nothing changes when the message has been claimed
/// again since (the attempt count moved on).
pub(super) fn finish_attempt(
    conn: &Connection,
    seq: i64,
    attempt: u64,
    finish: &Finish,
) -> rusqlite::Result<u64> {
    let changed = match finish {
        Finish::Delivered { at } => conn.execute(
            "UPDATE messages SET delivery = 'delivered', delivered_at = ?2, next_attempt_at = NULL,
                 attempt_started_at = NULL WHERE seq = ?1 AND delivery = 'pending' AND attempts = ?3",
            params![seq, at, attempt],
        )?,
        Finish::Retry { next_at, error } => conn.execute(
            "UPDATE messages SET next_attempt_at = ?2, last_error = ?3, attempt_started_at = NULL
             WHERE seq = ?1 AND delivery = 'pending' AND attempts = ?4",
            params![seq, next_at, error, attempt],
        )?,
        Finish::Dead { error } => conn.execute(
            "UPDATE messages SET delivery = 'dead', next_attempt_at = NULL, last_error = ?2,
                 attempt_started_at = NULL WHERE seq = ?1 AND delivery = 'pending' AND attempts = ?3",
            params![seq, error, attempt],
        )?,
    };
    Ok(changed as u64)
}

/// Attempts that were in flight when the process stopped are due again at once.
pub(super) fn recover(conn: &Connection, now: &str) -> rusqlite::Result<u64> {
    let changed = conn.execute(
        "UPDATE messages SET next_attempt_at = ?1, attempt_started_at = NULL,
             last_error = COALESCE(last_error, 'interrupted: the receiver stopped during an attempt')
         WHERE delivery = 'pending' AND attempt_started_at IS NOT NULL",
        params![now],
    )?;
    Ok(changed as u64)
}

/// Re-queues a dead letter (by receiver reference or `X-Request-Id`) with a fresh count of
/// attempts. Returns how many rows changed (0 or 1).
pub(super) fn retry(conn: &Connection, id: &str, now: &str) -> rusqlite::Result<u64> {
    let changed = conn.execute(
        "UPDATE messages SET delivery = 'pending', attempts = 0, next_attempt_at = ?2,
             attempt_started_at = NULL
         WHERE (id = ?1 OR request_id = ?1) AND delivery = 'dead'",
        params![id, now],
    )?;
    Ok(changed as u64)
}

/// Deletes up to `chunk` messages delivered before `cutoff`.
pub(super) fn purge(conn: &Connection, cutoff: &str, chunk: u32) -> rusqlite::Result<u64> {
    let changed = conn.execute(
        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
             WHERE delivery = 'delivered' AND delivered_at < ?1 LIMIT ?2)",
        params![cutoff, chunk],
    )?;
    Ok(changed as u64)
}

/// The delivery of one message, by receiver reference or `X-Request-Id`: `None` when there
/// is no such message, `Some(None)` when it is not relayed.
pub(super) fn status(conn: &Connection, id: &str) -> rusqlite::Result<Option<Option<DeliveryStatus>>> {
    conn.query_row(
        &format!("SELECT {STATUS_COLUMNS} FROM messages m WHERE m.id = ?1 OR m.request_id = ?1"),
        params![id],
        |r| status_from_row(r, 0),
    )
    .optional()
}

pub(super) fn backlog(conn: &Connection) -> rusqlite::Result<DeliveryBacklog> {
    let mut stmt = conn.prepare(
        "SELECT delivery, COUNT(*), MIN(received_at) FROM messages
         WHERE delivery IN ('pending', 'dead') GROUP BY delivery",
    )?;
    let mut backlog = DeliveryBacklog::default();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u64>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    for row in rows {
        match row? {
            (state, n, oldest) if state == "pending" => {
                backlog.pending = n;
                backlog.oldest_pending = oldest;
            }
            (_, n, _) => backlog.dead = n,
        }
    }
    Ok(backlog)
}
