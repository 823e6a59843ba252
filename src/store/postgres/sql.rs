//! The SQL of the PostgreSQL backend, and the rows it reads back. Times go in as
//! [`timestamp`](crate::store::timestamp) text cast to `timestamptz`, and come out in the
//! same text form (`ts!`), so both backends show the same values.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use uuid::Uuid;

use crate::store::backend::CopiedDelivery;
use crate::store::{
    Delivery, DeliveryState, DeliveryStatus, MessageRecord, MessageSummary, NewMessage, OutcomeState,
    RequestOutcome,
};

/// A `timestamptz` column as `2026-03-01T09:30:00.000000Z`.
macro_rules! ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

pub(super) const MESSAGE_COLUMNS: &str = concat!(
    "seq, id, ",
    ts!("received_at"),
    ", request_id, correlation_id, bundle_id, event, reason, target, headers::text, peer::text, body"
);

pub(super) const DELIVERY_COLUMNS: &str = concat!(
    "delivery, attempts, ",
    ts!("next_attempt_at"),
    ", last_error, ",
    ts!("delivered_at"),
    ", upstream_headers"
);

/// Inserts a new message, queued for delivery when `$12` (its upstream headers) is given.
macro_rules! insert_message {
    () => {
        "INSERT INTO messages (id, received_at, request_id, correlation_id,
            bundle_id, event, reason, target, headers, peer, body,
            delivery, attempts, next_attempt_at, upstream_headers)
        VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11,
            CASE WHEN $12::text IS NULL THEN NULL ELSE 'pending' END, 0, $13::text::timestamptz, $12::text)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING seq"
    };
}

/// The de-duplication outcome's columns and their update on conflict, which also ends the
/// claim.
macro_rules! outcome_upsert {
    () => {
        "ON CONFLICT (request_id) DO UPDATE SET state = EXCLUDED.state, status = EXCLUDED.status,
            response = EXCLUDED.response, reference = EXCLUDED.reference,
            interaction = EXCLUDED.interaction, recorded_at = EXCLUDED.recorded_at,
            body_sha256 = EXCLUDED.body_sha256, claim_token = NULL, claimed_until = NULL"
    };
}

/// A new message (see `insert_message!`). Returns a row only when it was inserted.
pub(super) const INSERT_MESSAGE: &str = insert_message!();

/// A new message and, only when it was inserted, its request's outcome (`$14`...`$20`), in
/// one statement (so one commit). Returns a row only when it was inserted.
pub(super) const INSERT_MESSAGE_RECORDING: &str = concat!(
    "WITH m AS (",
    insert_message!(),
    "), o AS (INSERT INTO requests (request_id, state, status, response, reference, interaction,
        recorded_at, body_sha256)
      SELECT $3, $14, $15, $16, $17, $18, $19::text::timestamptz, $20 WHERE EXISTS (SELECT 1 FROM m) ",
    outcome_upsert!(),
    ") SELECT seq FROM m"
);

/// A message copied from another store with its delivery state.
pub(super) const COPY_MESSAGE: &str = "INSERT INTO messages (id, received_at, request_id, correlation_id,
        bundle_id, event, reason, target, headers, peer, body,
        delivery, attempts, next_attempt_at, last_error, delivered_at, upstream_headers)
    VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11,
        $12::text, $13, $14::text::timestamptz, $15::text, $16::text::timestamptz, $17::text)
    ON CONFLICT DO NOTHING";

/// Claims an `X-Request-Id` (`$1`) for a body (`$2`) under token `$3` for `$4` ms: a new
/// row, or a claim whose lease ran out. Returns a row only when this caller has the claim.
pub(super) const CLAIM_REQUEST: &str = "INSERT INTO requests (request_id, state, status, interaction,
        recorded_at, body_sha256, claim_token, claimed_until)
    VALUES ($1, 'processing', 0, '', clock_timestamp(), $2, $3,
        clock_timestamp() + ($4::bigint * interval '1 millisecond'))
    ON CONFLICT (request_id) DO UPDATE SET claim_token = EXCLUDED.claim_token,
        claimed_until = EXCLUDED.claimed_until, body_sha256 = EXCLUDED.body_sha256,
        recorded_at = EXCLUDED.recorded_at
    WHERE requests.state = 'processing' AND requests.claimed_until < clock_timestamp()
    RETURNING claim_token";

pub(super) const SELECT_OUTCOME: &str = concat!(
    "SELECT state, status, response, reference, interaction, ",
    ts!("recorded_at"),
    ", body_sha256, request_id FROM requests"
);

pub(super) const RECORD_OUTCOME: &str = concat!(
    "INSERT INTO requests (request_id, state, status, response,
        reference, interaction, recorded_at, body_sha256)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8) ",
    outcome_upsert!()
);

pub(super) const COPY_OUTCOME: &str = "INSERT INTO requests (request_id, state, status, response,
        reference, interaction, recorded_at, body_sha256)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)
    ON CONFLICT (request_id) DO NOTHING";

/// Pending messages that head their conversation.
macro_rules! heads {
    () => {
        "m.delivery = 'pending' AND NOT EXISTS (SELECT 1 FROM messages p
            WHERE p.correlation_id = m.correlation_id AND p.seq < m.seq
              AND p.delivery IN ('pending', 'dead'))"
    };
}

/// Claims up to `$1` due conversation heads for `$2` ms each, counting the attempt. Rows
/// another replica is claiming are skipped, not waited for.
pub(super) const CLAIM_DELIVERIES: &str = concat!(
    "WITH due AS (SELECT m.seq FROM messages m WHERE ",
    heads!(),
    " AND m.next_attempt_at <= clock_timestamp()
        ORDER BY m.next_attempt_at, m.seq LIMIT $1 FOR UPDATE OF m SKIP LOCKED)
    UPDATE messages m SET attempts = m.attempts + 1, attempt_started_at = clock_timestamp(),
        next_attempt_at = clock_timestamp() + ($2::bigint * interval '1 millisecond')
    FROM due WHERE m.seq = due.seq AND m.delivery = 'pending'
    RETURNING m.seq, m.id, m.request_id, m.correlation_id, m.body, m.upstream_headers, m.attempts"
);

pub(super) const NEXT_DUE: &str = concat!(
    "SELECT ",
    ts!("MIN(m.next_attempt_at)"),
    " FROM messages m WHERE ",
    heads!()
);

pub(super) const STATUS_COLUMNS: &str = concat!(
    "m.delivery, m.attempts, ",
    ts!("m.next_attempt_at"),
    ", m.last_error, ",
    ts!("m.delivered_at"),
    ", (m.delivery = 'pending' AND EXISTS (SELECT 1 FROM messages p
        WHERE p.correlation_id = m.correlation_id AND p.seq < m.seq AND p.delivery = 'dead'))"
);

pub(super) const LIST: &str = concat!(
    "SELECT m.seq, m.id, ",
    ts!("m.received_at"),
    ", m.request_id::text, m.correlation_id::text, m.event, m.reason, m.target,
        m.peer->>'common_name', m.delivery, m.attempts, ",
    ts!("m.next_attempt_at"),
    ", m.last_error, ",
    ts!("m.delivered_at"),
    ", (m.delivery = 'pending' AND EXISTS (SELECT 1 FROM messages p
        WHERE p.correlation_id = m.correlation_id AND p.seq < m.seq AND p.delivery = 'dead'))
    FROM messages m ORDER BY m.seq DESC LIMIT $1"
);

pub(super) const BACKLOG: &str = concat!(
    "SELECT delivery, COUNT(*), ",
    ts!("MIN(received_at)"),
    " FROM messages WHERE delivery IN ('pending', 'dead') GROUP BY delivery"
);

/// Column `i` of `row` as a `T`, or why not (never a panic on an unexpected type).
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, String> {
    row.try_get(i).map_err(|e| format!("column {i}: {e}"))
}

fn json(row: &Row, i: usize) -> Result<serde_json::Value, String> {
    serde_json::from_str(col::<&str>(row, i)?).map_err(|e| format!("column {i} is not JSON: {e}"))
}

/// A row of [`MESSAGE_COLUMNS`].
pub(super) fn message(row: &Row) -> Result<MessageRecord, String> {
    Ok(MessageRecord {
        seq: col(row, 0)?,
        message: NewMessage {
            id: col(row, 1)?,
            received_at: col(row, 2)?,
            request_id: col(row, 3)?,
            correlation_id: col(row, 4)?,
            bundle_id: col(row, 5)?,
            event: col(row, 6)?,
            reason: col(row, 7)?,
            target: col(row, 8)?,
            headers: json(row, 9)?,
            peer: json(row, 10)?,
            body: col::<&str>(row, 11)?.into(),
        },
    })
}

/// [`DELIVERY_COLUMNS`] from column `first`.
pub(super) fn copied_delivery(row: &Row, first: usize) -> Result<Option<CopiedDelivery>, String> {
    let Some(state) = col::<Option<String>>(row, first)? else {
        return Ok(None);
    };
    Ok(Some(CopiedDelivery {
        state,
        attempts: i64::from(col::<i32>(row, first + 1)?),
        next_attempt_at: col(row, first + 2)?,
        last_error: col(row, first + 3)?,
        delivered_at: col(row, first + 4)?,
        upstream_headers: col(row, first + 5)?,
    }))
}

/// A row of [`SELECT_OUTCOME`].
pub(super) fn outcome(row: &Row) -> Result<RequestOutcome, String> {
    let status: i32 = col(row, 1)?;
    Ok(RequestOutcome {
        state: OutcomeState::parse(col(row, 0)?),
        status: u16::try_from(status).map_err(|_| format!("status {status} out of range"))?,
        response: col(row, 2)?,
        reference: col(row, 3)?,
        interaction: col(row, 4)?,
        recorded_at: col(row, 5)?,
        body_sha256: col(row, 6)?,
        request_id: col(row, 7)?,
    })
}

/// A row of [`CLAIM_DELIVERIES`].
pub(super) fn delivery(row: &Row) -> Result<(Delivery, u64), String> {
    let headers: Option<String> = col(row, 5)?;
    let headers: Vec<(String, String)> = match headers {
        Some(text) => serde_json::from_str(&text).map_err(|e| format!("upstream headers: {e}"))?,
        None => Vec::new(),
    };
    let attempts: i32 = col(row, 6)?;
    Ok((
        Delivery {
            seq: col(row, 0)?,
            id: col(row, 1)?,
            request_id: col::<Uuid>(row, 2)?,
            correlation_id: col::<Uuid>(row, 3)?,
            body: col(row, 4)?,
            headers,
        },
        u64::try_from(attempts).unwrap_or(0),
    ))
}

/// [`STATUS_COLUMNS`] from column `first`.
pub(super) fn status(row: &Row, first: usize) -> Result<Option<DeliveryStatus>, String> {
    let Some(state) = col::<Option<String>>(row, first)? else {
        return Ok(None);
    };
    let state = DeliveryState::parse(&state).ok_or_else(|| format!("unknown delivery state {state}"))?;
    let attempts: i32 = col(row, first + 1)?;
    Ok(Some(DeliveryStatus {
        state,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: col(row, first + 2)?,
        last_error: col(row, first + 3)?,
        delivered_at: col(row, first + 4)?,
        held: col::<Option<bool>>(row, first + 5)?.unwrap_or(false),
    }))
}

/// A row of [`LIST`].
pub(super) fn summary(row: &Row) -> Result<MessageSummary, String> {
    Ok(MessageSummary {
        seq: col(row, 0)?,
        id: col(row, 1)?,
        received_at: col(row, 2)?,
        request_id: col(row, 3)?,
        correlation_id: col(row, 4)?,
        event: col(row, 5)?,
        reason: col(row, 6)?,
        target: col(row, 7)?,
        peer_cn: col(row, 8)?,
        delivery: status(row, 9)?,
    })
}
