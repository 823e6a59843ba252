//! The read connection's own thread. Reads queue to it and it answers them in turn, so a
//! request's de-duplication lookup costs one queue hop: under load the thread finds the
//! next read waiting instead of a blocking-pool task being started and woken for each.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// A read as a closure over the connection; it sends its own reply.
type Read = Box<dyn FnOnce(&Connection) + Send>;

pub(super) struct Reader {
    queue: mpsc::Sender<Read>,
    path: PathBuf,
}

impl Reader {
    /// Starts the thread owning `conn`; it ends when the reader is dropped.
    pub(super) fn start(conn: Connection, path: &Path) -> Result<Self, StoreError> {
        let (queue, reads) = mpsc::channel::<Read>();
        std::thread::Builder::new()
            .name("inbox-reader".into())
            .spawn(move || {
                for read in reads {
                    read(&conn);
                }
            })
            .map_err(|source| StoreError::Io {
                path: PathBuf::from("inbox-reader thread"),
                source,
            })?;
        Ok(Self {
            queue,
            path: path.to_owned(),
        })
    }

    /// Runs `read` on the read connection and waits for its result.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let job: Read = Box::new(move |conn| {
            // A dropped receiver means the request was abandoned; nothing to undo.
            let _ = tx.send(read(conn).map_err(|e| StoreError::sqlite(&path, e)));
        });
        self.queue.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}
