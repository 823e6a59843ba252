//! The SQL of the PostgreSQL backend, and the rows it reads back. Times go in as
//! [`timestamp`](crate::store::timestamp) text cast to `timestamptz`, and come out in the
//! same text form (`ts!`), so both backends show the same values.

use tokio_postgres::Row;
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

/// A new message, queued for delivery when `$12` (its upstream headers) is given. Returns
/// a row only when it was inserted.
pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages (id, received_at, request_id, correlation_id,
        bundle_id, event, reason, target, headers, peer, body,
        delivery, attempts, next_attempt_at, upstream_headers)
    VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11,
        CASE WHEN $12::text IS NULL THEN NULL ELSE 'pending' END, 0, $13::text::timestamptz, $12::text)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING seq";

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

pub(super) const RECORD_OUTCOME: &str = "INSERT INTO requests (request_id, state, status, response,
        reference, interaction, recorded_at, body_sha256)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)
    ON CONFLICT (request_id) DO UPDATE SET state = EXCLUDED.state, status = EXCLUDED.status,
        response = EXCLUDED.response, reference = EXCLUDED.reference,
        interaction = EXCLUDED.interaction, recorded_at = EXCLUDED.recorded_at,
        body_sha256 = EXCLUDED.body_sha256, claim_token = NULL, claimed_until = NULL";

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

fn json(row: &Row, i: usize) -> Result<serde_json::Value, String> {
    serde_json::from_str(row.try_get::<_, &str>(i).map_err(|e| e.to_string())?)
        .map_err(|e| format!("column {i} is not JSON: {e}"))
}

/// A row of [`MESSAGE_COLUMNS`].
pub(super) fn message(row: &Row) -> Result<MessageRecord, String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    Ok(MessageRecord {
        seq: row.try_get(0).map_err(get)?,
        message: NewMessage {
            id: row.try_get(1).map_err(get)?,
            received_at: row.try_get(2).map_err(get)?,
            request_id: row.try_get(3).map_err(get)?,
            correlation_id: row.try_get(4).map_err(get)?,
            bundle_id: row.try_get(5).map_err(get)?,
            event: row.try_get(6).map_err(get)?,
            reason: row.try_get(7).map_err(get)?,
            target: row.try_get(8).map_err(get)?,
            headers: json(row, 9)?,
            peer: json(row, 10)?,
            body: row.try_get::<_, &str>(11).map_err(get)?.into(),
        },
    })
}

/// [`DELIVERY_COLUMNS`] from column `first`.
pub(super) fn copied_delivery(row: &Row, first: usize) -> Option<CopiedDelivery> {
    let state: Option<String> = row.get(first);
    state.map(|state| CopiedDelivery {
        state,
        attempts: i64::from(row.get::<_, i32>(first + 1)),
        next_attempt_at: row.get(first + 2),
        last_error: row.get(first + 3),
        delivered_at: row.get(first + 4),
        upstream_headers: row.get(first + 5),
    })
}

/// A row of [`SELECT_OUTCOME`].
pub(super) fn outcome(row: &Row) -> Result<RequestOutcome, String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    let status: i32 = row.try_get(1).map_err(get)?;
    Ok(RequestOutcome {
        state: OutcomeState::parse(row.try_get(0).map_err(get)?),
        status: u16::try_from(status).map_err(|_| format!("status {status} out of range"))?,
        response: row.try_get(2).map_err(get)?,
        reference: row.try_get(3).map_err(get)?,
        interaction: row.try_get(4).map_err(get)?,
        recorded_at: row.try_get(5).map_err(get)?,
        body_sha256: row.try_get(6).map_err(get)?,
        request_id: row.try_get(7).map_err(get)?,
    })
}

/// A row of [`CLAIM_DELIVERIES`].
pub(super) fn delivery(row: &Row) -> Result<(Delivery, u64), String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    let headers: Option<String> = row.try_get(5).map_err(get)?;
    let headers: Vec<(String, String)> = match headers {
        Some(text) => serde_json::from_str(&text).map_err(|e| format!("upstream headers: {e}"))?,
        None => Vec::new(),
    };
    let attempts: i32 = row.try_get(6).map_err(get)?;
    Ok((
        Delivery {
            seq: row.try_get(0).map_err(get)?,
            id: row.try_get(1).map_err(get)?,
            request_id: row.try_get::<_, Uuid>(2).map_err(get)?,
            correlation_id: row.try_get::<_, Uuid>(3).map_err(get)?,
            body: row.try_get(4).map_err(get)?,
            headers,
        },
        u64::try_from(attempts).unwrap_or(0),
    ))
}

/// [`STATUS_COLUMNS`] from column `first`.
pub(super) fn status(row: &Row, first: usize) -> Result<Option<DeliveryStatus>, String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    let Some(state) = row.try_get::<_, Option<String>>(first).map_err(get)? else {
        return Ok(None);
    };
    let state = DeliveryState::parse(&state).ok_or_else(|| format!("unknown delivery state {state}"))?;
    let attempts: i32 = row.try_get(first + 1).map_err(get)?;
    Ok(Some(DeliveryStatus {
        state,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get(first + 2).map_err(get)?,
        last_error: row.try_get(first + 3).map_err(get)?,
        delivered_at: row.try_get(first + 4).map_err(get)?,
        held: row
            .try_get::<_, Option<bool>>(first + 5)
            .map_err(get)?
            .unwrap_or(false),
    }))
}

/// A row of [`LIST`].
pub(super) fn summary(row: &Row) -> Result<MessageSummary, String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    Ok(MessageSummary {
        seq: row.try_get(0).map_err(get)?,
        id: row.try_get(1).map_err(get)?,
        received_at: row.try_get(2).map_err(get)?,
        request_id: row.try_get(3).map_err(get)?,
        correlation_id: row.try_get(4).map_err(get)?,
        event: row.try_get(5).map_err(get)?,
        reason: row.try_get(6).map_err(get)?,
        target: row.try_get(7).map_err(get)?,
        peer_cn: row.try_get(8).map_err(get)?,
        delivery: status(row, 9)?,
    })
}
