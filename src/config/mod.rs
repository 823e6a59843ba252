//! Configuration: a TOML file with `BARS_` environment overrides, parsed once into typed
//! [`Settings`]. Every problem is reported, each with its key, before anything binds a socket.
//! Environment presets (`int`, `prod`, `dev`) supply the proxy source addresses.

mod convert;
mod devproxy;
mod env;
mod fields;
mod messaging;
mod ops;
mod raw;
mod sender;
mod store;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use devproxy::{ApplicationSettings, DevProxySettings};
pub use env::ENV_PREFIX;
pub use sender::{ApimSettings, MAX_ASSERTION_LIFETIME, SANDBOX_BASE_URL, SenderAuth, SenderSettings};
pub use upstream::{UpstreamInteractions, UpstreamSettings};

use crate::fhir::{MessageDefinitions, RequesterHeaders, TargetIdentifier};
use crate::net::{Allowlist, ProxyPolicy};
use crate::store::StoreSettings;
use crate::tls::TlsSettings;

/// The embedded development configuration (`config/dev.toml`), used by `serve --dev`.
pub const DEV_CONFIG: &str = include_str!("../../config/dev.toml");

/// Which BaRS environment this receiver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Integration: the INT proxy addresses and the PTL/INT NHS chain.
    Int,
    /// Production: the PROD proxy addresses and the NHS Root Authority chain.
    Prod,
    /// Local development with self-signed chains: loopback only.
    Dev,
}

impl Environment {
    /// Parses `int`, `prod` or `dev`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int" => Some(Self::Int),
            "prod" => Some(Self::Prod),
            "dev" => Some(Self::Dev),
            _ => None,
        }
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Prod => "prod",
            Self::Dev => "dev",
        }
    }

    /// The BaRS API proxy source addresses of this environment.
    pub fn preset_sources(self) -> &'static [&'static str] {
        match self {
            Self::Int => &["35.197.254.55/32", "35.246.55.143/32"],
            Self::Prod => &["34.89.0.111/32", "34.89.69.6/32"],
            Self::Dev => &["127.0.0.0/8", "::1/128"],
        }
    }
}

/// `[listen]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenSettings {
    /// Address to bind.
    pub address: SocketAddr,
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Concurrent connections; further ones wait in the kernel backlog.
    pub max_connections: usize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Load balancers whose connections must start with a PROXY protocol header.
    pub trusted_proxies: ProxyPolicy,
    /// Admitted connections are closed gracefully after this long (re-admission against the
    /// current certificates, CRLs and pins).
    pub max_connection_age: Duration,
    /// An admitted connection that has not started a request this long after its handshake
    /// is closed (a silent client, or one that sent only the h2 preface).
    pub first_request_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 between
    /// keep-alive requests, h2 with no open stream); the next request head must be complete
    /// within it too.
    pub idle_timeout: Duration,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Largest request body accepted (413 beyond).
    pub max_body: usize,
    /// Largest request head, HTTP/1.1 and h2 alike (431 beyond).
    pub max_header_bytes: usize,
    /// Time within which every request is answered (408 `REC_TIMEOUT` beyond).
    pub deadline: Duration,
    /// After this, a state-changing handler still running is logged as stuck. It is never
    /// cancelled (stopped part-way it might already have committed): it keeps its
    /// de-duplication claim, so retries get 425 until it ends, and then its outcome.
    pub processing_limit: Duration,
    /// Path prefix of the registered endpoint URL, e.g. `/` or `/bars/FHIR/R4`.
    pub base_path: String,
    /// Global limit in requests per second (429 beyond); `None` = unlimited.
    pub rate_limit: Option<u32>,
    /// Request bodies held in memory at once, in bytes; further requests wait for room.
    pub max_inflight_body: usize,
}

/// `[admin]`: the plain-HTTP health and metrics listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminSettings {
    /// Whether to serve it.
    pub enabled: bool,
    /// Where.
    pub address: SocketAddr,
}

/// `[reload]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadSettings {
    /// How often watched files are checked for changes; `None` = only on SIGHUP.
    pub watch_interval: Option<Duration>,
}

/// `[receiver]`: what this receiver serves and how it describes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverInfo {
    /// The target services handled; empty = any `NHSD-Target-Identifier`.
    pub services: Vec<TargetIdentifier>,
    /// This receiver's organisation (ODS code, upper case): when set, a message's
    /// `MessageHeader.destination.receiver` must be the Organization with this code.
    pub ods_code: Option<String>,
    /// `CapabilityStatement.name`.
    pub name: String,
    /// `CapabilityStatement.publisher`.
    pub publisher: Option<String>,
    /// `CapabilityStatement.software.name`.
    pub software_name: String,
    /// `CapabilityStatement.software.version`.
    pub software_version: String,
    /// `CapabilityStatement.implementation.url`: the registered endpoint URL.
    pub base_url: Option<String>,
    /// Whether `NHSD-End-User-Organisation` and `NHSD-Requesting-Software` are required
    /// (`requester_headers`; optional by default, as the implementation guide says).
    pub requester_headers: RequesterHeaders,
    /// The widest `start` range a slot search may ask for (422 `too-costly` beyond).
    pub max_slot_range: Duration,
}

/// The default `receiver.max_slot_range`: a month of slots.
pub const DEFAULT_MAX_SLOT_RANGE: Duration = Duration::from_secs(31 * 86_400);

impl Default for ReceiverInfo {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            ods_code: None,
            name: "bars-receiver".into(),
            publisher: None,
            software_name: "bars-receiver".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            base_url: None,
            requester_headers: RequesterHeaders::default(),
            max_slot_range: DEFAULT_MAX_SLOT_RANGE,
        }
    }
}

/// `[handler] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerKind {
    /// The embedded durable inbox.
    Inbox,
    /// Every accepted request is forwarded synchronously to `[upstream]`, and its answer
    /// relayed.
    Forward,
    /// Messages are committed to the inbox, acknowledged, then delivered to `[upstream]` by a
    /// background worker (at least once); every other route is forwarded synchronously.
    Relay,
}

impl HandlerKind {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Forward => "forward",
            Self::Relay => "relay",
        }
    }
}

/// `[inbox]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxSettings {
    /// The embedded (SQLite) inbox and de-duplication database, when `store.kind = "sqlite"`.
    pub path: PathBuf,
    /// How long the outcome of a request is remembered for de-duplication.
    pub dedup_retention: Duration,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines.
    Json,
    /// Human-readable.
    Pretty,
    /// JSON unless standard output is a terminal.
    Auto,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,bars_receiver=debug`.
    pub level: String,
}

impl LogSettings {
    /// Logging in `format` at `level` (a `tracing` filter).
    pub fn new(format: LogFormat, level: impl Into<String>) -> Self {
        Self {
            format,
            level: level.into(),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// The environment.
    pub environment: Environment,
    /// `[listen]`.
    pub listen: ListenSettings,
    /// `[tls]`.
    pub tls: TlsSettings,
    /// `[allowlist]`, resolved against the environment preset.
    pub allowlist: Allowlist,
    /// `[http]`.
    pub http: HttpSettings,
    /// `[receiver]`.
    pub receiver: ReceiverInfo,
    /// `[handler]`.
    pub handler: HandlerKind,
    /// `[upstream]`: the provider's own system, for the forward and relay handlers.
    pub upstream: Option<UpstreamSettings>,
    /// `[inbox]`.
    pub inbox: InboxSettings,
    /// `[store]`: the database (the SQLite file at `inbox.path`, or PostgreSQL).
    pub store: StoreSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[admin]`.
    pub admin: AdminSettings,
    /// `[reload]`.
    pub reload: ReloadSettings,
    /// `[sender]`, when this receiver also sends through the BaRS API.
    pub sender: Option<SenderSettings>,
    /// `[[messaging.definitions]]`: the BaRS message definitions this receiver supports, for
    /// which services and use-case categories (`GET /MessageDefinition`, the
    /// CapabilityStatement's `messaging`).
    pub message_definitions: MessageDefinitions,
    /// `BARS_` variables that were not configuration (service links), logged once at start.
    pub(crate) ignored_variables: Vec<String>,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, e.g. `tls.cert_chain`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A `BARS_` variable cannot be applied: malformed, empty, or a setting's name misspelt.
    #[error("environment variable {variable}: {message}")]
    Environment {
        /// The variable.
        variable: String,
        /// What is wrong.
        message: String,
    },
    /// A key is unknown or has the wrong type.
    #[error("{origin}: {key}: {message}")]
    Key {
        /// The file or environment variable the value came from.
        origin: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Values are out of range, files missing, or settings contradict each other.
    #[error("{origin}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        origin: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl Settings {
    /// Loads a file, applies the process environment's `BARS_` overrides, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fields::read_file(path)?;
        Self::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// The embedded development configuration with the process environment's overrides.
    pub fn dev() -> Result<Self, ConfigError> {
        Self::from_toml(DEV_CONFIG, "embedded config/dev.toml", std::env::vars())
    }

    /// Parses TOML text named `origin` with the given `BARS_` variables layered over it.
    pub fn from_toml(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let raw = raw::parse_raw(text, origin, vars)?;
        convert::convert(raw).map_err(|problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests;
