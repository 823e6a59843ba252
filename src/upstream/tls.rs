//! The rustls client configuration for an `https` upstream: the configured CA files (and the
//! system roots only when `use_system_roots` says so), an optional client certificate.

use std::path::PathBuf;

use rustls::ClientConfig;

use super::UpstreamError;
use crate::config::UpstreamSettings;
use crate::tls::{TlsError, client_builder, key_error, load_certs, load_key, load_roots};

/// Builds the client configuration, failing with the file at fault.
pub(super) fn client_config(settings: &UpstreamSettings) -> Result<ClientConfig, UpstreamError> {
    let mut roots =
        load_roots(settings.ca.iter().map(PathBuf::as_path), |_| Ok(())).map_err(|e| match e {
            TlsError::BadAnchor { path, index, detail } => UpstreamError::BadCa { path, index, detail },
            other => other.into(),
        })?;
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
    let builder = client_builder(roots)?;
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert)?;
            let private_key = load_key(key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| key_error(e, cert, key).into())
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}
