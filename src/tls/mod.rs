//! TLS material: PEM loading with path-carrying errors, the server configuration, the
//! client-certificate verifier with identity pins, the verified peer identity and the
//! classification of handshake failures.

mod certinfo;
mod config;
mod crl;
mod dn;
mod error;
mod identity;
mod pem;
mod refusal;
mod server;
mod verifier;

pub(crate) use verifier::PRESENTED;

pub(crate) use certinfo::hex;
pub use certinfo::{CertInfo, CertParseError};
#[cfg(feature = "dev-tools")]
pub(crate) use config::server_builder;
pub(crate) use config::{client_builder, key_error, load_roots};
#[cfg(feature = "fuzzing")]
pub(crate) use crl::crls_from_bytes;
pub(crate) use crl::load_crls;
pub use crl::{CrlInfo, RevocationPolicy};
pub use error::TlsError;
pub use identity::{ClientNamePins, NamePattern, NamePatternError, PeerIdentity};
#[cfg(feature = "fuzzing")]
pub(crate) use pem::{certs_from_pem, key_from_pem};
pub use pem::{load_certs, load_key};
pub use refusal::RefusalReason;
pub use server::{ClientCas, TlsSettings, load_client_cas};
pub(crate) use server::{TlsMaterial, build_server_config};

#[cfg(test)]
mod tests;
