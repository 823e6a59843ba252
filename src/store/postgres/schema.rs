//! The PostgreSQL schema and its versioned migrations, tracked in `bars_schema`. Replicas
//! starting together migrate one at a time (a transaction-scoped advisory lock); a replica
//! older than the database's schema refuses to start, and fails readiness if the schema
//! moves past it while it runs.

use tokio_postgres::Client;

/// Each entry moves the schema one version up.
const MIGRATIONS: &[&str] = &[
    // 1: the inbox with its relay delivery state, and the de-duplication records with the
    // leased claims of requests in progress.
    "CREATE TABLE messages (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        received_at TIMESTAMPTZ NOT NULL,
        request_id UUID NOT NULL UNIQUE,
        correlation_id UUID NOT NULL,
        bundle_id TEXT NOT NULL,
        event TEXT NOT NULL,
        reason TEXT NOT NULL,
        target TEXT,
        headers JSONB NOT NULL,
        peer JSONB NOT NULL,
        body TEXT NOT NULL,
        delivery TEXT CHECK (delivery IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ,
        attempt_started_at TIMESTAMPTZ,
        last_error TEXT,
        delivered_at TIMESTAMPTZ,
        upstream_headers TEXT
    );
    CREATE INDEX messages_correlation ON messages (correlation_id, seq);
    CREATE INDEX messages_due ON messages (next_attempt_at) WHERE delivery = 'pending';
    CREATE INDEX messages_undelivered ON messages (delivery) WHERE delivery IN ('pending', 'dead');
    CREATE INDEX messages_delivered_at ON messages (delivered_at) WHERE delivery = 'delivered';
    CREATE TABLE requests (
        request_id UUID PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('processing', 'done', 'failed')),
        status INTEGER NOT NULL,
        response TEXT,
        reference TEXT,
        interaction TEXT NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        body_sha256 TEXT NOT NULL DEFAULT '',
        claim_token UUID,
        claimed_until TIMESTAMPTZ
    );
    CREATE INDEX requests_recorded_at ON requests (recorded_at);",
];

/// The newest schema version this build knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations hold ("bars" in ASCII).
const MIGRATION_LOCK: i64 = 0x6261_7273;

/// What the schema check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// At this build's version (after migrating, if allowed).
    Current,
    /// Written by a newer build.
    Newer(i64),
    /// Older, and not migrated (a reading command).
    Older(i64),
}

/// Reads the version, and brings the schema up to [`SCHEMA_VERSION`] when `migrate`.
pub(super) async fn prepare(client: &mut Client, migrate: bool) -> Result<Version, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS bars_schema (version BIGINT NOT NULL)")
        .await?;
    let found: i64 = tx
        .query_opt("SELECT version FROM bars_schema", &[])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Ok(Version::Newer(found));
    }
    if found < SCHEMA_VERSION && !migrate {
        return Ok(Version::Older(found));
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(sql).await?;
    }
    if found < SCHEMA_VERSION {
        tx.execute("DELETE FROM bars_schema", &[]).await?;
        tx.execute(
            "INSERT INTO bars_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Version::Current)
}

/// The version the database is at now (for readiness).
pub(super) async fn current(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_opt("SELECT version FROM bars_schema", &[])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(0))
}
