//! Assembles the rustls server configuration: our chain and key, TLS 1.2/1.3 only, ALPN
//! h2 and http/1.1, and mandatory client certificates verified against the configured CA
//! bundle only (never system roots).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::certinfo::CertInfo;
use super::config::{key_error, load_roots, provider, server_builder};
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
    /// CA files whose certificates are all trust anchors for client certificates.
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
    /// The client trust anchors.
    pub(crate) anchors: Vec<CertInfo>,
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
    let (roots, anchors) = load_anchors(&settings.client_ca)?;
    let (crl_ders, crls) = load_crls(&settings.crl)?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
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
        anchors,
        crls,
    })
}

/// Every certificate of every CA file becomes a trust anchor, so that a client sending only
/// its leaf verifies against the SubCA, and one sending leaf + SubCA against the Root.
pub fn load_anchors(files: &[PathBuf]) -> Result<(RootCertStore, Vec<CertInfo>), TlsError> {
    if files.is_empty() {
        return Err(TlsError::NoClientCa);
    }
    let mut anchors = Vec::new();
    let roots = load_roots(files.iter().map(PathBuf::as_path), |cert| {
        let info = CertInfo::parse(cert).map_err(|e| e.to_string())?;
        if !info.is_ca {
            return Err(format!("{} is not a CA certificate", info.subject));
        }
        anchors.push(info);
        Ok(())
    })?;
    Ok((roots, anchors))
}
