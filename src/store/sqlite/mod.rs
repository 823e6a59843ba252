//! The embedded backend: one SQLite database (WAL, `synchronous = FULL`) for one instance.
//!
//! All writes go through one writer thread that commits whatever is queued in a single
//! transaction (group commit): a commit that returns has been fsync'd, and concurrent
//! requests share the fsync instead of queueing behind one another. Reads use a second
//! connection on its own thread (`reader.rs`), except the de-duplication lookup of each
//! state-changing request, a point read run where it is asked for on a third connection.
//! `X-Request-Id` claims live in memory: one process owns the file, and a crash releases
//! them.

mod checkpoint;
mod delivery;
mod reader;
mod records;
mod schema;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::backend::{Backend, ClaimFound, CopiedDelivery, QueuedDelivery};
use super::{
    Delivery, DeliveryBacklog, DeliveryStatus, Finish, Inserted, MessageRecord, MessageSummary, NewMessage,
    RequestOutcome, StoreError, timestamp,
};
use reader::Reader;
use writer::{Job, Writer};

/// Most rows one prune or purge job deletes, so that a large one never holds up inbox
/// commits for long.
pub(super) const PRUNE_CHUNK: u32 = writer::PRUNE_CHUNK;

/// The SQLite backend.
pub(super) struct Sqlite {
    path: PathBuf,
    /// `None` for a read-only view (the `inbox` reading commands).
    writer: Option<Writer>,
    reader: Reader,
    /// For the de-duplication lookup every state-changing request makes, run on the calling
    /// runtime thread: a point read of the primary key's hot pages takes microseconds, less
    /// than the two thread switches of a hop to the reader. Used only when free (the reader
    /// answers otherwise); `None` on a read-only view, which claims nothing.
    lookup: Option<Mutex<Connection>>,
    claims: Mutex<HashSet<Uuid>>,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, with the parent directory made
    /// private to this user, and starts the writer thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        schema::prepare_file(path)?;
        let writer_conn = schema::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        schema::migrate(&writer_conn, path)?;
        let reader = schema::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let lookup = schema::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let checkpointer = schema::open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let writer = Writer::start(writer_conn, checkpointer, path.to_owned())?;
        let mut sqlite = Self::with(path, Some(writer), reader)?;
        sqlite.lookup = Some(Mutex::new(lookup));
        Ok(sqlite)
    }

    /// Opens an existing database for reading only, without a writer.
    pub(super) fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                database: path.display().to_string(),
            });
        }
        let conn = schema::open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        schema::check_version(&conn, path)?;
        Self::with(path, None, conn)
    }

    fn with(path: &Path, writer: Option<Writer>, reader: Connection) -> Result<Self, StoreError> {
        Ok(Self {
            path: path.to_owned(),
            writer,
            reader: Reader::start(reader, path)?,
            lookup: None,
            claims: Mutex::new(HashSet::new()),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up an in-memory claim at once.
    pub(super) fn release_now(&self, request_id: Uuid) {
        self.claims().remove(&request_id);
    }

    fn writer(&self) -> Result<&Writer, StoreError> {
        self.writer.as_ref().ok_or_else(|| StoreError::ReadOnly {
            database: self.path.display().to_string(),
        })
    }

    /// Runs a job in the group commit and waits for its reply (sent after the commit).
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer()?.submit(job(tx)).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a write in the group commit; returns its value once durable.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The value travels beside the job, and is handed out only if the commit stood.
        let slot = Arc::new(Mutex::new(None));
        let filled = slot.clone();
        self.submit(|tx| {
            Job::Write(
                Box::new(move |conn| {
                    let value = write(conn)?;
                    *filled.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
                    Ok(0)
                }),
                tx,
            )
        })
        .await?;
        let value = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        value.ok_or(StoreError::WriterGone)
    }

    /// Runs a read on the read connection's thread, off the runtime threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.reader.read(read).await
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // The set holds plain ids; a panic while it was held cannot leave it inconsistent.
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Backend for Sqlite {
    fn shared(&self) -> bool {
        false
    }

    async fn insert_message(
        &self,
        message: NewMessage,
        delivery: Option<QueuedDelivery>,
        outcome: Option<RequestOutcome>,
    ) -> Result<Inserted, StoreError> {
        let request_id = message.request_id;
        let recording = outcome.is_some();
        let inserted = self
            .submit(|tx| {
                Job::InsertMessage(
                    Box::new(writer::Insert {
                        message,
                        delivery,
                        outcome,
                    }),
                    tx,
                )
            })
            .await;
        if recording && matches!(inserted, Ok(Inserted::New(_))) {
            // The outcome is committed: a retry finds it from now on.
            self.claims().remove(&request_id);
        }
        inserted
    }

    async fn claim_request(
        &self,
        request_id: Uuid,
        _body_sha256: &str,
        _lease: Duration,
    ) -> Result<ClaimFound, StoreError> {
        if !self.claims().insert(request_id) {
            return Ok(ClaimFound::InProgress);
        }
        let token = Uuid::new_v4();
        let inline = self.lookup.as_ref().and_then(|l| l.try_lock().ok()).map(|conn| {
            records::find_outcome(&conn, request_id).map_err(|e| StoreError::sqlite(&self.path, e))
        });
        let found = match inline {
            Some(found) => found,
            None => self.find_outcome(request_id).await,
        };
        match found {
            Ok(None) => Ok(ClaimFound::Claimed { token }),
            Ok(Some(outcome)) => {
                self.claims().remove(&request_id);
                Ok(ClaimFound::Recorded(outcome))
            }
            Err(e) => {
                self.claims().remove(&request_id);
                Err(e)
            }
        }
    }

    async fn renew_claim(
        &self,
        request_id: Uuid,
        _token: Uuid,
        _lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.claims().contains(&request_id))
    }

    async fn release_claim(&self, request_id: Uuid, _token: Uuid) -> Result<(), StoreError> {
        self.claims().remove(&request_id);
        Ok(())
    }

    async fn record_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError> {
        let request_id = outcome.request_id;
        let recorded = self.submit(|tx| Job::RecordOutcome(Box::new(outcome), tx)).await;
        self.claims().remove(&request_id);
        recorded
    }

    async fn find_outcome(&self, request_id: Uuid) -> Result<Option<RequestOutcome>, StoreError> {
        self.read(move |conn| records::find_outcome(conn, request_id))
            .await
    }

    async fn prune_outcomes(&self, cutoff: String, limit: u32) -> Result<u64, StoreError> {
        self.write(move |conn| records::prune_outcomes(conn, &cutoff, limit))
            .await
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<(Delivery, u64)>, StoreError> {
        let started = time::OffsetDateTime::now_utc();
        let now = timestamp(started);
        let until = timestamp(started + lease);
        self.write(move |conn| {
            let due = delivery::due(conn, &now, limit)?;
            let mut claimed = Vec::with_capacity(due.len());
            for d in due {
                let attempt = delivery::start_attempt(conn, d.seq, &now, &until)?;
                claimed.push((d, attempt));
            }
            Ok(claimed)
        })
        .await
    }

    async fn next_delivery_due(&self) -> Result<Option<String>, StoreError> {
        self.read(delivery::next_due).await
    }

    async fn finish_attempt(&self, seq: i64, attempt: u64, finish: Finish) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::finish_attempt(conn, seq, attempt, &finish))
            .await
    }

    async fn recover_deliveries(&self, now: String) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::recover(conn, &now)).await
    }

    async fn retry_dead_letter(&self, id: String, now: String) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::retry(conn, &id, &now)).await
    }

    async fn purge_delivered(&self, cutoff: String, limit: u32) -> Result<u64, StoreError> {
        self.write(move |conn| delivery::purge(conn, &cutoff, limit))
            .await
    }

    async fn delivery_status(&self, id: String) -> Result<Option<Option<DeliveryStatus>>, StoreError> {
        self.read(move |conn| delivery::status(conn, &id)).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)))
            .await
    }

    async fn delivery_backlog(&self) -> Result<DeliveryBacklog, StoreError> {
        self.read(delivery::backlog).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.submit(Job::Ping).await
    }

    async fn list(&self, limit: u32) -> Result<Vec<MessageSummary>, StoreError> {
        self.read(move |conn| records::list(conn, limit)).await
    }

    async fn get(&self, id: String) -> Result<Option<MessageRecord>, StoreError> {
        self.read(move |conn| records::get(conn, &id)).await
    }

    async fn page(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(MessageRecord, Option<CopiedDelivery>)>, StoreError> {
        self.read(move |conn| records::page(conn, after, limit)).await
    }

    async fn outcomes(&self) -> Result<Vec<RequestOutcome>, StoreError> {
        self.read(records::outcomes).await
    }

    async fn copy_message(
        &self,
        record: MessageRecord,
        delivery: Option<CopiedDelivery>,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| records::copy_message(conn, &record, delivery.as_ref()))
            .await
    }

    async fn copy_outcome(&self, outcome: RequestOutcome) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO requests (request_id, state, status, response, reference, interaction, recorded_at, body_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(request_id) DO NOTHING",
                params![
                    outcome.request_id.to_string(),
                    outcome.state.as_str(),
                    outcome.status,
                    outcome.response,
                    outcome.reference,
                    outcome.interaction,
                    outcome.recorded_at,
                    outcome.body_sha256
                ],
            )
            .map(|n| n > 0)
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! What the store's tests look at beneath the interface.
    pub(crate) use super::schema::MIGRATIONS;
}
