//! Store errors, each naming the database file.

use std::path::PathBuf;

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory or file could not be created or secured.
    #[error("inbox database {path}: {source}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    #[error("inbox database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A group commit failed: nothing of its batch was stored.
    #[error("inbox database {path}: commit failed: {message}")]
    Commit {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// The database was written by a newer version of this program.
    #[error("inbox database {path} has schema version {found}; this build knows up to {known}")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A read-only command was pointed at a database that does not exist.
    #[error("inbox database {path} does not exist")]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The writer thread has stopped (the process is shutting down or a commit panicked).
    #[error("the inbox writer has stopped")]
    WriterGone,
    /// Writing an export failed.
    #[error("writing the export: {source}")]
    Output {
        /// The cause.
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        Self::Sqlite {
            path: path.to_owned(),
            source,
        }
    }
}
