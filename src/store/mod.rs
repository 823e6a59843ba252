//! The durable store: the inbox of accepted messages, the de-duplication records and the
//! relay delivery state, behind one interface ([`backend`]) with two implementations:
//!
//! - SQLite (`sqlite/`), embedded, for one instance: WAL, `synchronous = FULL`, one writer
//!   thread with group commit;
//! - PostgreSQL (`postgres/`), for several replicas sharing one database: leased claims on
//!   `X-Request-Id`s and deliveries, decided by the database.
//!
//! Everything above this module (the handlers, the relay worker, the `inbox` commands,
//! readiness and metrics) uses only [`Store`].

mod backend;
mod claim;
mod delivery;
mod error;
mod postgres;
mod records;
mod settings;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use backend::{Backend, ClaimFound, QueuedDelivery};
pub(crate) use claim::{Claim, RequestClaim, Settlement};
pub(crate) use delivery::{Delivery, Finish};
pub use delivery::{DeliveryBacklog, DeliveryState, DeliveryStatus};
pub use error::StoreError;
pub use records::{MessageRecord, MessageSummary, NewMessage};
pub(crate) use records::{OutcomeState, RequestOutcome, timestamp};
pub use settings::{PostgresSettings, PostgresTls, PostgresUrl, StoreSettings};

/// Most rows one prune or purge step deletes, so that a large one never holds up inbox
/// commits for long.
const CHUNK: u32 = sqlite::PRUNE_CHUNK;
/// How long the in-memory claims of the embedded store are taken to last (never expire).
const LOCAL_LEASE: Duration = Duration::from_secs(3600);
/// Most messages one page of an export or a migration reads.
const PAGE: u32 = 200;

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// The claim lease on a shared store.
    claim_lease: Duration,
    /// Woken when a message is queued for delivery.
    queued: Arc<tokio::sync::Notify>,
}

enum Engine {
    // Boxed: the SQLite backend holds its connections inline, several times the size of
    // the PostgreSQL one's pool handle.
    Sqlite(Box<sqlite::Sqlite>),
    Postgres(postgres::Postgres),
}

/// Calls the same [`Backend`] method on whichever engine this store runs.
macro_rules! on_engine {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.inner.engine {
            Engine::Sqlite($backend) => $call,
            Engine::Postgres($backend) => $call,
        }
    };
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.describe())
            .finish()
    }
}

/// What inserting a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Committed under this receiver reference.
    New(String),
    /// A message with the same `X-Request-Id` was already committed, under this reference.
    AlreadyPresent(String),
}

impl Store {
    fn with(engine: Engine, claim_lease: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                claim_lease,
                queued: Arc::new(tokio::sync::Notify::new()),
            }),
        }
    }

    /// Opens (creating if needed) the embedded SQLite database at `path`, with the parent
    /// directory made private to this user, and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::with(
            Engine::Sqlite(Box::new(sqlite::Sqlite::open(path)?)),
            LOCAL_LEASE,
        ))
    }

    /// Opens an existing SQLite database for reading only (the `inbox` reading commands).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::with(
            Engine::Sqlite(Box::new(sqlite::Sqlite::open_read_only(path)?)),
            LOCAL_LEASE,
        ))
    }

    /// Opens the configured store for serving: creates the SQLite file, or connects to
    /// PostgreSQL; either way brings the schema up to date, refusing a schema newer than
    /// this build knows.
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        match settings {
            StoreSettings::Sqlite { path } => Self::open(path),
            StoreSettings::Postgres(pg) => Ok(Self::with(
                Engine::Postgres(postgres::Postgres::connect(pg, true).await?),
                pg.claim_lease,
            )),
        }
    }

    /// Opens the configured store for a support command, never creating or migrating it:
    /// the SQLite file must exist (and is opened read-only when `read_only`); PostgreSQL must
    /// be at this build's schema.
    pub async fn open_existing(settings: &StoreSettings, read_only: bool) -> Result<Self, StoreError> {
        match settings {
            StoreSettings::Sqlite { path } if read_only => Self::open_read_only(path),
            StoreSettings::Sqlite { path } if !path.exists() => Err(StoreError::Missing {
                database: path.display().to_string(),
            }),
            StoreSettings::Sqlite { path } => Self::open(path),
            StoreSettings::Postgres(pg) => Ok(Self::with(
                Engine::Postgres(postgres::Postgres::connect(pg, false).await?),
                pg.claim_lease,
            )),
        }
    }

    /// The database, for messages: the SQLite file, or the PostgreSQL URL without password.
    pub fn describe(&self) -> String {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.path().display().to_string(),
            Engine::Postgres(p) => p.database().to_owned(),
        }
    }

    /// The SQLite file, when this store is the embedded one.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.engine {
            Engine::Sqlite(s) => Some(s.path()),
            Engine::Postgres(_) => None,
        }
    }

    /// Whether several replicas may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        on_engine!(self, b => b.shared())
    }

    /// Commits an accepted message durably. Idempotent on `X-Request-Id`.
    pub async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        self.accept(message, None, None).await
    }

    /// Commits an accepted message durably and queues it for delivery to the upstream by the
    /// relay worker, with the request `headers` to send. Idempotent on `X-Request-Id`.
    pub async fn insert_for_delivery(
        &self,
        message: NewMessage,
        headers: Vec<(String, String)>,
    ) -> Result<Inserted, StoreError> {
        self.accept(message, Some(headers), None).await
    }

    /// Commits an accepted message durably, queued for delivery with `delivery_headers` when
    /// given, and, with a `settlement` for this message's `X-Request-Id`, the request's
    /// de-duplication outcome in the same transaction (marked on the settlement once
    /// committed). Idempotent on `X-Request-Id`: a message already present records nothing.
    pub(crate) async fn accept(
        &self,
        message: NewMessage,
        delivery_headers: Option<Vec<(String, String)>>,
        settlement: Option<&Settlement>,
    ) -> Result<Inserted, StoreError> {
        let queued = match delivery_headers {
            None => None,
            Some(headers) => Some(QueuedDelivery {
                headers: serde_json::to_string(&headers).map_err(|e| StoreError::Commit {
                    database: self.describe(),
                    message: e.to_string(),
                })?,
                at: timestamp(time::OffsetDateTime::now_utc()),
            }),
        };
        let relayed = queued.is_some();
        let outcome = settlement.and_then(|s| s.accepted(message.request_id, &message.id));
        let recording = outcome.is_some();
        let inserted = on_engine!(self, b => b.insert_message(message, queued, outcome).await)?;
        if let (true, Inserted::New(_), Some(settlement)) = (recording, &inserted, settlement) {
            settlement.mark_recorded();
        }
        if relayed {
            self.inner.queued.notify_one();
        }
        Ok(inserted)
    }

    /// Woken whenever a message is queued for delivery here (a permit is kept if nobody
    /// waits). Messages queued by other replicas are found by polling.
    pub(crate) fn queued(&self) -> Arc<tokio::sync::Notify> {
        self.inner.queued.clone()
    }

    /// Claims `request_id` for processing a body with hash `body_sha256`.
    pub(crate) async fn claim_request(
        &self,
        request_id: Uuid,
        body_sha256: &str,
    ) -> Result<RequestClaim, StoreError> {
        let lease = self.inner.claim_lease;
        let found = on_engine!(self, b => b.claim_request(request_id, body_sha256, lease).await)?;
        Ok(match found {
            ClaimFound::Claimed { token } => {
                RequestClaim::Claimed(Claim::new(self.clone(), request_id, token, lease))
            }
            ClaimFound::InProgress => RequestClaim::InProgress,
            ClaimFound::Recorded(outcome) => RequestClaim::Recorded(outcome),
        })
    }

    async fn renew_claim(&self, request_id: Uuid, token: Uuid, lease: Duration) -> Result<bool, StoreError> {
        on_engine!(self, b => b.renew_claim(request_id, token, lease).await)
    }

    /// Releases a claim: at once on the embedded store, in the background on a shared one.
    fn release_claim(&self, request_id: Uuid, token: Uuid) {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.release_now(request_id),
            Engine::Postgres(_) => {
                let store = self.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = on_engine!(store, b => b.release_claim(request_id, token).await) {
                            tracing::warn!(%request_id, error = %e, "could not release the claim on this X-Request-Id; it runs out with its lease");
                        }
                    });
                }
            }
        }
    }

    async fn record_claimed_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError> {
        on_engine!(self, b => b.record_outcome(outcome).await)
    }

    /// Durably records how a request ended, outside any claim.
    #[cfg(test)]
    pub(crate) async fn record_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError> {
        on_engine!(self, b => b.record_outcome(outcome).await)
    }

    /// Every recorded outcome.
    #[cfg(test)]
    pub(crate) async fn outcomes_for_test(&self) -> Vec<RequestOutcome> {
        on_engine!(self, b => b.outcomes().await).unwrap_or_default()
    }

    /// The recorded outcome of an earlier request with this `X-Request-Id`, if any.
    #[cfg(test)]
    pub(crate) async fn find_outcome(&self, request_id: Uuid) -> Result<Option<RequestOutcome>, StoreError> {
        on_engine!(self, b => b.find_outcome(request_id).await)
    }

    /// Forgets de-duplication outcomes recorded before `cutoff`, in small chunks so that
    /// inbox commits are never held up for long; returns how many.
    pub async fn prune_outcomes(&self, cutoff: time::OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = timestamp(cutoff);
        let mut total = 0;
        loop {
            let pruned = on_engine!(self, b => b.prune_outcomes(cutoff.clone(), CHUNK).await)?;
            total += pruned;
            if pruned < u64::from(CHUNK) {
                return Ok(total);
            }
        }
    }

    /// Claims up to `limit` due conversation heads for delivery, each counted as an attempt
    /// and leased for `lease`; with their attempt numbers.
    pub(crate) async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<(Delivery, u64)>, StoreError> {
        on_engine!(self, b => b.claim_deliveries(limit, lease).await)
    }

    /// When the next delivery is due, if any message waits.
    pub(crate) async fn next_delivery_due(&self) -> Result<Option<String>, StoreError> {
        on_engine!(self, b => b.next_delivery_due().await)
    }

    /// Durably records how attempt `attempt` on message `seq` ended (ignored if the message
    /// has been claimed again since).
    pub(crate) async fn finish_attempt(
        &self,
        seq: i64,
        attempt: u64,
        finish: Finish,
    ) -> Result<(), StoreError> {
        on_engine!(self, b => b.finish_attempt(seq, attempt, finish).await).map(drop)
    }

    /// Makes attempts interrupted by this process's last stop due at once; returns how many.
    /// On a shared store their leases decide instead (another replica may hold them).
    pub(crate) async fn recover_deliveries(&self, now: String) -> Result<u64, StoreError> {
        on_engine!(self, b => b.recover_deliveries(now).await)
    }

    /// Re-queues a dead letter, by receiver reference or `X-Request-Id`, with a fresh count
    /// of attempts. `Ok(false)` when there is no dead letter by that id.
    pub async fn retry_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let now = timestamp(time::OffsetDateTime::now_utc());
        let changed = on_engine!(self, b => b.retry_dead_letter(id.to_owned(), now).await)?;
        if changed > 0 {
            self.inner.queued.notify_one();
        }
        Ok(changed > 0)
    }

    /// Deletes the messages delivered before `cutoff`, in small chunks; returns how many.
    /// Pending and dead messages, and messages that are not relayed, are kept.
    pub async fn purge_delivered(&self, cutoff: time::OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = timestamp(cutoff);
        let mut total = 0;
        loop {
            let purged = on_engine!(self, b => b.purge_delivered(cutoff.clone(), CHUNK).await)?;
            total += purged;
            if purged < u64::from(CHUNK) {
                return Ok(total);
            }
        }
    }

    /// The delivery of one message, by receiver reference or `X-Request-Id`: `None` when
    /// there is no such message, `Some(None)` when it is not relayed.
    pub async fn delivery_status(&self, id: &str) -> Result<Option<Option<DeliveryStatus>>, StoreError> {
        on_engine!(self, b => b.delivery_status(id.to_owned()).await)
    }

    /// How many messages the inbox holds.
    pub async fn count(&self) -> Result<u64, StoreError> {
        on_engine!(self, b => b.count().await)
    }

    /// Relay deliveries not yet delivered: how many are pending and dead, and when the
    /// oldest pending one arrived.
    pub async fn delivery_backlog(&self) -> Result<DeliveryBacklog, StoreError> {
        on_engine!(self, b => b.delivery_backlog().await)
    }

    /// Whether the database answers a write (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(self, b => b.ping().await)
    }

    /// Messages newest first.
    pub async fn list(&self, limit: u32) -> Result<Vec<MessageSummary>, StoreError> {
        on_engine!(self, b => b.list(limit).await)
    }

    /// One message by receiver reference (or by `X-Request-Id`).
    pub async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        on_engine!(self, b => b.get(id.to_owned()).await)
    }

    /// Every message oldest first, handed to `each` one at a time, a page at a time.
    pub async fn for_each(
        &self,
        mut each: impl FnMut(MessageRecord) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let mut after = 0;
        let mut count = 0;
        loop {
            let page = on_engine!(self, b => b.page(after, PAGE).await)?;
            let full = page.len() == PAGE as usize;
            for (record, _) in page {
                after = record.seq;
                each(record).map_err(|source| StoreError::Output { source })?;
                count += 1;
            }
            if !full {
                return Ok(count);
            }
        }
    }

    /// Copies every message (with its delivery state) and every de-duplication outcome of
    /// this store into `to`, skipping what `to` already holds, so that running it again
    /// changes nothing. Copy with the receivers stopped: a message accepted during the copy
    /// may be left behind (a second run picks it up).
    pub async fn copy_to(&self, to: &Store) -> Result<CopyReport, StoreError> {
        let mut report = CopyReport::default();
        let mut after = 0;
        loop {
            let page = on_engine!(self, b => b.page(after, PAGE).await)?;
            let full = page.len() == PAGE as usize;
            for (record, delivery) in page {
                after = record.seq;
                if on_engine!(to, b => b.copy_message(record, delivery).await)? {
                    report.messages_copied += 1;
                } else {
                    report.messages_present += 1;
                }
            }
            if !full {
                break;
            }
        }
        for outcome in on_engine!(self, b => b.outcomes().await)? {
            if on_engine!(to, b => b.copy_outcome(outcome).await)? {
                report.outcomes_copied += 1;
            } else {
                report.outcomes_present += 1;
            }
        }
        Ok(report)
    }
}

/// What [`Store::copy_to`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Messages written to the target.
    pub messages_copied: u64,
    /// Messages the target already held (by `X-Request-Id`), left as they were.
    pub messages_present: u64,
    /// De-duplication outcomes written.
    pub outcomes_copied: u64,
    /// Outcomes the target already held.
    pub outcomes_present: u64,
}

#[cfg(test)]
mod tests;
