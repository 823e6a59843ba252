//! The certificate fields this program reads (x509-parser): names, validity, usage,
//! fingerprint. Used for the peer identity, identity pins and `check`.

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::dn::rfc2253;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name in RFC 2253 form, e.g. `CN=int.api.service.nhs.uk,OU=Devices,O=nhs`.
    pub subject: String,
    /// Issuer distinguished name, in RFC 2253 form.
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
            subject: rfc2253(cert.subject()),
            issuer: rfc2253(cert.issuer()),
            common_name: first_cn(cert.subject()),
            issuer_common_name: first_cn(cert.issuer()),
            dns_names,
            ip_addresses,
            serial: hex(cert.raw_serial()),
            sha256_fingerprint: fingerprint(der),
            not_before: time(&cert.validity().not_before)?,
            not_after: time(&cert.validity().not_after)?,
            is_ca: cert.is_ca(),
            client_auth,
            server_auth,
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        })
    }

    /// Whether this is what [`CertInfo::parse`] makes of `der` (its SHA-256 fingerprint is
    /// that of `der`): a hash, much cheaper than parsing `der` again.
    pub(crate) fn is_of(&self, der: &CertificateDer<'_>) -> bool {
        self.sha256_fingerprint == fingerprint(der)
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

fn fingerprint(der: &CertificateDer<'_>) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()).as_ref())
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
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize, SerialNumber,
    };
    use rustls_pki_types::pem::PemObject;
    use time::macros::datetime;

    /// Names a directory holding copies of the real (expired, public) BaRS proxy client
    /// certificates, `int-proxy-client.pem` and `prod-proxy-client.pem`. They are published
    /// only in the unlicensed BaRS implementation guide, so the project does not carry them.
    /// Not `BARS_`-prefixed: the binary reads every `BARS_` variable as configuration.
    const REAL_CERTS_DIR: &str = "NHS_PROXY_CERTS_DIR";

    fn nhs_name(ou: &str, cn: &str) -> DistinguishedName {
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "nhs");
        name.push(DnType::OrganizationalUnitName, ou);
        name.push(DnType::CommonName, cn);
        name
    }

    /// A certificate of the NHS proxy certificates' shape, made here: RSA, `O=nhs, OU=Devices`,
    /// the identity only in the subject CN (no subjectAltName), server and client auth, CA:FALSE,
    /// issued by an `O=nhs, OU=CA` issuer, expired.
    fn nhs_shaped_proxy_certificate(cn: &str, issuer_cn: &str, serial: &[u8]) -> CertificateDer<'static> {
        let rsa = || KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name = nhs_name("CA", issuer_cn);
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca, rsa());

        let mut params = CertificateParams::default();
        params.distinguished_name = nhs_name("Devices", cn);
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.not_before = datetime!(2021-10-22 07:25:36 UTC);
        params.not_after = datetime!(2024-10-22 07:55:36 UTC);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        assert!(
            params.subject_alt_names.is_empty(),
            "the NHS shape has no subjectAltName"
        );
        params.signed_by(&rsa(), &issuer).unwrap().der().clone()
    }

    /// What the receiver relies on in an NHS proxy certificate: its identity is the subject
    /// CN alone, and it may authenticate a TLS client.
    #[track_caller]
    fn assert_nhs_proxy_shape(info: &CertInfo, cn: &str, issuer_cn: &str) {
        assert_eq!(info.common_name.as_deref(), Some(cn));
        assert!(
            info.dns_names.is_empty() && info.ip_addresses.is_empty(),
            "no SAN: {info:?}"
        );
        assert_eq!(info.identity_names(), vec![cn]);
        assert!(
            info.subject.contains("OU=Devices") && info.subject.contains("O=nhs"),
            "{}",
            info.subject
        );
        assert_eq!(info.issuer_common_name.as_deref(), Some(issuer_cn));
        assert!(info.client_auth && info.server_auth);
        assert!(!info.is_ca && !info.self_issued);
        assert_eq!(info.sha256_fingerprint.len(), 64);
        assert!(info.not_after < OffsetDateTime::now_utc(), "expired");
    }

    #[test]
    fn takes_the_identity_of_a_certificate_without_san_from_its_cn() {
        let der = nhs_shaped_proxy_certificate(
            "int.api.service.nhs.uk",
            "NHS INT Level 1C",
            &[0x5d, 0xc9, 0xdb, 0x79],
        );
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        let rsa_encryption = "1.2.840.113549.1.1.1";
        assert_eq!(
            cert.public_key().algorithm.algorithm.to_id_string(),
            rsa_encryption
        );
        let info = CertInfo::parse(&der).unwrap();
        assert_nhs_proxy_shape(&info, "int.api.service.nhs.uk", "NHS INT Level 1C");
        assert_eq!(info.serial, "5dc9db79");
        assert_eq!(info.not_after, datetime!(2024-10-22 07:55:36 UTC));
    }

    #[test]
    fn reads_the_real_nhs_proxy_certificates_when_a_copy_is_named() {
        let Some(dir) = std::env::var_os(REAL_CERTS_DIR).filter(|d| !d.is_empty()) else {
            eprintln!(
                "SKIPPED the real NHS proxy certificate check: {REAL_CERTS_DIR} is not set \
                 (the project-made certificate of the same shape was checked)"
            );
            return;
        };
        let real = |name: &str| {
            let path = std::path::Path::new(&dir).join(name);
            assert!(path.is_file(), "{REAL_CERTS_DIR}: {} not found", path.display());
            CertInfo::parse(&CertificateDer::from_pem_file(&path).unwrap()).unwrap()
        };
        let int = real("int-proxy-client.pem");
        assert_nhs_proxy_shape(&int, "int.api.service.nhs.uk", "NHS INT Level 1C");
        assert_eq!(int.serial, "5dc9db79");
        let prod = real("prod-proxy-client.pem");
        assert_nhs_proxy_shape(&prod, "bars-proxy.spineservices.nhs.uk", "NHS Level 1C");
        eprintln!(
            "found the real NHS proxy certificates in {}: checked {} and {}",
            std::path::Path::new(&dir).display(),
            int.subject,
            prod.subject
        );
    }
}
