//! The durable store: the embedded inbox of accepted messages and the de-duplication
//! records, in one SQLite database (WAL, `synchronous = FULL`).
//!
//! All writes go through one writer thread that commits whatever is queued in a single
//! transaction (group commit): a commit that returns has been fsync'd, and concurrent
//! requests share the fsync instead of queueing behind one another.

mod delivery;
mod error;
mod records;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

pub(crate) use delivery::{Delivery, Finish};
pub use delivery::{DeliveryBacklog, DeliveryState, DeliveryStatus};
pub use error::StoreError;
pub use records::{MessageRecord, MessageSummary, NewMessage};
pub(crate) use records::{OutcomeState, RequestOutcome, timestamp};

use writer::{Job, Writer};

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    reader: Mutex<Connection>,
    /// Woken when a message is queued for delivery.
    queued: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
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
    /// Opens (creating if needed) the database at `path`, with the parent directory made
    /// private to this user, and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        schema::prepare_file(path)?;
        let writer_conn = schema::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        schema::migrate(&writer_conn, path)?;
        let reader = schema::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let writer = Writer::start(writer_conn, path.to_owned())?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                reader: Mutex::new(reader),
                queued: Arc::new(tokio::sync::Notify::new()),
            }),
        })
    }

    /// Opens an existing database read-only (for the `inbox` commands), without a writer.
    pub fn open_read_only(path: &Path) -> Result<ReadOnlyStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        let conn = schema::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        schema::check_version(&conn, path)?;
        Ok(ReadOnlyStore {
            path: path.to_owned(),
            conn,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits an accepted message durably. Idempotent on `X-Request-Id`.
    pub async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .submit(Job::InsertMessage(Box::new(message), None, tx))
            .await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Commits an accepted message durably and queues it for delivery to the upstream by the
    /// relay worker, with the request `headers` to send. Idempotent on `X-Request-Id`.
    pub async fn insert_for_delivery(
        &self,
        message: NewMessage,
        headers: Vec<(String, String)>,
    ) -> Result<Inserted, StoreError> {
        let headers = serde_json::to_string(&headers).map_err(|e| StoreError::Commit {
            path: self.inner.path.clone(),
            message: e.to_string(),
        })?;
        let now = timestamp(time::OffsetDateTime::now_utc());
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .submit(Job::InsertMessage(Box::new(message), Some((headers, now)), tx))
            .await?;
        let inserted = rx.await.map_err(|_| StoreError::WriterGone)??;
        self.inner.queued.notify_one();
        Ok(inserted)
    }

    /// Woken whenever a message is queued for delivery (a permit is kept if nobody waits).
    pub(crate) fn queued(&self) -> Arc<tokio::sync::Notify> {
        self.inner.queued.clone()
    }

    /// Runs a write in the group commit; returns its count once durable.
    async fn write(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<u64> + Send + 'static,
    ) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner.writer.submit(Job::Write(Box::new(write), tx)).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on the shared read connection, off the runtime threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| StoreError::WriterGone)?;
            read(&conn).map_err(|e| StoreError::sqlite(&inner.path, e))
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Up to `limit` messages due for delivery at `now`: the oldest undelivered message of
    /// each conversation, when it is pending and due.
    pub(crate) async fn due_deliveries(&self, now: String, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| delivery::due(conn, &now, limit)).await
    }

    /// When the next delivery is due, if any message waits.
    pub(crate) async fn next_delivery_due(&self) -> Result<Option<String>, StoreError> {
        self.read(delivery::next_due).await
    }

    /// Durably counts an attempt on message `seq` and leases it until `lease_until`;
    /// returns the attempt number.
    pub(crate) async fn start_attempt(
        &self,
        seq: i64,
        now: String,
        lease_until: String,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::start_attempt(conn, seq, &now, &lease_until))
            .await
    }

    /// Durably records how an attempt on message `seq` ended.
    pub(crate) async fn finish_attempt(&self, seq: i64, finish: Finish) -> Result<(), StoreError> {
        self.write(move |conn| delivery::finish_attempt(conn, seq, &finish))
            .await
            .map(drop)
    }

    /// Makes attempts interrupted by a stop or crash due at once; returns how many.
    pub(crate) async fn recover_deliveries(&self, now: String) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::recover(conn, &now)).await
    }

    /// Re-queues a dead letter, by receiver reference or `X-Request-Id`, with a fresh count
    /// of attempts. `Ok(false)` when there is no dead letter by that id.
    pub async fn retry_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let now = timestamp(time::OffsetDateTime::now_utc());
        let changed = self.write(move |conn| delivery::retry(conn, &id, &now)).await?;
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
            let cutoff = cutoff.clone();
            let purged = self
                .write(move |conn| delivery::purge(conn, &cutoff, writer::PRUNE_CHUNK))
                .await?;
            total += purged;
            if purged < u64::from(writer::PRUNE_CHUNK) {
                return Ok(total);
            }
        }
    }

    /// The delivery of one message, by receiver reference or `X-Request-Id`: `None` when
    /// there is no such message, `Some(None)` when it is not relayed.
    pub async fn delivery_status(&self, id: &str) -> Result<Option<Option<DeliveryStatus>>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| delivery::status(conn, &id)).await
    }

    /// Durably records how a de-duplicated request ended.
    pub(crate) async fn record_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .submit(Job::RecordOutcome(Box::new(outcome), tx))
            .await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The recorded outcome of an earlier request with this `X-Request-Id`, if any.
    pub(crate) async fn find_outcome(
        &self,
        request_id: uuid::Uuid,
    ) -> Result<Option<RequestOutcome>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| StoreError::WriterGone)?;
            records::find_outcome(&conn, request_id).map_err(|e| StoreError::sqlite(&inner.path, e))
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Forgets de-duplication outcomes recorded before `cutoff`, in small chunks so that
    /// inbox commits are never held up for long; returns how many.
    pub async fn prune_outcomes(&self, cutoff: time::OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = timestamp(cutoff);
        let mut total = 0;
        loop {
            let (tx, rx) = oneshot::channel();
            self.inner
                .writer
                .submit(Job::PruneOutcomes(cutoff.clone(), tx))
                .await?;
            let pruned = rx.await.map_err(|_| StoreError::WriterGone)??;
            total += pruned;
            if pruned < u64::from(writer::PRUNE_CHUNK) {
                return Ok(total);
            }
        }
    }

    /// How many messages the inbox holds.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| StoreError::WriterGone)?;
            conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
                .map_err(|e| StoreError::sqlite(&inner.path, e))
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Relay deliveries not yet delivered: how many are pending and dead, and when the
    /// oldest pending one arrived.
    pub async fn delivery_backlog(&self) -> Result<DeliveryBacklog, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| StoreError::WriterGone)?;
            delivery::backlog(&conn).map_err(|e| StoreError::sqlite(&inner.path, e))
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Whether the database answers a write (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner.writer.submit(Job::Ping(tx)).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// A read-only view for support commands.
#[derive(Debug)]
pub struct ReadOnlyStore {
    path: PathBuf,
    conn: Connection,
}

impl ReadOnlyStore {
    /// Messages newest first.
    pub fn list(&self, limit: u32) -> Result<Vec<MessageSummary>, StoreError> {
        records::list(&self.conn, limit).map_err(|e| StoreError::sqlite(&self.path, e))
    }

    /// One message by receiver reference (or by `X-Request-Id`).
    pub fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        records::get(&self.conn, id).map_err(|e| StoreError::sqlite(&self.path, e))
    }

    /// The delivery of one message, by receiver reference or `X-Request-Id`: `None` when
    /// there is no such message, `Some(None)` when it is not relayed.
    pub fn delivery_status(&self, id: &str) -> Result<Option<Option<DeliveryStatus>>, StoreError> {
        delivery::status(&self.conn, id).map_err(|e| StoreError::sqlite(&self.path, e))
    }

    /// Every message oldest first, handed to `each` one at a time.
    pub fn for_each(
        &self,
        mut each: impl FnMut(MessageRecord) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM messages ORDER BY seq ASC",
                records::MESSAGE_COLUMNS
            ))
            .map_err(|e| StoreError::sqlite(&self.path, e))?;
        let mut rows = stmt.query([]).map_err(|e| StoreError::sqlite(&self.path, e))?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(|e| StoreError::sqlite(&self.path, e))? {
            let record = records::message_from_row(row).map_err(|e| StoreError::sqlite(&self.path, e))?;
            each(record).map_err(|source| StoreError::Output { source })?;
            count += 1;
        }
        Ok(count)
    }

    /// How many messages are stored.
    pub fn count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM messages", params![], |r| r.get(0))
            .optional()
            .map(|c| c.unwrap_or(0))
            .map_err(|e| StoreError::sqlite(&self.path, e))
    }
}

#[cfg(test)]
mod tests;
