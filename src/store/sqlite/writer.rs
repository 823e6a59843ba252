//! The single writer thread and its group commit.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoints;
use super::records;
use crate::store::backend::QueuedDelivery;
use crate::store::{Inserted, NewMessage, RequestOutcome, StoreError};

/// Most rows one prune job deletes, so that a large prune never holds up inbox commits for
/// long.
pub(super) const PRUNE_CHUNK: u32 = 500;
/// Most jobs committed together in one transaction.
const MAX_BATCH: usize = 256;
/// Jobs queued before submitters wait (backpressure rather than unbounded memory).
const QUEUE_DEPTH: usize = 4096;

/// A write as a closure over the open transaction, returning a count.
pub(super) type Write = Box<dyn FnOnce(&Connection) -> rusqlite::Result<u64> + Send>;

/// A message to insert, with the upstream headers when it is to be relayed and the
/// request's outcome when it is recorded with the message.
pub(super) struct Insert {
    pub(super) message: NewMessage,
    pub(super) delivery: Option<QueuedDelivery>,
    pub(super) outcome: Option<RequestOutcome>,
}

pub(super) enum Job {
    InsertMessage(Box<Insert>, oneshot::Sender<Result<Inserted, StoreError>>),
    Write(Write, oneshot::Sender<Result<u64, StoreError>>),
    RecordOutcome(Box<RequestOutcome>, oneshot::Sender<Result<(), StoreError>>),
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`, with its checkpoints run on `checkpointer`.
    pub(super) fn start(
        conn: Connection,
        checkpointer: Connection,
        path: PathBuf,
    ) -> Result<Self, StoreError> {
        let checkpoints = Checkpoints::start(&conn, checkpointer, &path)?;
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || run(conn, checkpoints, path, jobs))
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("inbox-writer thread"),
                source,
            })?;
        Ok(Self { queue })
    }

    pub(super) async fn submit(&self, job: Job) -> Result<(), StoreError> {
        // The queue is bounded: when the disk cannot keep up, submitters wait here (without
        // blocking a runtime thread), and the request deadline still applies.
        self.queue.send(job).await.map_err(|_| StoreError::WriterGone)
    }
}

fn run(mut conn: Connection, checkpoints: Checkpoints, path: PathBuf, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        // Woken by the first job: let runnable threads (the runtime's, submitting the jobs
        // of requests already read) run first, so that they join this commit rather than
        // wait for the next. On a busy core this makes the group commit several jobs instead
        // of one or two (a commit and fsync less per job); with nothing else runnable it
        // returns at once.
        std::thread::yield_now();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &path, batch);
        checkpoints.after_commit(&conn, &path);
    }
}

/// Applies every job in one transaction, each inside its own savepoint so that one bad row
/// fails alone. Replies go out only after the commit (and its fsync) returned.
fn commit_batch(conn: &mut Connection, path: &Path, batch: Vec<Job>) {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "inbox transaction could not start");
            let message = e.to_string();
            for job in batch {
                apply_failed(job).fail(path, &message);
            }
            return;
        }
    };
    let pending: Vec<Pending> = batch.into_iter().map(|job| apply(&mut tx, job)).collect();
    match tx.commit() {
        Ok(()) => pending.into_iter().for_each(|p| p.send(path)),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "inbox commit failed");
            let message = e.to_string();
            pending.into_iter().for_each(|p| p.fail(path, &message));
        }
    }
}

/// A job applied inside the open transaction, waiting for the commit to reply.
enum Pending {
    Insert(
        oneshot::Sender<Result<Inserted, StoreError>>,
        rusqlite::Result<Inserted>,
    ),
    Unit(oneshot::Sender<Result<(), StoreError>>, rusqlite::Result<()>),
    Count(oneshot::Sender<Result<u64, StoreError>>, rusqlite::Result<u64>),
}

impl Pending {
    /// Replies with the job's own result (the commit succeeded). A dropped receiver means
    /// the request was abandoned; the write still stands.
    fn send(self, path: &Path) {
        match self {
            Self::Insert(tx, r) => drop(tx.send(r.map_err(|e| StoreError::sqlite(path, e)))),
            Self::Unit(tx, r) => drop(tx.send(r.map_err(|e| StoreError::sqlite(path, e)))),
            Self::Count(tx, r) => drop(tx.send(r.map_err(|e| StoreError::sqlite(path, e)))),
        }
    }

    /// Replies with the batch-wide failure (the commit failed: nothing of the batch stands).
    fn fail(self, path: &Path, message: &str) {
        let err = || StoreError::Commit {
            database: path.display().to_string(),
            message: message.to_owned(),
        };
        match self {
            Self::Insert(tx, _) => drop(tx.send(Err(err()))),
            Self::Unit(tx, _) => drop(tx.send(Err(err()))),
            Self::Count(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

fn apply(tx: &mut rusqlite::Transaction<'_>, job: Job) -> Pending {
    match job {
        Job::InsertMessage(insert, reply) => Pending::Insert(
            reply,
            in_savepoint(tx, |sp| {
                let Insert {
                    message: m,
                    delivery,
                    outcome,
                } = &*insert;
                let inserted = records::insert_message(sp, m)?;
                if let Inserted::New(_) = &inserted {
                    if let Some(queued) = delivery {
                        super::delivery::queue(sp, m.request_id, &queued.headers, &queued.at)?;
                    }
                    if let Some(outcome) = outcome {
                        records::record_outcome(sp, outcome)?;
                    }
                }
                Ok(inserted)
            }),
        ),
        Job::Write(write, reply) => Pending::Count(reply, in_savepoint(tx, write)),
        Job::RecordOutcome(o, reply) => {
            Pending::Unit(reply, in_savepoint(tx, |sp| records::record_outcome(sp, &o)))
        }
        Job::Ping(reply) => Pending::Unit(
            reply,
            in_savepoint(tx, |sp| {
                sp.execute_batch("CREATE TEMP TABLE IF NOT EXISTS ping(x); DELETE FROM ping;")
            }),
        ),
    }
}

fn apply_failed(job: Job) -> Pending {
    // Only `fail` is ever called on these, which ignores the job's own result.
    match job {
        Job::InsertMessage(_, reply) => Pending::Insert(reply, Err(rusqlite::Error::InvalidQuery)),
        Job::Write(_, reply) => Pending::Count(reply, Err(rusqlite::Error::InvalidQuery)),
        Job::RecordOutcome(_, reply) | Job::Ping(reply) => {
            Pending::Unit(reply, Err(rusqlite::Error::InvalidQuery))
        }
    }
}

/// Runs `f` in a savepoint: on error only this job is rolled back. The savepoint statements
/// are cached (rusqlite's `Savepoint` parses its SQL anew each time, and the writer opens
/// one per job).
fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let run = |sql: &str| tx.prepare_cached(sql)?.execute([]).map(drop);
    run("SAVEPOINT job")?;
    let result = f(tx).and_then(|value| run("RELEASE job").map(|()| value));
    if result.is_err() {
        // As rusqlite's Savepoint does when dropped uncommitted; the job's own error is the
        // one reported.
        let _ = run("ROLLBACK TO job");
        let _ = run("RELEASE job");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    type Reply = oneshot::Receiver<Result<u64, StoreError>>;

    fn count(conn: &Connection, x: i64) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t WHERE x = ?1", [x], |r| r.get(0))
            .unwrap()
    }

    /// A job inserting `x`, failing afterwards when `fail` is set.
    fn insert(x: i64, fail: bool) -> (Job, Reply) {
        let (tx, rx) = oneshot::channel();
        let write: Write = Box::new(move |c| {
            c.execute("INSERT INTO t VALUES (?1)", [x])?;
            if fail {
                return Err(rusqlite::Error::InvalidQuery);
            }
            Ok(1)
        });
        (Job::Write(write, tx), rx)
    }

    #[test]
    fn a_failing_job_is_rolled_back_alone_and_the_rest_of_its_batch_commits() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        // Twice: the second batch runs on the savepoint statements cached by the first.
        for base in [0, 10] {
            let (first, mut first_reply) = insert(base + 1, false);
            let (bad, mut bad_reply) = insert(base + 2, true);
            let (last, mut last_reply) = insert(base + 3, false);
            commit_batch(&mut conn, Path::new("test.db"), vec![first, bad, last]);
            assert_eq!(first_reply.try_recv().unwrap().unwrap(), 1);
            assert!(bad_reply.try_recv().unwrap().is_err());
            assert_eq!(last_reply.try_recv().unwrap().unwrap(), 1);
            // The failed job's own row is gone; the rows of the jobs around it are committed.
            let counts = (
                count(&conn, base + 1),
                count(&conn, base + 2),
                count(&conn, base + 3),
            );
            assert_eq!(counts, (1, 0, 1));
        }
        assert!(conn.is_autocommit(), "no transaction or savepoint is left open");
    }
}
