//! Why a handshake failed, in categories an operator can count and act on.

use rustls::{CertificateError, Error, InvalidMessage, PeerIncompatible};

/// The reason a connection was refused before HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The source address is not on the allowlist.
    SourceNotAllowed,
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// A PROXY protocol header was missing or malformed (from a trusted proxy), or sent by an
    /// address not in `listen.trusted_proxies`.
    ProxyHeader,
    /// The client sent something that is not TLS (e.g. plain HTTP).
    NotTls,
    /// The client offered no protocol version we accept (TLS 1.1 or older).
    ProtocolVersion,
    /// The client sent a handshake message over rustls's 64 KiB limit, most often a client
    /// certificate chain far longer than any real one.
    HandshakeTooLarge,
    /// The client presented no certificate.
    NoClientCertificate,
    /// The client certificate does not chain to the CA bundle.
    UnknownCa,
    /// The client certificate has expired.
    Expired,
    /// The client certificate is not valid yet.
    NotYetValid,
    /// The client certificate is not for TLS client authentication.
    WrongKeyUsage,
    /// The client certificate is revoked.
    Revoked,
    /// No CRL covers the certificate's issuer, or that CRL is past its nextUpdate.
    RevocationUnknown,
    /// The client certificate chains correctly but its name is not in `allowed_client_names`.
    IdentityNotAllowed,
    /// The certificate could not be parsed, a signature is wrong, or the chain breaks a CA's
    /// constraints (path length, name constraints).
    BadCertificate,
    /// The client aborted the handshake with an alert (often: it does not trust our server
    /// certificate).
    ClientAlert,
    /// The connection closed or failed during the handshake.
    ConnectionFailed,
    /// Any other TLS protocol failure.
    Protocol,
}

impl RefusalReason {
    /// A stable snake_case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceNotAllowed => "source_not_allowed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::ProxyHeader => "proxy_header",
            Self::NotTls => "not_tls",
            Self::ProtocolVersion => "protocol_version",
            Self::HandshakeTooLarge => "handshake_too_large",
            Self::NoClientCertificate => "no_client_certificate",
            Self::UnknownCa => "unknown_ca",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongKeyUsage => "wrong_key_usage",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation_unknown",
            Self::IdentityNotAllowed => "identity_not_allowed",
            Self::BadCertificate => "bad_certificate",
            Self::ClientAlert => "client_alert",
            Self::ConnectionFailed => "connection_failed",
            Self::Protocol => "protocol",
        }
    }

    /// What an engineer should look at.
    pub fn explain(self) -> &'static str {
        match self {
            Self::SourceNotAllowed => "source address is not on the allowlist",
            Self::HandshakeTimeout => "the client did not complete the TLS handshake in time",
            Self::ProxyHeader => {
                "PROXY protocol header missing or malformed from a trusted proxy, or sent by an address not in listen.trusted_proxies"
            }
            Self::NotTls => "the client did not speak TLS (plain HTTP to the TLS port?)",
            Self::ProtocolVersion => {
                "the client offered only TLS versions or cipher suites older than TLS 1.2 (or nothing in common with TLS 1.2/1.3)"
            }
            Self::HandshakeTooLarge => {
                "the client sent a TLS handshake message over 64 KiB (a client certificate chain that long?)"
            }
            Self::NoClientCertificate => "the client presented no certificate; mutual TLS is required",
            Self::UnknownCa => "the client certificate was not issued by a CA in tls.client_ca",
            Self::Expired => "the client certificate has expired",
            Self::NotYetValid => "the client certificate is not valid yet (check clocks)",
            Self::WrongKeyUsage => {
                "the client certificate is not for TLS client authentication (extendedKeyUsage)"
            }
            Self::Revoked => "the client certificate is revoked (listed in a CRL from tls.crl)",
            Self::RevocationUnknown => {
                "the client certificate's revocation status is unknown: no CRL in tls.crl for its issuer, or that CRL is past its nextUpdate (refresh it)"
            }
            Self::IdentityNotAllowed => "the client certificate name is not in tls.allowed_client_names",
            Self::BadCertificate => {
                "the client certificate is malformed, a signature in its chain does not verify, or the chain breaks a CA's constraints (path length, name constraints)"
            }
            Self::ClientAlert => {
                "the client aborted the handshake (does it trust our server certificate chain?)"
            }
            Self::ConnectionFailed => "the connection closed during the handshake",
            Self::Protocol => "TLS protocol error",
        }
    }

    /// Classifies the error a server handshake ended with.
    pub fn from_handshake_error(err: &std::io::Error) -> Self {
        match err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            Some(tls) => Self::from_rustls(tls),
            None => Self::ConnectionFailed,
        }
    }

    fn from_rustls(err: &Error) -> Self {
        match err {
            Error::NoCertificatesPresented => Self::NoClientCertificate,
            Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => Self::UnknownCa,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                    Self::WrongKeyUsage
                }
                CertificateError::Revoked => Self::Revoked,
                CertificateError::UnknownRevocationStatus
                | CertificateError::ExpiredRevocationList
                | CertificateError::ExpiredRevocationListContext { .. } => Self::RevocationUnknown,
                CertificateError::ApplicationVerificationFailure => Self::IdentityNotAllowed,
                _ => Self::BadCertificate,
            },
            Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered)
            | Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired) => {
                Self::ProtocolVersion
            }
            // Well-framed TLS that is too big for rustls, not bytes that are not TLS at all.
            Error::InvalidMessage(
                InvalidMessage::HandshakePayloadTooLarge | InvalidMessage::CertificatePayloadTooLarge,
            ) => Self::HandshakeTooLarge,
            Error::InvalidMessage(_) => Self::NotTls,
            Error::AlertReceived(_) => Self::ClientAlert,
            Error::PeerIncompatible(_) => Self::ProtocolVersion,
            _ => Self::Protocol,
        }
    }
}

impl RefusalReason {
    /// One sentence an engineer can act on, naming the presented certificate when the
    /// refusal is about it.
    pub fn describe(self, presented: Option<&super::CertInfo>) -> String {
        let Some(cert) = presented else {
            return self.explain().to_owned();
        };
        let (subject, issuer) = (&cert.subject, &cert.issuer);
        match self {
            Self::UnknownCa => format!(
                "client certificate '{subject}' was issued by '{issuer}', which is not in the CA bundle (tls.client_ca)"
            ),
            Self::Expired => format!("client certificate '{subject}' expired on {}", cert.not_after),
            Self::NotYetValid => format!(
                "client certificate '{subject}' is not valid until {} (check clocks)",
                cert.not_before
            ),
            Self::WrongKeyUsage => format!(
                "client certificate '{subject}' is not for TLS client authentication (extendedKeyUsage)"
            ),
            Self::Revoked => format!(
                "client certificate '{subject}' (serial {}) is revoked by '{issuer}'",
                cert.serial
            ),
            Self::RevocationUnknown => format!(
                "revocation status of client certificate '{subject}' is unknown: no current CRL from '{issuer}' in tls.crl"
            ),
            Self::IdentityNotAllowed => format!(
                "client certificate names {:?} are not in tls.allowed_client_names",
                cert.identity_names()
            ),
            other => other.explain().to_owned(),
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
