//! The shared backend: one PostgreSQL database behind every replica.
//!
//! Each write is its own statement (or transaction) on a pooled connection and returns once
//! PostgreSQL has committed it, as durably as the server's `synchronous_commit` makes a
//! commit. What two replicas could do at once is decided by the database: an `X-Request-Id`
//! is claimed by inserting its row (a leased claim, renewed while the request runs), and
//! deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leased through their next
//! attempt time. Leases run on the database's clock, so replicas never compare clocks.
//!
//! When the database cannot be reached every operation fails fast with
//! [`StoreError::Unavailable`]: the pool waits at most `connect_timeout`, each operation at
//! most `statement_timeout` more, and for a moment after a failed connection requests fail
//! at once rather than each waiting its own timeout.

mod schema;
mod sql;
mod tls;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::backend::{Backend, ClaimFound, CopiedDelivery, QueuedDelivery};
use super::settings::{PostgresSettings, PostgresTls};
use super::{
    Delivery, DeliveryBacklog, DeliveryStatus, Finish, Inserted, MessageRecord, MessageSummary, NewMessage,
    RequestOutcome, StoreError,
};
use schema::Version;

/// After a failed connection, how long requests fail at once instead of trying again.
const FAIL_FAST: Duration = Duration::from_millis(500);

/// The PostgreSQL backend.
pub(super) struct Postgres {
    pool: Pool,
    database: String,
    /// Longest one operation may take once it has its connection.
    operation_timeout: Duration,
    /// Until when requests fail without trying, after a failed connection.
    failing_until: Mutex<Option<Instant>>,
}

impl Postgres {
    /// Connects, checks the schema version and, when `migrate`, brings it up to date.
    pub(super) async fn connect(settings: &PostgresSettings, migrate: bool) -> Result<Self, StoreError> {
        let database = settings.url.to_string();
        let mut config = settings.url.config().clone();
        config
            .connect_timeout(settings.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("bars-receiver");
        #[cfg(target_os = "linux")]
        config.tcp_user_timeout(settings.connect_timeout + settings.statement_timeout);
        let statement_ms = settings.statement_timeout.as_millis().max(1);
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(
            " -c statement_timeout={statement_ms} -c lock_timeout={statement_ms} -c idle_in_transaction_session_timeout={}",
            statement_ms * 2
        ));
        config.options(options.trim());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::connector(&settings.tls, &database)? {
            Some(tls) => {
                config.ssl_mode(SslMode::Require);
                Manager::from_config(config, tls, manager_config)
            }
            None => {
                debug_assert_eq!(settings.tls, PostgresTls::InsecureDisabled);
                config.ssl_mode(SslMode::Disable);
                Manager::from_config(config, tokio_postgres::NoTls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| StoreError::Postgres {
                database: database.clone(),
                detail: e.to_string(),
            })?;
        let store = Self {
            pool,
            database,
            operation_timeout: settings.statement_timeout + Duration::from_secs(1),
            failing_until: Mutex::new(None),
        };
        let mut client = store
            .connection(false)
            .await
            .map_err(|e| store.at_start(e, &settings.tls))?;
        let version = store.timed(schema::prepare(&mut client, migrate)).await?;
        let synchronous_commit: String = store
            .timed(async { client.query_one("SHOW synchronous_commit", &[]).await?.try_get(0) })
            .await?;
        if synchronous_commit == "off" {
            tracing::warn!(
                database = %store.database,
                synchronous_commit,
                "PostgreSQL acknowledges commits before they are durable: a crash can lose acknowledged messages; set synchronous_commit = on"
            );
        }
        match version {
            Version::Current => {
                tracing::info!(database = %store.database, synchronous_commit, pool_size = settings.pool_size, "inbox on PostgreSQL");
                Ok(store)
            }
            Version::Newer(found) => Err(StoreError::NewerSchema {
                database: store.database.clone(),
                found,
                known: schema::SCHEMA_VERSION,
            }),
            Version::Older(found) => Err(StoreError::OlderSchema {
                database: store.database.clone(),
                found,
                known: schema::SCHEMA_VERSION,
            }),
        }
    }

    /// A failure of the first connection, as the error to refuse to start with: a server
    /// certificate that `store.ca_file` does not verify names the setting.
    fn at_start(&self, e: StoreError, tls: &PostgresTls) -> StoreError {
        match (&e, tls) {
            (StoreError::Unavailable { detail, .. }, PostgresTls::VerifyFull { .. })
                if detail.contains("invalid peer certificate") || detail.contains("TLS handshake") =>
            {
                StoreError::Tls {
                    database: self.database.clone(),
                    detail: format!(
                        "the database server's certificate is not accepted: check store.ca_file (the CA that issued it) and that the URL's host is a name in it ({detail})"
                    ),
                }
            }
            _ => e,
        }
    }

    /// The database URL, without its password.
    pub(super) fn database(&self) -> &str {
        &self.database
    }

    /// A pooled connection; `fail_fast` skips trying while a recent connection failed.
    async fn connection(&self, fail_fast: bool) -> Result<Object, StoreError> {
        if fail_fast {
            let until = *self.lock_failing();
            if until.is_some_and(|until| Instant::now() < until) {
                return Err(self.unavailable("a connection failed moments ago"));
            }
        }
        match self.pool.get().await {
            Ok(client) => {
                self.lock_failing().take();
                Ok(client)
            }
            Err(e) => {
                *self.lock_failing() = Some(Instant::now() + FAIL_FAST);
                Err(self.unavailable(&crate::error_chain::error_chain(&e)))
            }
        }
    }

    fn lock_failing(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.failing_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self, detail: &str) -> StoreError {
        StoreError::Unavailable {
            database: self.database.clone(),
            detail: detail.to_owned(),
        }
    }

    /// Bounds an operation by the statement timeout (plus slack), mapping its error.
    async fn timed<T>(
        &self,
        operation: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, operation).await {
            Ok(result) => result.map_err(|e| self.error(&e)),
            Err(_) => Err(self.unavailable("the database did not answer in time")),
        }
    }

    /// A driver error as a store error: unavailable when the connection or the server is
    /// the trouble, a refusal otherwise.
    fn error(&self, e: &tokio_postgres::Error) -> StoreError {
        let transient = match e.code() {
            None => true,
            Some(code) => {
                code.code().starts_with("08")
                    || [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                        SqlState::TOO_MANY_CONNECTIONS,
                        SqlState::QUERY_CANCELED,
                        SqlState::LOCK_NOT_AVAILABLE,
                        SqlState::READ_ONLY_SQL_TRANSACTION,
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                    ]
                    .contains(code)
            }
        };
        let detail = crate::error_chain::error_chain(e);
        if transient {
            self.unavailable(&detail)
        } else {
            StoreError::Postgres {
                database: self.database.clone(),
                detail,
            }
        }
    }

    /// Runs `statement` with `params` on a pooled connection; returns its rows.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.connection(true).await?;
        self.timed(async {
            let prepared = client.prepare_cached(statement).await?;
            client.query(&prepared, params).await
        })
        .await
    }

    /// Runs `statement`; returns how many rows it changed.
    async fn execute(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.connection(true).await?;
        self.timed(async {
            let prepared = client.prepare_cached(statement).await?;
            client.execute(&prepared, params).await
        })
        .await
    }

    fn decode<T>(&self, result: Result<T, String>) -> Result<T, StoreError> {
        result.map_err(|detail| StoreError::Postgres {
            database: self.database.clone(),
            detail,
        })
    }
}

/// A duration in whole milliseconds, for `$n::bigint * interval '1 millisecond'`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Backend for Postgres {
    fn shared(&self) -> bool {
        true
    }

    async fn insert_message(
        &self,
        m: NewMessage,
        delivery: Option<QueuedDelivery>,
        outcome: Option<RequestOutcome>,
    ) -> Result<Inserted, StoreError> {
        let headers = m.headers.to_string();
        let peer = m.peer.to_string();
        let (queued_headers, queued_at) = match &delivery {
            Some(d) => (Some(d.headers.as_str()), Some(d.at.as_str())),
            None => (None, None),
        };
        let body: &str = &m.body;
        let mut params = message_params(&m, &headers, &peer, &body);
        params.extend_from_slice(&[&queued_headers, &queued_at]);
        let recorded = outcome.as_ref().map(|o| (o.state.as_str(), i32::from(o.status)));
        let statement = match (&outcome, &recorded) {
            (Some(o), Some((state, status))) => {
                params.extend_from_slice(&[
                    state,
                    status,
                    &o.response,
                    &o.reference,
                    &o.interaction,
                    &o.recorded_at,
                    &o.body_sha256,
                ]);
                sql::INSERT_MESSAGE_RECORDING
            }
            _ => sql::INSERT_MESSAGE,
        };
        let rows = self.query(statement, &params).await?;
        if !rows.is_empty() {
            return Ok(Inserted::New(m.id));
        }
        // Present already (committed by this or another replica before the insert looked).
        let rows = self
            .query("SELECT id FROM messages WHERE request_id = $1", &[&m.request_id])
            .await?;
        match rows.first() {
            Some(row) => Ok(Inserted::AlreadyPresent(self.decode(sql::col(row, 0))?)),
            None => Err(self.unavailable("the message was neither inserted nor found; retry")),
        }
    }

    async fn claim_request(
        &self,
        request_id: Uuid,
        body_sha256: &str,
        lease: Duration,
    ) -> Result<ClaimFound, StoreError> {
        // A claim released between the two statements is claimed again on the next turn.
        for _ in 0..3 {
            let token = Uuid::new_v4();
            let claimed = self
                .query(
                    sql::CLAIM_REQUEST,
                    &[&request_id, &body_sha256, &token, &millis(lease)],
                )
                .await?;
            if !claimed.is_empty() {
                return Ok(ClaimFound::Claimed { token });
            }
            let rows = self
                .query(
                    &format!("{} WHERE request_id = $1", sql::SELECT_OUTCOME),
                    &[&request_id],
                )
                .await?;
            match rows.first() {
                Some(row) if self.decode(sql::col::<&str>(row, 0))? == "processing" => {
                    return Ok(ClaimFound::InProgress);
                }
                Some(row) => return Ok(ClaimFound::Recorded(self.decode(sql::outcome(row))?)),
                None => continue,
            }
        }
        Ok(ClaimFound::InProgress)
    }

    async fn renew_claim(&self, request_id: Uuid, token: Uuid, lease: Duration) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE requests SET claimed_until = clock_timestamp() + ($3::bigint * interval '1 millisecond')
                 WHERE request_id = $1 AND claim_token = $2 AND state = 'processing'",
                &[&request_id, &token, &millis(lease)],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn release_claim(&self, request_id: Uuid, token: Uuid) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM requests WHERE request_id = $1 AND claim_token = $2 AND state = 'processing'",
            &[&request_id, &token],
        )
        .await
        .map(drop)
    }

    async fn record_outcome(&self, o: RequestOutcome) -> Result<(), StoreError> {
        let status = i32::from(o.status);
        self.execute(
            sql::RECORD_OUTCOME,
            &[
                &o.request_id,
                &o.state.as_str(),
                &status,
                &o.response,
                &o.reference,
                &o.interaction,
                &o.recorded_at,
                &o.body_sha256,
            ],
        )
        .await
        .map(drop)
    }

    async fn find_outcome(&self, request_id: Uuid) -> Result<Option<RequestOutcome>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "{} WHERE request_id = $1 AND state <> 'processing'",
                    sql::SELECT_OUTCOME
                ),
                &[&request_id],
            )
            .await?;
        rows.first().map(|row| self.decode(sql::outcome(row))).transpose()
    }

    async fn prune_outcomes(&self, cutoff: String, limit: u32) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests
                 WHERE recorded_at < $1::text::timestamptz
                   AND (state <> 'processing' OR claimed_until < clock_timestamp())
                 ORDER BY recorded_at LIMIT $2)",
            &[&cutoff, &i64::from(limit)],
        )
        .await
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<(Delivery, u64)>, StoreError> {
        let rows = self
            .query(sql::CLAIM_DELIVERIES, &[&i64::from(limit), &millis(lease)])
            .await?;
        rows.iter().map(|row| self.decode(sql::delivery(row))).collect()
    }

    async fn next_delivery_due(&self) -> Result<Option<String>, StoreError> {
        let rows = self.query(sql::NEXT_DUE, &[]).await?;
        match rows.first() {
            Some(row) => self.decode(sql::col(row, 0)),
            None => Ok(None),
        }
    }

    async fn finish_attempt(&self, seq: i64, attempt: u64, finish: Finish) -> Result<u64, StoreError> {
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        match finish {
            Finish::Delivered { at } => {
                self.execute(
                    "UPDATE messages SET delivery = 'delivered', delivered_at = $2::text::timestamptz,
                         next_attempt_at = NULL, attempt_started_at = NULL
                     WHERE seq = $1 AND delivery = 'pending' AND attempts = $3",
                    &[&seq, &at, &attempt],
                )
                .await
            }
            Finish::Retry { next_at, error } => {
                self.execute(
                    "UPDATE messages SET next_attempt_at = $2::text::timestamptz, last_error = $3,
                         attempt_started_at = NULL
                     WHERE seq = $1 AND delivery = 'pending' AND attempts = $4",
                    &[&seq, &next_at, &error, &attempt],
                )
                .await
            }
            Finish::Dead { error } => {
                self.execute(
                    "UPDATE messages SET delivery = 'dead', next_attempt_at = NULL, last_error = $2,
                         attempt_started_at = NULL
                     WHERE seq = $1 AND delivery = 'pending' AND attempts = $3",
                    &[&seq, &error, &attempt],
                )
                .await
            }
        }
    }

    async fn recover_deliveries(&self, _now: String) -> Result<u64, StoreError> {
        // Another replica may be delivering them right now: its lease decides.
        Ok(0)
    }

    async fn retry_dead_letter(&self, id: String, now: String) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE messages SET delivery = 'pending', attempts = 0,
                 next_attempt_at = $2::text::timestamptz, attempt_started_at = NULL
             WHERE (id = $1 OR request_id::text = $1) AND delivery = 'dead'",
            &[&id, &now],
        )
        .await
    }

    async fn purge_delivered(&self, cutoff: String, limit: u32) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
                 WHERE delivery = 'delivered' AND delivered_at < $1::text::timestamptz LIMIT $2)",
            &[&cutoff, &i64::from(limit)],
        )
        .await
    }

    async fn delivery_status(&self, id: String) -> Result<Option<Option<DeliveryStatus>>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {} FROM messages m WHERE m.id = $1 OR m.request_id::text = $1",
                    sql::STATUS_COLUMNS
                ),
                &[&id],
            )
            .await?;
        rows.first()
            .map(|row| self.decode(sql::status(row, 0)))
            .transpose()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT COUNT(*) FROM messages", &[]).await?;
        let n: i64 = match rows.first() {
            Some(row) => self.decode(sql::col(row, 0))?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delivery_backlog(&self) -> Result<DeliveryBacklog, StoreError> {
        let rows = self.query(sql::BACKLOG, &[]).await?;
        let mut backlog = DeliveryBacklog::default();
        for row in rows {
            let n = u64::try_from(self.decode(sql::col::<i64>(&row, 1))?).unwrap_or(0);
            if self.decode(sql::col::<&str>(&row, 0))? == "pending" {
                backlog.pending = n;
                backlog.oldest_pending = self.decode(sql::col(&row, 2))?;
            } else {
                backlog.dead = n;
            }
        }
        Ok(backlog)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.connection(false).await?;
        let (writable, version) = self
            .timed(async {
                let row = client
                    .query_one(
                        "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
                        &[],
                    )
                    .await?;
                Ok((row.try_get::<_, bool>(0)?, schema::current(&client).await?))
            })
            .await?;
        if !writable {
            return Err(self.unavailable("the server is read-only (a standby, or in recovery)"));
        }
        if version > schema::SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                database: self.database.clone(),
                found: version,
                known: schema::SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    async fn list(&self, limit: u32) -> Result<Vec<MessageSummary>, StoreError> {
        let rows = self.query(sql::LIST, &[&i64::from(limit)]).await?;
        rows.iter().map(|row| self.decode(sql::summary(row))).collect()
    }

    async fn get(&self, id: String) -> Result<Option<MessageRecord>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {} FROM messages WHERE id = $1 OR request_id::text = $1",
                    sql::MESSAGE_COLUMNS
                ),
                &[&id],
            )
            .await?;
        rows.first().map(|row| self.decode(sql::message(row))).transpose()
    }

    async fn page(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(MessageRecord, Option<CopiedDelivery>)>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {}, {} FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2",
                    sql::MESSAGE_COLUMNS,
                    sql::DELIVERY_COLUMNS
                ),
                &[&after, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| self.decode(sql::message(row).and_then(|m| Ok((m, sql::copied_delivery(row, 12)?)))))
            .collect()
    }

    async fn outcomes(&self) -> Result<Vec<RequestOutcome>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "{} WHERE state <> 'processing' ORDER BY recorded_at",
                    sql::SELECT_OUTCOME
                ),
                &[],
            )
            .await?;
        rows.iter().map(|row| self.decode(sql::outcome(row))).collect()
    }

    async fn copy_message(
        &self,
        record: MessageRecord,
        delivery: Option<CopiedDelivery>,
    ) -> Result<bool, StoreError> {
        let m = &record.message;
        let headers = m.headers.to_string();
        let peer = m.peer.to_string();
        let body: &str = &m.body;
        let d = delivery.as_ref();
        let attempts = d
            .map(|d| i32::try_from(d.attempts).unwrap_or(i32::MAX))
            .unwrap_or(0);
        let state = d.map(|d| d.state.as_str());
        let next_attempt_at = d.and_then(|d| d.next_attempt_at.as_deref());
        let last_error = d.and_then(|d| d.last_error.as_deref());
        let delivered_at = d.and_then(|d| d.delivered_at.as_deref());
        let upstream_headers = d.and_then(|d| d.upstream_headers.as_deref());
        let mut params = message_params(m, &headers, &peer, &body);
        params.extend_from_slice(&[
            &state,
            &attempts,
            &next_attempt_at,
            &last_error,
            &delivered_at,
            &upstream_headers,
        ]);
        let changed = self.execute(sql::COPY_MESSAGE, &params).await?;
        Ok(changed > 0)
    }

    async fn copy_outcome(&self, o: RequestOutcome) -> Result<bool, StoreError> {
        let status = i32::from(o.status);
        let changed = self
            .execute(
                sql::COPY_OUTCOME,
                &[
                    &o.request_id,
                    &o.state.as_str(),
                    &status,
                    &o.response,
                    &o.reference,
                    &o.interaction,
                    &o.recorded_at,
                    &o.body_sha256,
                ],
            )
            .await?;
        Ok(changed > 0)
    }
}

/// A message's own columns, `$1` to `$11` of the statements that insert one; `headers`,
/// `peer` and `body` are its JSON columns and body as text.
fn message_params<'a>(
    m: &'a NewMessage,
    headers: &'a String,
    peer: &'a String,
    body: &'a &'a str,
) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
    vec![
        &m.id,
        &m.received_at,
        &m.request_id,
        &m.correlation_id,
        &m.bundle_id,
        &m.event,
        &m.reason,
        &m.target,
        headers,
        peer,
        body,
    ]
}
