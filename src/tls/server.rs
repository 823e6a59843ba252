//! Assembles the rustls server configuration: our chain and key, TLS 1.2/1.3 only, ALPN
//! h2 and http/1.1, and mandatory client certificates verified against the configured CA
//! bundle only (never system roots).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{DistinguishedName, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certinfo::CertInfo;
use super::config::{key_error, provider, server_builder};
use super::crl::{CrlInfo, RevocationPolicy, load_crls};
use super::identity::ClientNamePins;
use super::verifier::AdmissionVerifier;
use super::{TlsError, pem};

/// What the TLS server is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// Server certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// Server private key.
    pub private_key: PathBuf,
    /// CA files for client certificates: the Roots are the trust anchors, the SubCAs are
    /// verified as intermediates under them (see [`ClientCas`]).
    pub client_ca: Vec<PathBuf>,
    /// Identity pins.
    pub allowed_client_names: ClientNamePins,
    /// CRL files; empty = no revocation checking.
    pub crl: Vec<PathBuf>,
    /// How the CRLs are enforced.
    pub revocation: RevocationPolicy,
}

impl TlsSettings {
    /// Settings from the four parts.
    pub fn new(
        cert_chain: PathBuf,
        private_key: PathBuf,
        client_ca: Vec<PathBuf>,
        allowed_client_names: ClientNamePins,
    ) -> Self {
        Self {
            cert_chain,
            private_key,
            client_ca,
            allowed_client_names,
            crl: Vec::new(),
            revocation: RevocationPolicy::default(),
        }
    }

    /// Adds revocation checking against `crl` files.
    pub fn with_crls(mut self, crl: Vec<PathBuf>, revocation: RevocationPolicy) -> Self {
        self.crl = crl;
        self.revocation = revocation;
        self
    }
}

/// A built server configuration and what it was built from, for logs and checks.
#[derive(Debug, Clone)]
pub(crate) struct TlsMaterial {
    /// The rustls configuration.
    pub(crate) config: Arc<ServerConfig>,
    /// The server leaf certificate.
    pub(crate) server_cert: CertInfo,
    /// Every certificate of the client CA bundle, Roots and SubCAs.
    pub(crate) client_cas: Vec<CertInfo>,
    /// The CRLs in force.
    pub(crate) crls: Vec<CrlInfo>,
}

/// Builds the server configuration, failing with the file at fault.
pub(crate) fn build_server_config(settings: &TlsSettings) -> Result<TlsMaterial, TlsError> {
    let provider = provider();
    let chain = pem::load_certs(&settings.cert_chain)?;
    let key = pem::load_key(&settings.private_key)?;
    let server_cert = CertInfo::parse(&chain[0]).map_err(|e| TlsError::Malformed {
        path: settings.cert_chain.clone(),
        what: "certificate",
        detail: e.to_string(),
    })?;
    let cas = load_client_cas(&settings.client_ca)?;
    let (crl_ders, crls) = load_crls(&settings.crl)?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(cas.roots.clone()), provider.clone())
            // The CertificateRequest names the SubCAs as well as the Roots (as when both were
            // anchors), for clients that choose their certificate by the issuers it lists.
            .add_root_hint_subjects(cas.subca_subjects.clone());
    if !crl_ders.is_empty() {
        builder = builder.with_crls(crl_ders);
        let policy = settings.revocation;
        builder = builder.only_check_end_entity_revocation();
        if policy.allow_unknown_status_unsafe {
            builder = builder.allow_unknown_revocation_status();
        }
        if !policy.allow_expired_crl_unsafe {
            builder = builder.enforce_revocation_expiration();
        }
    }
    let webpki = builder.build().map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(AdmissionVerifier::new(
        webpki,
        cas.subcas.clone(),
        settings.allowed_client_names.clone(),
    ));
    let mut config = server_builder()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| key_error(e, &settings.cert_chain, &settings.private_key))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        server_cert,
        client_cas: cas.certs,
        crls,
    })
}

/// The client CA bundle (`tls.client_ca`), by role. The self-issued CA certificates (the
/// environment's Root) are the only trust anchors. Every other CA certificate (a SubCA) is an
/// intermediate that the verifier adds to the chain each client sends: as an anchor it would
/// lose its basicConstraints (path length), name constraints and validity, since webpki keeps
/// only a trust anchor's name and key; as an intermediate every one of them applies, and a
/// client that sends only its leaf still chains through it.
#[derive(Debug, Clone)]
pub struct ClientCas {
    pub(crate) roots: RootCertStore,
    pub(crate) subcas: Vec<CertificateDer<'static>>,
    pub(crate) subca_subjects: Vec<DistinguishedName>,
    certs: Vec<CertInfo>,
}

impl ClientCas {
    /// Every certificate of the bundle, in file order; `self_issued` tells a Root (a trust
    /// anchor) from a SubCA (verified as an intermediate under it).
    pub fn certs(&self) -> &[CertInfo] {
        &self.certs
    }

    /// How many Roots (trust anchors) the bundle holds.
    pub fn root_count(&self) -> usize {
        self.roots.len()
    }

    /// How many SubCAs the bundle holds.
    pub fn subca_count(&self) -> usize {
        self.subcas.len()
    }
}

/// Reads the client CA bundle. Every certificate must be a CA; each SubCA must chain, by
/// issuer name through the bundle, to a Root in it (a SubCA alone would trust nobody, since
/// it is not an anchor, so that is refused here, naming the file, rather than refusing every
/// client later).
pub fn load_client_cas(files: &[PathBuf]) -> Result<ClientCas, TlsError> {
    if files.is_empty() {
        return Err(TlsError::NoClientCa);
    }
    struct Entry {
        path: PathBuf,
        index: usize,
        der: CertificateDer<'static>,
        info: CertInfo,
        subject: Vec<u8>,
        issuer: Vec<u8>,
    }
    let mut entries = Vec::new();
    for path in files {
        for (i, der) in pem::load_certs(path)?.into_iter().enumerate() {
            let bad = |detail: String| TlsError::BadAnchor {
                path: path.clone(),
                index: i + 1,
                detail,
            };
            let info = CertInfo::parse(&der).map_err(|e| bad(e.to_string()))?;
            if !info.is_ca {
                return Err(bad(format!("{} is not a CA certificate", info.subject)));
            }
            let (subject, issuer) = raw_names(&der).map_err(bad)?;
            entries.push(Entry {
                path: path.clone(),
                index: i + 1,
                der,
                info,
                subject,
                issuer,
            });
        }
    }
    let mut roots = RootCertStore::empty();
    let mut subcas = Vec::new();
    let mut subca_subjects = Vec::new();
    for e in &entries {
        if e.info.self_issued {
            roots.add(e.der.clone()).map_err(|err| TlsError::BadAnchor {
                path: e.path.clone(),
                index: e.index,
                detail: err.to_string(),
            })?;
            continue;
        }
        // Up the issuer names, at most once per certificate of the bundle (SubCAs naming
        // each other in a loop never reach a Root).
        let mut last = e;
        let mut reaches_root = false;
        for _ in 0..entries.len() {
            match entries.iter().find(|c| c.subject == last.issuer) {
                Some(parent) if parent.info.self_issued => {
                    reaches_root = true;
                    break;
                }
                Some(parent) => last = parent,
                None => break,
            }
        }
        if !reaches_root {
            return Err(TlsError::SubCaWithoutRoot {
                path: e.path.clone(),
                index: e.index,
                subject: e.info.subject.clone(),
                issuer: last.info.issuer.clone(),
            });
        }
        subcas.push(e.der.clone());
        subca_subjects.push(DistinguishedName::from(e.subject.clone()));
    }
    Ok(ClientCas {
        roots,
        subcas,
        subca_subjects,
        certs: entries.into_iter().map(|e| e.info).collect(),
    })
}

/// The DER subject and issuer names of a certificate, compared byte for byte as webpki's
/// path building compares them.
fn raw_names(der: &CertificateDer<'_>) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    Ok((cert.subject().as_raw().to_vec(), cert.issuer().as_raw().to_vec()))
}
