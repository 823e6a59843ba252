//! The certificate fields this program reads (x509-parser): names, validity, usage,
//! fingerprint. Used for the peer identity, identity pins and `check`.

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=int.api.service.nhs.uk, OU=Devices, O=nhs`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject common name, when present.
    pub common_name: Option<String>,
    /// Issuer common name, when present.
    pub issuer_common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256_fingerprint: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Basic constraints CA flag.
    pub is_ca: bool,
    /// Extended key usage allows TLS client authentication (or no EKU extension at all).
    pub client_auth: bool,
    /// Extended key usage allows TLS server authentication (or no EKU extension at all).
    pub server_auth: bool,
    /// Whether the certificate is self-issued (subject equals issuer).
    pub self_issued: bool,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertParseError {
    /// Not a DER X.509 certificate.
    #[error("{0}")]
    Der(String),
    /// An extension that identity or key usage depends on is malformed.
    #[error("{name}: {detail}")]
    Extension {
        /// The extension.
        name: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// A validity date is outside what this program can represent.
    #[error("validity: {0}")]
    Validity(String),
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<Self, CertParseError> {
        let (_, cert) =
            X509Certificate::from_der(der.as_ref()).map_err(|e| CertParseError::Der(e.to_string()))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        // A subjectAltName that cannot be parsed fails the certificate: falling back to the CN
        // would let an identity pin match a name the certificate does not really carry.
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| CertParseError::Extension {
                name: "subjectAltName",
                detail: e.to_string(),
            })?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let (client_auth, server_auth) = match cert.extended_key_usage() {
            Ok(Some(eku)) => (
                eku.value.client_auth || eku.value.any,
                eku.value.server_auth || eku.value.any,
            ),
            Ok(None) => (true, true),
            Err(e) => {
                return Err(CertParseError::Extension {
                    name: "extendedKeyUsage",
                    detail: e.to_string(),
                });
            }
        };
        let time = |t: &x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp())
                .map_err(|e| CertParseError::Validity(e.to_string()))
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            common_name: first_cn(cert.subject()),
            issuer_common_name: first_cn(cert.issuer()),
            dns_names,
            ip_addresses,
            serial: hex(cert.raw_serial()),
            sha256_fingerprint: hex(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()).as_ref(),
            ),
            not_before: time(&cert.validity().not_before)?,
            not_after: time(&cert.validity().not_after)?,
            is_ca: cert.is_ca(),
            client_auth,
            server_auth,
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        })
    }

    /// The names an identity pin is matched against: the DNS SANs, or the subject CN when
    /// there is no DNS SAN (NHS proxy certificates carry their name only in the CN).
    pub fn identity_names(&self) -> Vec<&str> {
        if self.dns_names.is_empty() {
            self.common_name.iter().map(String::as_str).collect()
        } else {
            self.dns_names.iter().map(String::as_str).collect()
        }
    }
}

fn first_cn(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn fixture(name: &str) -> CertificateDer<'static> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/nhs-proxy-certs")
            .join(name);
        assert!(path.exists(), "fixture {} not found", path.display());
        CertificateDer::from_pem_file(&path).unwrap()
    }

    #[test]
    fn reads_the_real_int_proxy_certificate_identity_from_its_cn() {
        let info = CertInfo::parse(&fixture("int-proxy-client.pem")).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("int.api.service.nhs.uk"));
        assert!(info.dns_names.is_empty(), "the real proxy certificate has no SAN");
        assert_eq!(info.identity_names(), vec!["int.api.service.nhs.uk"]);
        assert_eq!(info.issuer_common_name.as_deref(), Some("NHS INT Level 1C"));
        assert_eq!(info.serial, "5dc9db79");
        assert_eq!(info.sha256_fingerprint.len(), 64);
        assert!(info.not_after < OffsetDateTime::now_utc(), "fixture is expired");
        assert!(!info.is_ca);
    }

    #[test]
    fn reads_the_real_prod_proxy_certificate_usages() {
        let info = CertInfo::parse(&fixture("prod-proxy-client.pem")).unwrap();
        assert_eq!(
            info.common_name.as_deref(),
            Some("bars-proxy.spineservices.nhs.uk")
        );
        assert!(info.client_auth && info.server_auth);
        assert_eq!(info.issuer_common_name.as_deref(), Some("NHS Level 1C"));
    }
}
