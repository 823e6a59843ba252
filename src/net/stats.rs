//! Connection counters: accepted, active, and refused by reason.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tls::RefusalReason;

const REASONS: [RefusalReason; 15] = [
    RefusalReason::SourceNotAllowed,
    RefusalReason::HandshakeTimeout,
    RefusalReason::NotTls,
    RefusalReason::ProtocolVersion,
    RefusalReason::NoClientCertificate,
    RefusalReason::UnknownCa,
    RefusalReason::Expired,
    RefusalReason::NotYetValid,
    RefusalReason::WrongKeyUsage,
    RefusalReason::Revoked,
    RefusalReason::IdentityNotAllowed,
    RefusalReason::BadCertificate,
    RefusalReason::ClientAlert,
    RefusalReason::ConnectionFailed,
    RefusalReason::Protocol,
];

/// Counters for connections, shared by the accept loop and its connection tasks.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    accepted: AtomicU64,
    admitted: AtomicU64,
    active: AtomicU64,
    refused: [AtomicU64; REASONS.len()],
}

impl ConnectionStats {
    /// TCP connections accepted (before the allowlist).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections that completed the mutual-TLS handshake.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Connections currently open (from accept to close).
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Connections refused for `reason`.
    pub fn refused(&self, reason: RefusalReason) -> u64 {
        REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.refused[i].load(Ordering::Relaxed))
    }

    /// Every reason with its count.
    pub fn refusals(&self) -> Vec<(RefusalReason, u64)> {
        REASONS.iter().map(|r| (*r, self.refused(*r))).collect()
    }

    pub(crate) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_refused(&self, reason: RefusalReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn open(&self) -> ActiveGuard<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }
}

/// Decrements the active count when the connection ends.
pub(crate) struct ActiveGuard<'a>(&'a ConnectionStats);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
