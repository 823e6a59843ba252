//! PEM loading through `rustls-pki-types`, with errors that name the file and tell an
//! empty file from a malformed one.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Every certificate in a PEM file, in file order. No certificate is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from_pem(&read(path)?, path)
}

/// [`load_certs`] on bytes already read from `path` (the fuzz targets call it directly).
pub(crate) fn certs_from_pem(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, "PEM certificate file", &e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The private key in a PEM file: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    key_from_pem(&read(path)?, path)
}

/// [`load_key`] on bytes already read from `path` (the fuzz targets call it directly).
pub(crate) fn key_from_pem(bytes: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Empty {
            path: path.to_owned(),
            what: "private key",
        },
        other => malformed(path, "PEM private key file", &other),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn malformed(path: &Path, what: &'static str, e: &pem::Error) -> TlsError {
    // pem::Error's Display never contains key bytes, only markers and positions.
    let detail = match e {
        pem::Error::NoItemsFound => "no PEM items".to_owned(),
        other => other.to_string(),
    };
    TlsError::Malformed {
        path: path.to_owned(),
        what,
        detail,
    }
}
