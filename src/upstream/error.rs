//! Why an upstream client could not be built (each naming the key or file at fault), and how
//! one exchange with the upstream failed.

use std::path::PathBuf;

use crate::tls::TlsError;

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// A CA, certificate or key file is unusable.
    #[error("upstream: {0}")]
    Tls(#[from] TlsError),
    /// A certificate in an `upstream.ca` file cannot be a trust anchor.
    #[error("upstream.ca: {path}: certificate #{index} cannot be trusted: {detail}")]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// Why.
        detail: String,
    },
    /// `use_system_roots` is set but the system store gave nothing usable.
    #[error("upstream.use_system_roots: the system root store has no usable certificate{detail}")]
    NoSystemRoots {
        /// What the loader reported.
        detail: String,
    },
    /// `upstream.server_name` is not a name rustls can verify.
    #[error("upstream.server_name: '{name}' is not a DNS name or IP address")]
    ServerName {
        /// The name.
        name: String,
    },
    /// `upstream.url` is not usable.
    #[error("upstream.url: '{url}' is not an http(s) URL with a host")]
    Url {
        /// The URL.
        url: String,
    },
    /// The configuration has no `[upstream]` for a handler that needs one.
    #[error("upstream.url: required with handler.kind = {kind}")]
    Missing {
        /// The handler kind.
        kind: &'static str,
    },
}

/// How one exchange with the upstream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// No complete answer arrived: the connection was refused, reset or closed, or TLS
    /// failed. The text is for logs.
    Unreachable(String),
    /// No complete answer within the timeout.
    Timeout,
    /// The answer's body is larger than the limit (its status is known).
    TooLarge {
        /// The upstream's status.
        status: u16,
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "no answer: {why}"),
            Self::Timeout => f.write_str("no answer within the timeout"),
            Self::TooLarge { status, limit } => {
                write!(f, "HTTP {status} answer larger than {limit} bytes")
            }
        }
    }
}
