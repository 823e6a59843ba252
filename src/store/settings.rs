//! Which database the store uses, and how to reach it: the settings `[store]` converts into.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::secret::Secret;

/// The database behind the store.
// Built once at start and read once: the size of the PostgreSQL variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// The embedded SQLite file: one instance (the default, and `serve --dev`).
    Sqlite {
        /// The database file (`inbox.path`).
        path: PathBuf,
    },
    /// A PostgreSQL database shared by every replica.
    Postgres(PostgresSettings),
}

/// `[store]` with `kind = "postgres"`.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `store.url`: where the database is (any password in it never reaches a log line).
    pub url: PostgresUrl,
    /// `store.tls`: how the connection is protected.
    pub tls: PostgresTls,
    /// `store.pool_size`: most connections this replica opens.
    pub pool_size: usize,
    /// `store.connect_timeout`: longest wait for a connection, new or from the pool.
    pub connect_timeout: Duration,
    /// `store.statement_timeout`: longest a statement may run on the server.
    pub statement_timeout: Duration,
    /// `store.claim_lease`: how long the `X-Request-Id` claim of a replica that stopped
    /// answering holds before another replica may process a retry.
    pub claim_lease: Duration,
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresTls {
    /// TLS required, the server's certificate verified against these roots and its name
    /// against the URL's host (libpq's `sslmode=verify-full`).
    VerifyFull {
        /// `store.ca_file`: PEM roots for the server certificate.
        ca: Vec<PathBuf>,
        /// `store.use_system_roots`: also trust the system's roots.
        use_system_roots: bool,
    },
    /// `tls = "insecure-disabled"`: plaintext, patient data readable on the network. Only for
    /// a database on this machine or a network that is itself encrypted.
    InsecureDisabled,
}

/// A parsed `postgres://` URL (or libpq key=value string). Its `Debug` and `Display` show
/// it without the password.
#[derive(Clone)]
pub struct PostgresUrl {
    config: Secret<tokio_postgres::Config>,
    redacted: String,
}

impl PostgresUrl {
    /// The driver's configuration.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        self.config.expose()
    }

    /// A URL that names nothing, for a configuration that has already failed.
    pub(crate) fn placeholder() -> Self {
        let mut config = tokio_postgres::Config::new();
        config.host("invalid").dbname("invalid");
        Self {
            redacted: redact(&config),
            config: Secret::new(config),
        }
    }

    /// Whether every host is this machine (a loopback address, `localhost` or a socket).
    pub fn is_local(&self) -> bool {
        let hosts = self.config().get_hosts();
        !hosts.is_empty()
            && hosts.iter().all(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => crate::loopback::is_loopback_host(name),
                tokio_postgres::config::Host::Unix(_) => true,
            })
    }
}

impl FromStr for PostgresUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let config = tokio_postgres::Config::from_str(text).map_err(|e| {
            // The driver's message never quotes the URL, so the password stays out of it.
            format!("is not a PostgreSQL URL: {e}")
        })?;
        if config.get_hosts().is_empty() {
            return Err("names no host".into());
        }
        if config.get_dbname().is_none() {
            return Err("names no database (postgres://user@host:5432/database)".into());
        }
        let redacted = redact(&config);
        Ok(Self {
            config: Secret::new(config),
            redacted,
        })
    }
}

/// `postgres://user@host:port/db`, the password left out.
fn redact(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, port)| match h {
            tokio_postgres::config::Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}{}/{}",
        config.get_user().map(|u| format!("{u}@")).unwrap_or_default(),
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url: PostgresUrl = "postgres://bars:s3cret@db.internal:6432/inbox".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://bars@db.internal:6432/inbox");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!url.is_local());
        let local: PostgresUrl = "postgres://postgres@127.0.0.1/test".parse().unwrap();
        assert!(local.is_local());
    }

    #[test]
    fn refuses_urls_without_a_database_or_host() {
        assert!(
            "postgres://bars@db.internal"
                .parse::<PostgresUrl>()
                .unwrap_err()
                .contains("database")
        );
        assert!("not a url ===".parse::<PostgresUrl>().is_err());
    }
}
