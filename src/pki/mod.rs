//! Certificates and keys made here: the server key and CSR for the NHS PKI ([`ServerCsr`]),
//! the API-M signing key ([`ApimKeyPair`]) and, with the `dev-tools` feature, a development
//! PKI (`DevPki`) for local testing only.

mod apim_key;
mod csr;
#[cfg(feature = "dev-tools")]
mod dev;

use std::path::{Path, PathBuf};

pub use apim_key::{ApimKeyFiles, ApimKeyPair};
pub use csr::{HostedBy, ServerCsr, ServerNameSpec};
#[cfg(feature = "dev-tools")]
pub use dev::{DEV_CLIENT_CN, DEV_PKI_FILES, DevPki, DevPkiOptions, dev_pki_present};

use crate::private_files;

/// Why a key, CSR or development PKI could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output already exists.
    #[error("{path} already exists; use --force to replace it")]
    Exists {
        /// The first existing file.
        path: PathBuf,
    },
    /// A name part or option is not acceptable.
    #[error("{what}: {message}")]
    Invalid {
        /// The option at fault, e.g. `--ods`.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl PkiError {
    fn write(path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Write { path, source }
    }
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    private_files::create_private_dir(dir).map_err(PkiError::write(dir))
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    private_files::write_file(path, bytes, secret).map_err(PkiError::write(path))
}
