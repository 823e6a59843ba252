//! Opening the database with the durability settings, creating it privately, and schema
//! migrations (tracked in `PRAGMA user_version`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::private_files::{create_new_private_file, create_private_dir};
use crate::store::StoreError;

/// Each entry moves the schema one version up.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the inbox and the de-duplication records.
    "CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        received_at TEXT NOT NULL,
        request_id TEXT NOT NULL UNIQUE,
        correlation_id TEXT NOT NULL,
        bundle_id TEXT NOT NULL,
        event TEXT NOT NULL,
        reason TEXT NOT NULL,
        target TEXT,
        headers TEXT NOT NULL,
        peer TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX messages_correlation ON messages(correlation_id, seq);
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('done', 'failed')),
        status INTEGER NOT NULL,
        response TEXT,
        reference TEXT,
        interaction TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );",
    // 2: outcomes remember which body they were for; pruning by age uses an index.
    "ALTER TABLE requests ADD COLUMN body_sha256 TEXT;
    CREATE INDEX requests_recorded_at ON requests(recorded_at);",
    // 3: relayed messages carry their delivery to the upstream. `delivery` is NULL for
    // messages that are not relayed (the inbox handler).
    "ALTER TABLE messages ADD COLUMN delivery TEXT CHECK (delivery IN ('pending', 'delivered', 'dead'));
    ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE messages ADD COLUMN attempt_started_at TEXT;
    ALTER TABLE messages ADD COLUMN last_error TEXT;
    ALTER TABLE messages ADD COLUMN delivered_at TEXT;
    ALTER TABLE messages ADD COLUMN upstream_headers TEXT;
    CREATE INDEX messages_delivery ON messages(delivery, next_attempt_at);",
];

/// The newest schema version this build knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Creates the parent directory (0700) and the database file (0600) if missing: the inbox
/// holds patient data.
pub(super) fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            create_private_dir(dir).map_err(io(dir))?;
        }
    }
    if !path.exists() {
        match create_new_private_file(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(path)(e)),
        }
    }
    Ok(())
}

/// Opens a connection. Read connections are opened read-write with `query_only`, because a
/// WAL database cannot always be opened read-only once its `-shm` file is gone.
pub(super) fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let read_only = flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    if read_only {
        conn.pragma_update(None, "query_only", true).map_err(err)?;
    } else {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::sqlite(
                path,
                rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}, WAL required")),
            ));
        }
        // FULL: the WAL is fsync'd at every commit, so a committed message survives a crash
        // or power loss, not only a process kill.
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // The savepoint each job runs in keeps its undo record (the sub-journal) in memory,
        // not in a temporary file opened, written and deleted per transaction: it only rolls
        // a failed job back inside the open transaction; the WAL alone makes a commit atomic
        // and durable.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(err)?;
    }
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let current = check_version(conn, path)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {version}; COMMIT;"
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// The schema version, refusing one newer than this build knows.
pub(super) fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| StoreError::sqlite(path, e))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            database: path.display().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    }

    #[test]
    fn the_writer_connection_is_durable_and_journals_savepoints_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.db");
        prepare_file(&path).unwrap();
        let writer = open(&path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
        assert_eq!(pragma(&writer, "journal_mode"), "wal");
        assert_eq!(
            pragma(&writer, "synchronous"),
            "2",
            "FULL: every commit is fsync'd"
        );
        assert_eq!(
            pragma(&writer, "temp_store"),
            "2",
            "MEMORY: no sub-journal file per transaction"
        );
        let reader = open(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert_eq!(pragma(&reader, "query_only"), "1");
    }
}
