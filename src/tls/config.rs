//! What every rustls configuration in this crate is assembled from: the one crypto provider
//! (aws-lc-rs) with TLS 1.3 and 1.2, root stores read from CA files, and the mapping of a key
//! that does not belong to its certificate onto an error naming both files.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore, ServerConfig, WantsVerifier};
use rustls_pki_types::CertificateDer;

use super::{TlsError, pem};

/// The protocol versions offered and accepted everywhere.
const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider in this program.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration on the provider, TLS 1.3 and 1.2, trusting `roots`.
pub(crate) fn client_builder(
    roots: RootCertStore,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots))
}

/// A server configuration on the provider, TLS 1.3 and 1.2, still to be given its
/// client-certificate policy.
pub(crate) fn server_builder() -> Result<ConfigBuilder<ServerConfig, WantsVerifier>, TlsError> {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// A root store holding every certificate of every file in `files`. `check` sees each
/// certificate first and may refuse it with a reason; a refusal, or a certificate rustls
/// cannot use as a trust anchor, is [`TlsError::BadAnchor`] naming the file and position.
pub(crate) fn load_roots<'a>(
    files: impl IntoIterator<Item = &'a Path>,
    mut check: impl FnMut(&CertificateDer<'static>) -> Result<(), String>,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in files {
        for (index, cert) in pem::load_certs(path)?.into_iter().enumerate() {
            let bad = |detail: String| TlsError::BadAnchor {
                path: path.to_owned(),
                index: index + 1,
                detail,
            };
            check(&cert).map_err(bad)?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(roots)
}

/// A rustls refusal of a certificate chain and key pair, as an error naming the files: the
/// key not matching the chain's leaf, or a key rustls cannot use.
pub(crate) fn key_error(e: rustls::Error, chain: &Path, key: &Path) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => TlsError::KeyMismatch {
            chain: chain.to_owned(),
            key: key.to_owned(),
        },
        other => TlsError::UnusableKey {
            path: key.to_owned(),
            detail: other.to_string(),
        },
    }
}
