//! The development PKI (rcgen): an NHS-shaped chain for local testing. Root → SubCA → a
//! server leaf named by the BaRS convention and a client leaf shaped like the BaRS proxy's
//! (CN only, no SAN), plus a foreign CA with its own client for negative tests by hand.
//!
//! Nothing in it is for INT or PROD: those certificates come from the NHS PKI via a CSR.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::{PkiError, create_dir, write_file};

/// The files `dev-pki` writes, in this order.
pub const DEV_PKI_FILES: [&str; 9] = [
    "root.pem",
    "subca.pem",
    "ca-bundle.pem",
    "server-chain.pem",
    "server.key",
    "client.pem",
    "client.key",
    "foreign-client.pem",
    "foreign-client.key",
];

/// The client CN of the development chain: the INT proxy's.
pub const DEV_CLIENT_CN: &str = "int.api.service.nhs.uk";

/// What to name the development server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiOptions {
    /// ODS code in the server name.
    pub ods_code: String,
    /// Supplier label in the server name.
    pub supplier: String,
}

impl Default for DevPkiOptions {
    fn default() -> Self {
        Self {
            ods_code: "X26".into(),
            supplier: "examplesupplier".into(),
        }
    }
}

impl DevPkiOptions {
    /// `BaRS-INT-<ODS>.<supplier>.thirdparty.nhs.uk`.
    pub fn server_name(&self) -> String {
        format!("BaRS-INT-{}.{}.thirdparty.nhs.uk", self.ods_code, self.supplier)
    }
}

/// A generated development PKI, as PEM text.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// Root CA certificate.
    pub root: String,
    /// SubCA certificate.
    pub subca: String,
    /// Server leaf certificate.
    pub server: String,
    /// Server key (PKCS#8).
    pub server_key: String,
    /// Client leaf certificate.
    pub client: String,
    /// Client key (PKCS#8).
    pub client_key: String,
    /// Client certificate from the foreign CA.
    pub foreign_client: String,
    /// Its key.
    pub foreign_client_key: String,
}

impl DevPki {
    /// Generates a fresh chain.
    pub fn generate(options: &DevPkiOptions) -> Result<Self, PkiError> {
        let now = OffsetDateTime::now_utc();
        let (root, root_issuer) = ca("BaRS DEV Root Authority", None, now, 3650, "root CA")?;
        let (subca, subca_issuer) = ca("BaRS DEV Level 1C", Some(&root_issuer), now, 1825, "SubCA")?;
        let server_name = options.server_name();
        let (server, server_key) = leaf(
            &subca_issuer,
            &[("O", "nhs"), ("OU", "Devices"), ("CN", &server_name)],
            vec![
                server_name.clone(),
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
            now,
            "server certificate",
        )?;
        let (client, client_key) = leaf(
            &subca_issuer,
            &[("O", "nhs"), ("OU", "Devices"), ("CN", DEV_CLIENT_CN)],
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            now,
            "client certificate",
        )?;
        let (_, foreign_issuer) = ca("Foreign Test CA (not trusted)", None, now, 3650, "foreign CA")?;
        let (foreign_client, foreign_client_key) = leaf(
            &foreign_issuer,
            &[("O", "nhs"), ("OU", "Devices"), ("CN", DEV_CLIENT_CN)],
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            now,
            "foreign client certificate",
        )?;
        Ok(Self {
            root,
            subca,
            server,
            server_key,
            client,
            client_key,
            foreign_client,
            foreign_client_key,
        })
    }

    /// Writes the files of [`DEV_PKI_FILES`] into `dir` (created 0700; keys 0600). Refuses to
    /// replace an existing set unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, PkiError> {
        if !force {
            if let Some(existing) = DEV_PKI_FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
                return Err(PkiError::Exists { path: existing });
            }
        }
        create_dir(dir)?;
        let contents: [(&str, String, bool); 9] = [
            ("root.pem", self.root.clone(), false),
            ("subca.pem", self.subca.clone(), false),
            ("ca-bundle.pem", format!("{}{}", self.root, self.subca), false),
            (
                "server-chain.pem",
                format!("{}{}", self.server, self.subca),
                false,
            ),
            ("server.key", self.server_key.clone(), true),
            ("client.pem", format!("{}{}", self.client, self.subca), false),
            ("client.key", self.client_key.clone(), true),
            ("foreign-client.pem", self.foreign_client.clone(), false),
            ("foreign-client.key", self.foreign_client_key.clone(), true),
        ];
        contents
            .into_iter()
            .map(|(name, text, secret)| {
                let path = dir.join(name);
                write_file(&path, text.as_bytes(), secret)?;
                Ok(path)
            })
            .collect()
    }
}

/// Whether `dir` holds a complete development PKI.
pub fn dev_pki_present(dir: &Path) -> bool {
    DEV_PKI_FILES.iter().all(|f| dir.join(f).is_file())
}

fn name(parts: &[(&str, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        let ty = match *kind {
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            _ => DnType::CommonName,
        };
        dn.push(ty, *value);
    }
    dn
}

fn ca(
    cn: &str,
    parent: Option<&Issuer<'static, KeyPair>>,
    now: OffsetDateTime,
    days: i64,
    what: &'static str,
) -> Result<(String, Issuer<'static, KeyPair>), PkiError> {
    let err = |source| PkiError::Generate { what, source };
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&[("O", "nhs"), ("OU", "CA"), ("CN", cn)]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params.use_authority_key_identifier_extension = parent.is_some();
    let key = KeyPair::generate().map_err(err)?;
    let cert = match parent {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .map_err(err)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    dn: &[(&str, &str)],
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    now: OffsetDateTime,
    what: &'static str,
) -> Result<(String, String), PkiError> {
    let err = |source| PkiError::Generate { what, source };
    let mut params = CertificateParams::default();
    params.distinguished_name = name(dn);
    params.subject_alt_names = sans
        .into_iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.signed_by(&key, issuer).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{CertInfo, load_certs};

    #[test]
    fn writes_an_nhs_shaped_chain() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&DevPkiOptions::default()).unwrap();
        let files = pki.write(dir.path(), false).unwrap();
        assert_eq!(files.len(), DEV_PKI_FILES.len());
        assert!(dev_pki_present(dir.path()));

        let chain = load_certs(&dir.path().join("server-chain.pem")).unwrap();
        assert_eq!(chain.len(), 2);
        let server = CertInfo::parse(&chain[0]).unwrap();
        assert_eq!(
            server.common_name.as_deref(),
            Some("BaRS-INT-X26.examplesupplier.thirdparty.nhs.uk")
        );
        assert!(server.dns_names.contains(&"localhost".to_owned()));
        assert!(server.ip_addresses.contains(&"127.0.0.1".parse().unwrap()));

        let client = CertInfo::parse(&load_certs(&dir.path().join("client.pem")).unwrap()[0]).unwrap();
        assert_eq!(client.common_name.as_deref(), Some(DEV_CLIENT_CN));
        assert!(client.dns_names.is_empty(), "shaped like the proxy's: no SAN");
        assert!(client.client_auth && !client.server_auth);

        let bundle = load_certs(&dir.path().join("ca-bundle.pem")).unwrap();
        assert_eq!(bundle.len(), 2);
        assert!(bundle.iter().all(|c| CertInfo::parse(c).unwrap().is_ca));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_existing_sets_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&DevPkiOptions::default()).unwrap();
        pki.write(dir.path(), false).unwrap();
        for key in ["server.key", "client.key", "foreign-client.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        assert!(matches!(
            pki.write(dir.path(), false),
            Err(PkiError::Exists { .. })
        ));
        assert!(pki.write(dir.path(), true).is_ok());
    }
}
