//! Who may connect and with what TLS: the material a reload replaces whole, and how it is
//! built (at start and on every reload alike). Each new connection takes a snapshot; open
//! connections keep the one they started with.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use time::OffsetDateTime;

use super::{Allowlist, ProxyPolicy};
use crate::admin::MaterialExpiry;
use crate::tls::{TlsError, TlsMaterial, TlsSettings, build_server_config};

/// The admission material of one generation.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) allowlist: Allowlist,
    pub(crate) proxy: ProxyPolicy,
    /// Expiry of the server certificate, for readiness.
    pub(crate) server_not_after: OffsetDateTime,
}

/// Why the admission material (TLS configuration, allowlist, PROXY policy) could not be
/// built, at start or on reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server certificate has expired (the proxy would refuse it).
    #[error("{path}: the server certificate expired at {not_after}")]
    ServerCertExpired {
        /// The chain file.
        path: PathBuf,
        /// Its expiry.
        not_after: String,
    },
}

/// Builds the admission material from its settings, refusing an expired server certificate.
pub(crate) fn build_admission(
    tls: &TlsSettings,
    allowlist: &Allowlist,
    proxy: &ProxyPolicy,
) -> Result<(Admission, TlsMaterial), AdmissionError> {
    let material = build_server_config(tls)?;
    if material.server_cert.not_after <= OffsetDateTime::now_utc() {
        return Err(AdmissionError::ServerCertExpired {
            path: tls.cert_chain.clone(),
            not_after: material.server_cert.not_after.to_string(),
        });
    }
    let admission = Admission {
        tls: material.config.clone(),
        allowlist: allowlist.clone(),
        proxy: proxy.clone(),
        server_not_after: material.server_cert.not_after,
    };
    Ok((admission, material))
}

/// The current [`Admission`], swapped atomically on reload.
#[derive(Debug)]
pub(crate) struct AdmissionHolder(RwLock<Arc<Admission>>);

impl AdmissionHolder {
    pub(crate) fn new(admission: Admission) -> Self {
        Self(RwLock::new(Arc::new(admission)))
    }

    /// The material for a new connection.
    pub(crate) fn current(&self) -> Arc<Admission> {
        // A writer that panicked mid-swap still left a whole Arc behind.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Swaps in new material; connections already open are not affected.
    pub(crate) fn replace(&self, admission: Admission) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(admission);
    }
}

impl MaterialExpiry for AdmissionHolder {
    fn server_not_after(&self) -> OffsetDateTime {
        self.current().server_not_after
    }
}
