//! The durable store: the embedded inbox of accepted messages and the de-duplication
//! records, in one SQLite database (WAL, `synchronous = FULL`).
//!
//! All writes go through one writer thread that commits whatever is queued in a single
//! transaction (group commit): a commit that returns has been fsync'd, and concurrent
//! requests share the fsync instead of queueing behind one another.

mod error;
mod records;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

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
            .submit(Job::InsertMessage(Box::new(message), tx))
            .await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Durably records how a de-duplicated request ended.
    pub async fn record_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .submit(Job::RecordOutcome(Box::new(outcome), tx))
            .await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The recorded outcome of an earlier request with this `X-Request-Id`, if any.
    pub async fn find_outcome(&self, request_id: uuid::Uuid) -> Result<Option<RequestOutcome>, StoreError> {
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
