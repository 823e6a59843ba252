//! The rustls client configuration for an `https` upstream: the configured CA files (and the
//! system roots only when `use_system_roots` says so), an optional client certificate.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use super::UpstreamError;
use crate::config::UpstreamSettings;
use crate::tls::{TlsError, load_certs, load_key};

/// Builds the client configuration, failing with the file at fault.
pub(super) fn client_config(settings: &UpstreamSettings) -> Result<ClientConfig, UpstreamError> {
    let mut roots = RootCertStore::empty();
    for path in &settings.ca {
        for (index, cert) in load_certs(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| UpstreamError::BadCa {
                path: path.clone(),
                index: index + 1,
                detail: e.to_string(),
            })?;
        }
    }
    if settings.use_system_roots {
        let found = rustls_native_certs::load_native_certs();
        let before = roots.len();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if roots.len() == before {
            let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(UpstreamError::NoSystemRoots {
                detail: if errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errors.join("; "))
                },
            });
        }
        if ignored > 0 {
            tracing::debug!(ignored, "system root certificates that could not be used");
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert)?;
            let private_key = load_key(key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        TlsError::KeyMismatch {
                            chain: cert.clone(),
                            key: key.clone(),
                        }
                    }
                    other => TlsError::UnusableKey {
                        path: key.clone(),
                        detail: other.to_string(),
                    },
                })
                .map_err(UpstreamError::from)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}
