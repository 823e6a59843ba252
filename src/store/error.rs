//! Store errors, each naming the database: the SQLite file, or the PostgreSQL URL without
//! its password.

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
    #[error("inbox database {database}: {source}")]
    Sqlite {
        /// The database file.
        database: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// PostgreSQL refused an operation.
    #[error("inbox database {database}: {detail}")]
    Postgres {
        /// The database URL, without a password.
        database: String,
        /// The server's or the driver's message.
        detail: String,
    },
    /// The database cannot be reached right now (refused, timed out, failing over): a request
    /// is answered 503 and readiness fails until it is back.
    #[error("inbox database {database} is unavailable: {detail}")]
    Unavailable {
        /// The database URL, without a password.
        database: String,
        /// Why.
        detail: String,
    },
    /// `store.ca_file` or the TLS set-up to the database is unusable.
    #[error("inbox database {database}: TLS: {detail}")]
    Tls {
        /// The database URL, without a password.
        database: String,
        /// What is wrong (naming the file at fault).
        detail: String,
    },
    /// A group commit failed: nothing of its batch was stored.
    #[error("inbox database {database}: commit failed: {message}")]
    Commit {
        /// The database file.
        database: String,
        /// SQLite's message.
        message: String,
    },
    /// The database was written by a newer version of this program.
    #[error("inbox database {database} has schema version {found}; this build knows up to {known}")]
    NewerSchema {
        /// The database.
        database: String,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A reading command found a database not yet brought to this build's schema.
    #[error(
        "inbox database {database} has schema version {found}; this build needs {known}: start `serve` of this version once to migrate it"
    )]
    OlderSchema {
        /// The database.
        database: String,
        /// The version found.
        found: i64,
        /// The version this build needs.
        known: i64,
    },
    /// A read-only command was pointed at a database that does not exist.
    #[error("inbox database {database} does not exist")]
    Missing {
        /// The path given.
        database: String,
    },
    /// A write was asked of a store opened for reading only.
    #[error("inbox database {database} was opened for reading only")]
    ReadOnly {
        /// The database.
        database: String,
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
            database: path.display().to_string(),
            source,
        }
    }

    /// Whether the database could not be reached (rather than refusing the operation): the
    /// request may succeed on a retry once it is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::WriterGone)
    }
}
