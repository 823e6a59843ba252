//! Who may connect and with what TLS: the material a reload replaces whole. Each new
//! connection takes a snapshot; open connections keep the one they started with.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use time::OffsetDateTime;

use super::{Allowlist, ProxyPolicy};

/// The admission material of one generation.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) allowlist: Allowlist,
    pub(crate) proxy: ProxyPolicy,
    /// Expiry of the server certificate, for readiness.
    pub(crate) server_not_after: OffsetDateTime,
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
