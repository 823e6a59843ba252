//! A PKI per test run: Root → SubCA → server and client leaves, plus every broken variant
//! the refusal tests need. Nothing here is written outside a temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate with its key; `chain` is what the client presents (leaf + SubCA).
pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        let key = KeyPair::from_pem(&self.key_pem).expect("key");
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
    }

    /// The leaf alone, without the SubCA.
    pub fn leaf_only(&self) -> Leaf {
        Leaf {
            pem: self.pem.clone(),
            key_pem: self.key_pem.clone(),
            chain: vec![self.chain[0].clone()],
        }
    }
}

pub struct TestPki {
    pub root: Ca,
    pub subca: Ca,
    pub server: Leaf,
    pub client: Leaf,
}

pub struct ServerFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
    pub root: PathBuf,
    pub subca: PathBuf,
}

/// How a client leaf differs from the good one.
#[derive(Clone, Default)]
pub struct LeafSpec {
    pub cn: Option<String>,
    /// The whole subject, in this (ASN.1) order, instead of `O=nhs, OU=Devices` and `cn`.
    pub subject: Option<Vec<(DnType, String)>>,
    pub dns: Vec<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub eku: Option<Vec<ExtendedKeyUsagePurpose>>,
    pub serial: Option<u64>,
}

impl TestPki {
    pub fn new() -> Self {
        Self::with_subca(BasicConstraints::Unconstrained)
    }

    /// A PKI whose SubCA has these basicConstraints (e.g. `Constrained(0)`: it may issue
    /// leaves only, as the NHS SubCAs do).
    pub fn with_subca(constraints: BasicConstraints) -> Self {
        let root = ca("Test NHS Root Authority", None);
        let subca = ca_with("Test NHS Level 1C", Some(&root.issuer), IsCa::Ca(constraints));
        let server = leaf(
            &subca,
            LeafSpec {
                cn: Some("BaRS-INT-X26.test.thirdparty.nhs.uk".into()),
                dns: vec!["localhost".into(), "BaRS-INT-X26.test.thirdparty.nhs.uk".into()],
                eku: Some(vec![ExtendedKeyUsagePurpose::ServerAuth]),
                ..LeafSpec::default()
            },
        );
        let client = leaf(&subca, LeafSpec::default());
        Self {
            root,
            subca,
            server,
            client,
        }
    }

    /// A client leaf issued by this PKI's SubCA.
    pub fn client_leaf(&self, spec: LeafSpec) -> Leaf {
        leaf(&self.subca, spec)
    }

    pub fn write_server_files(&self, dir: &Path) -> ServerFiles {
        let files = ServerFiles {
            chain: dir.join("server-chain.pem"),
            key: dir.join("server.key"),
            root: dir.join("root.pem"),
            subca: dir.join("subca.pem"),
        };
        std::fs::write(&files.chain, format!("{}{}", self.server.pem, self.subca.pem)).expect("write chain");
        std::fs::write(&files.key, &self.server.key_pem).expect("write key");
        std::fs::write(&files.root, &self.root.pem).expect("write root");
        std::fs::write(&files.subca, &self.subca.pem).expect("write subca");
        files
    }
}

/// A client from an unrelated CA, with the same name as the good one.
pub fn foreign_client() -> Leaf {
    let foreign = ca("Foreign CA", None);
    leaf(&foreign, LeafSpec::default())
}

pub fn ca(cn: &str, parent: Option<&Issuer<'static, KeyPair>>) -> Ca {
    ca_with(cn, parent, IsCa::Ca(BasicConstraints::Unconstrained))
}

/// A CA named `cn` with these basicConstraints, self-signed or issued by `parent`.
pub fn ca_with(cn: &str, parent: Option<&Issuer<'static, KeyPair>>, is_ca: IsCa) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::OrganizationName, "nhs");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "CA");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = is_ca;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params.use_authority_key_identifier_extension = parent.is_some();
    let key = KeyPair::generate().expect("key");
    let cert = match parent {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .expect("ca cert");
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

pub fn leaf(ca: &Ca, spec: LeafSpec) -> Leaf {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::OrganizationName, "nhs");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "Devices");
    params.distinguished_name.push(
        DnType::CommonName,
        spec.cn.clone().unwrap_or_else(|| "int.api.service.nhs.uk".into()),
    );
    if let Some(subject) = &spec.subject {
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in subject {
            params.distinguished_name.push(ty.clone(), value.as_str());
        }
    }
    params.subject_alt_names = spec
        .dns
        .iter()
        .map(|d| SanType::DnsName(d.clone().try_into().expect("dns")))
        .collect();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = spec
        .eku
        .clone()
        .unwrap_or_else(|| vec![ExtendedKeyUsagePurpose::ClientAuth]);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = spec.serial.map(rcgen::SerialNumber::from);
    params.not_before = spec
        .not_before
        .unwrap_or_else(|| OffsetDateTime::now_utc() - Duration::days(1));
    params.not_after = spec
        .not_after
        .unwrap_or_else(|| OffsetDateTime::now_utc() + Duration::days(365));
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    Leaf {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        chain: vec![cert.der().clone(), ca.der.clone()],
    }
}

/// A client leaf `depth` CAs below `ca` (each unconstrained, each issued by the one above),
/// presenting the whole chain: leaf, the `depth` intermediates from the lowest up, then `ca`.
/// Also the PEM of that chain less the leaf, for `openssl`.
pub fn leaf_below_intermediates(ca: &Ca, depth: usize) -> (Leaf, String) {
    let mut intermediates: Vec<Ca> = Vec::new();
    for i in 1..=depth {
        let parent = intermediates.last().map_or(&ca.issuer, |c| &c.issuer);
        intermediates.push(self::ca(&format!("Test Intermediate {i}"), Some(parent)));
    }
    let mut leaf = leaf(intermediates.last().unwrap_or(ca), LeafSpec::default());
    let above: Vec<&Ca> = intermediates.iter().rev().chain(std::iter::once(ca)).collect();
    leaf.chain = std::iter::once(leaf.chain[0].clone())
        .chain(above.iter().map(|c| c.der.clone()))
        .collect();
    let pem = above.iter().map(|c| c.pem.as_str()).collect();
    (leaf, pem)
}

/// A CRL from `ca` revoking `serials`, valid from `this_update` to `next_update` (PEM).
pub fn crl(ca: &Ca, serials: &[u64], this_update: OffsetDateTime, next_update: OffsetDateTime) -> String {
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: rcgen::SerialNumber::from(OffsetDateTime::now_utc().unix_timestamp_nanos() as u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*s),
                revocation_time: this_update,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.issuer).expect("crl").pem().expect("crl pem")
}

/// A fresh server leaf from `ca` (for rotation tests), named `cn`.
pub fn server_leaf(ca: &Ca, cn: &str) -> Leaf {
    leaf(
        ca,
        LeafSpec {
            cn: Some(cn.into()),
            dns: vec!["localhost".into()],
            eku: Some(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            ..LeafSpec::default()
        },
    )
}
