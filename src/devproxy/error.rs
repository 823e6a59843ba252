//! Why the dev proxy could not start: each error names the file or key at fault.

use std::path::PathBuf;

use crate::tls::TlsError;

/// Why the dev proxy could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevProxyError {
    /// A certificate, key or CA file is unusable (`tls.*`, `forward.*`).
    #[error("{key}: {source}")]
    Tls {
        /// The configuration key naming the file.
        key: &'static str,
        /// The cause, naming the file.
        source: TlsError,
    },
    /// An application's JWKS file is unusable.
    #[error("{path}: {detail}")]
    Jwks {
        /// The JWKS file.
        path: PathBuf,
        /// What is wrong with it (never key material).
        detail: String,
    },
    /// The endpoint catalogue file is unusable.
    #[error("{path}: {detail}")]
    Catalogue {
        /// The catalogue file.
        path: PathBuf,
        /// What is wrong with it, naming the entry.
        detail: String,
    },
}

impl DevProxyError {
    pub(crate) fn tls(key: &'static str) -> impl FnOnce(TlsError) -> Self {
        move |source| Self::Tls { key, source }
    }
}
