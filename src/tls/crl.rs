//! Certificate revocation lists: loaded from PEM or DER files (several, typically one per
//! CA), checked in the handshake by the webpki verifier, and described for metrics and logs.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::TlsError;

/// How revocation is enforced. The client (end-entity) certificate is checked against the
/// CRL of its issuing CA (the SubCA). The SubCA itself, verified as an intermediate under the
/// Root, is not checked against the Root's CRL: requiring that CRL would refuse every client
/// of a receiver configured with the SubCA's CRL alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RevocationPolicy {
    /// Admit a certificate whose issuer has no CRL loaded (default: refuse).
    pub allow_unknown_status_unsafe: bool,
    /// Keep using a CRL past its nextUpdate (default: refuse every client it covers).
    pub allow_expired_crl_unsafe: bool,
}

/// What a CRL file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The file.
    pub path: PathBuf,
    /// The issuing CA.
    pub issuer: String,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, when present.
    pub next_update: Option<OffsetDateTime>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

/// Loads every CRL in `files` (each PEM with one or more `X509 CRL` blocks, or one DER CRL).
pub(crate) fn load_crls(
    files: &[PathBuf],
) -> Result<(Vec<CertificateRevocationListDer<'static>>, Vec<CrlInfo>), TlsError> {
    let mut crls = Vec::new();
    let mut infos = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let (mut file_crls, mut file_infos) = crls_from_bytes(bytes, path)?;
        crls.append(&mut file_crls);
        infos.append(&mut file_infos);
    }
    Ok((crls, infos))
}

/// The CRLs of one file already read from `path`, described (the fuzz targets call it
/// directly).
pub(crate) fn crls_from_bytes(
    bytes: Vec<u8>,
    path: &Path,
) -> Result<(Vec<CertificateRevocationListDer<'static>>, Vec<CrlInfo>), TlsError> {
    let crls = split_crl_file(bytes, path)?;
    let infos = crls
        .iter()
        .map(|der| describe(path, der))
        .collect::<Result<_, _>>()?;
    Ok((crls, infos))
}

fn split_crl_file(
    bytes: Vec<u8>,
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let malformed = |detail: String| TlsError::Malformed {
        path: path.to_owned(),
        what: "certificate revocation list",
        detail,
    };
    // DER starts with a SEQUENCE tag; anything else is read as PEM.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    if crls.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "certificate revocation list",
        });
    }
    Ok(crls)
}

fn describe(path: &Path, der: &CertificateRevocationListDer<'_>) -> Result<CrlInfo, TlsError> {
    let malformed = |detail: String| TlsError::Malformed {
        path: path.to_owned(),
        what: "certificate revocation list",
        detail,
    };
    let (_, crl) = CertificateRevocationList::from_der(der.as_ref()).map_err(|e| malformed(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| malformed(e.to_string()))
    };
    Ok(CrlInfo {
        path: path.to_owned(),
        issuer: crl.issuer().to_string(),
        this_update: time(crl.last_update())?,
        next_update: crl.next_update().map(time).transpose()?,
        revoked: crl.iter_revoked_certificates().count(),
    })
}
