//! The verified caller, taken from the TLS session once per connection, and the identity
//! pins (`allowed_client_names`).

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;

use super::certinfo::{CertInfo, CertParseError};

/// Who is on the other end of a connection, as proven by mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Subject distinguished name in RFC 2253 form, as Envoy writes it in
    /// `x-forwarded-client-cert`: `CN=int.api.service.nhs.uk,OU=Devices,O=nhs`.
    pub subject: String,
    /// Issuer distinguished name, in RFC 2253 form.
    pub issuer: String,
    /// SHA-256 fingerprint of the client certificate (DER), lowercase hex.
    pub sha256_fingerprint: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Expiry of the client certificate.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The source address of the connection (after any trusted PROXY header).
    pub source_ip: IpAddr,
}

impl PeerIdentity {
    /// Builds the identity from the verified end-entity certificate.
    pub fn from_certificate(cert: &CertificateDer<'_>, source_ip: IpAddr) -> Result<Self, CertParseError> {
        Ok(Self::from_info(CertInfo::parse(cert)?, source_ip))
    }

    /// The identity from what [`CertInfo::parse`] made of the verified end-entity certificate
    /// (the verifier's own parse, reused rather than repeated).
    pub(crate) fn from_info(info: CertInfo, source_ip: IpAddr) -> Self {
        Self {
            common_name: info.common_name,
            dns_names: info.dns_names,
            subject: info.subject,
            issuer: info.issuer,
            sha256_fingerprint: info.sha256_fingerprint,
            serial: info.serial,
            not_after: info.not_after,
            source_ip,
        }
    }

    /// A peer for tests and examples that exercise handlers without a TLS session.
    pub fn for_tests(common_name: &str, source_ip: IpAddr) -> Self {
        Self {
            common_name: Some(common_name.to_owned()),
            dns_names: Vec::new(),
            subject: format!("CN={common_name}"),
            issuer: "CN=test".to_owned(),
            sha256_fingerprint: "0".repeat(64),
            serial: "01".to_owned(),
            not_after: OffsetDateTime::UNIX_EPOCH,
            source_ip,
        }
    }

    /// The name to show in logs: the first DNS SAN, else the CN.
    pub fn display_name(&self) -> &str {
        self.dns_names
            .first()
            .or(self.common_name.as_ref())
            .map_or("(no name)", String::as_str)
    }
}

/// Why an `allowed_client_names` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamePatternError {
    /// The entry is empty.
    #[error("an empty name")]
    Empty,
    /// The entry is not a DNS name or a `*.` pattern of one.
    #[error("'{pattern}': {why}")]
    Refused {
        /// The entry as written.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// One entry of `allowed_client_names`: an exact DNS name, or `*.suffix` matching exactly one
/// extra label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    raw: String,
    wildcard_suffix: Option<String>,
}

impl NamePattern {
    /// Parses a pattern; `*` is allowed only as the whole first label, before at least two
    /// more labels (`*.nhs.uk` yes, `*.uk`, `a*.nhs.uk` and `*` no).
    pub fn parse(pattern: &str) -> Result<Self, NamePatternError> {
        let lower = pattern.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(NamePatternError::Empty);
        }
        let refused = |why| NamePatternError::Refused {
            pattern: pattern.to_owned(),
            why,
        };
        if let Some(suffix) = lower.strip_prefix("*.") {
            if suffix.contains('*') || suffix.split('.').count() < 2 || suffix.split('.').any(str::is_empty) {
                return Err(refused("a wildcard needs at least two labels after '*.'"));
            }
            return Ok(Self {
                raw: lower.clone(),
                wildcard_suffix: Some(format!(".{suffix}")),
            });
        }
        if lower.contains('*') {
            return Err(refused("'*' is only allowed as the whole first label"));
        }
        if lower.split('.').any(str::is_empty) {
            return Err(refused("empty label"));
        }
        Ok(Self {
            raw: lower,
            wildcard_suffix: None,
        })
    }

    /// Whether a certificate name matches.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match &self.wildcard_suffix {
            None => name == self.raw,
            Some(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.') && !label.contains('*')),
        }
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The identity pins: empty means any certificate that chains to the CA bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientNamePins(Vec<NamePattern>);

impl ClientNamePins {
    /// Pins from patterns.
    pub fn new(patterns: Vec<NamePattern>) -> Self {
        Self(patterns)
    }

    /// Whether no pin is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the certificate's identity names (DNS SANs, else CN) match a pin.
    pub fn allows(&self, cert: &CertInfo) -> bool {
        self.0.is_empty()
            || cert
                .identity_names()
                .iter()
                .any(|name| self.0.iter().any(|p| p.matches(name)))
    }

    /// The patterns.
    pub fn patterns(&self) -> &[NamePattern] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_match_case_insensitively() {
        let p = NamePattern::parse("int.api.service.nhs.uk").unwrap();
        assert!(p.matches("INT.api.service.nhs.uk"));
        assert!(!p.matches("x.int.api.service.nhs.uk"));
    }

    #[test]
    fn wildcards_match_exactly_one_label() {
        let p = NamePattern::parse("*.api.service.nhs.uk").unwrap();
        assert!(p.matches("int.api.service.nhs.uk"));
        assert!(!p.matches("api.service.nhs.uk"));
        assert!(!p.matches("a.b.api.service.nhs.uk"));
        assert!(!p.matches("evil-api.service.nhs.uk"));
    }

    #[test]
    fn refuses_dangerous_patterns() {
        for bad in ["", "*", "*.uk", "a*.nhs.uk", "*.*.nhs.uk", "nhs..uk"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
