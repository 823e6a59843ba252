//! Copying the WAL's pages into the database file (the checkpoint) off the commit path.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1 000 pages: that
//! commit, every acknowledgement waiting for it and every request queued behind it wait
//! for the pages to be copied and the database file fsync'd (10–15 ms under load, several
//! times the commit itself). Here the writer's connection only counts the WAL's pages (a
//! WAL hook, which replaces the automatic checkpoint), and a thread of its own, on its own
//! connection, runs a PASSIVE checkpoint once the WAL passes [`CHECKPOINT_PAGES`]: it never
//! blocks the writer, and copies every page no reader still needs.
//!
//! Durability does not depend on it: a commit is durable once its WAL frames are fsync'd;
//! a checkpoint that fails leaves them in the WAL, where every reader finds them, and the
//! next one retries.
//!
//! SQLite restarts the WAL from its beginning only at a write transaction that starts with
//! the whole WAL checkpointed, which a checkpoint running beside a busy writer seldom
//! leaves it. So once the WAL passes [`RESTART_PAGES`], the writer checkpoints between two
//! batches itself ([`Checkpoints::after_commit`]): it copies only what the background run
//! had not, and its next commit starts the WAL again. The WAL's file stays a bounded size.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::store::StoreError;

/// WAL pages after which the background thread checkpoints: SQLite's own default.
pub(super) const CHECKPOINT_PAGES: i32 = 1000;
/// WAL pages after which the writer checkpoints itself, so that the WAL restarts.
pub(super) const RESTART_PAGES: i32 = 2 * CHECKPOINT_PAGES;

thread_local! {
    /// The WAL's size in pages after the last commit on this thread's writer connection. A
    /// WAL hook is a plain function; the writer connection is used only on its own thread.
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn count_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The writer's side: the count of WAL pages, and the background thread to wake.
pub(super) struct Checkpoints {
    wake: mpsc::SyncSender<()>,
}

impl Checkpoints {
    /// Replaces `writer`'s automatic checkpoint with the page count (kept by the thread
    /// that commits on it, the writer's), and starts the background thread on
    /// `checkpointer`, a connection of its own; that thread ends when this is dropped.
    pub(super) fn start(
        writer: &Connection,
        checkpointer: Connection,
        path: &Path,
    ) -> Result<Self, StoreError> {
        writer.wal_hook(Some(count_pages));
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let at = path.to_owned();
        std::thread::Builder::new()
            .name("inbox-checkpoint".into())
            .spawn(move || {
                for () in woken {
                    if let Err(e) = checkpoint(&checkpointer) {
                        tracing::warn!(path = %at.display(), error = %e, "background WAL checkpoint failed; the next one retries");
                    }
                }
            })
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("inbox-checkpoint thread"),
                source,
            })?;
        Ok(Self { wake })
    }

    /// After a commit (and its acknowledgements): wakes the background checkpoint once the
    /// WAL passed [`CHECKPOINT_PAGES`], and past [`RESTART_PAGES`] checkpoints on `writer`
    /// so that its next commit restarts the WAL.
    pub(super) fn after_commit(&self, writer: &Connection, path: &Path) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages >= RESTART_PAGES {
            match checkpoint(writer) {
                // Busy: the background run holds the checkpoint; the next batch tries again.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "WAL checkpoint failed; the next batch retries");
                }
            }
        } else if pages >= CHECKPOINT_PAGES {
            // Full: a wake-up is already pending, which covers this commit too.
            let _ = self.wake.try_send(());
        }
    }
}

/// What one PASSIVE checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpointed {
    /// Another checkpoint was running: nothing was done.
    pub(super) busy: bool,
    /// Pages in the WAL.
    pub(super) log: i64,
    /// Of those, pages now in the database file.
    pub(super) copied: i64,
}

/// Runs a PASSIVE checkpoint on `conn`: it waits for no reader or writer.
pub(super) fn checkpoint(conn: &Connection) -> rusqlite::Result<Checkpointed> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpointed {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use rusqlite::OpenFlags;

    use super::super::schema;
    use super::*;

    fn pages() -> i32 {
        WAL_PAGES.with(Cell::get)
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// One commit of about `n` pages (rows of 4 000 bytes, one per 4 KiB page).
    fn commit_pages(conn: &Connection, n: usize) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..n {
            conn.execute("INSERT INTO t VALUES (randomblob(4000))", [])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn commits_leave_the_checkpoint_to_the_background_and_the_wal_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.db");
        schema::prepare_file(&path).unwrap();
        let writer = schema::open(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
        writer.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let checkpointer = schema::open(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
        let checkpoints = Checkpoints::start(&writer, checkpointer, &path).unwrap();
        let before = file_len(&path);

        // Past SQLite's automatic checkpoint, which would have copied the pages into the
        // database file inside this commit: the commit only counted them.
        commit_pages(&writer, CHECKPOINT_PAGES as usize + 200);
        assert!(pages() > CHECKPOINT_PAGES, "the WAL holds {} pages", pages());
        assert_eq!(file_len(&path), before, "the commit checkpointed nothing");

        // Woken after the commit, the background thread copies them.
        checkpoints.after_commit(&writer, &path);
        let copied = before + (CHECKPOINT_PAGES as u64) * 4096;
        let deadline = Instant::now() + Duration::from_secs(20);
        while file_len(&path) < copied {
            assert!(Instant::now() < deadline, "no background checkpoint");
            std::thread::sleep(Duration::from_millis(10));
        }

        // Once the background run is done (a checkpoint of the test's own finds none
        // running) and every page is in the database file, so that the next commit starts
        // the WAL afresh: past RESTART_PAGES, the writer checkpoints itself, between two
        // commits, and the commit after it restarts the WAL.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = checkpoint(&writer).unwrap();
            if !done.busy && done.copied == done.log {
                break;
            }
            assert!(Instant::now() < deadline, "the background checkpoint never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
        commit_pages(&writer, RESTART_PAGES as usize);
        assert!(pages() >= RESTART_PAGES, "the WAL holds {} pages", pages());
        checkpoints.after_commit(&writer, &path);
        commit_pages(&writer, 1);
        assert!(pages() < 10, "the WAL was not restarted: {} pages", pages());
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, i64::from(CHECKPOINT_PAGES + 200 + RESTART_PAGES + 1));
    }
}
