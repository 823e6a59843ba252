//! TLS material errors, each naming the file at fault.

use std::path::PathBuf;

/// Why TLS material could not be loaded or assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no PEM item of the kind expected.
    #[error("{path}: contains no {what} (is it empty, or the wrong file?)")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was expected: "certificate", "private key".
        what: &'static str,
    },
    /// The file is not well-formed PEM, or an item in it does not parse.
    #[error("{path}: not a valid {what}: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// Parser detail (never key material).
        detail: String,
    },
    /// The private key does not belong to the first certificate of the chain.
    #[error("{key}: this private key does not match the certificate at the top of {chain}")]
    KeyMismatch {
        /// The chain file.
        chain: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The private key could not be used for TLS (unsupported algorithm or encoding).
    #[error("{path}: unusable private key: {detail}")]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// No client CA file was configured: the receiver would trust nobody, or everybody.
    #[error("tls.client_ca is empty: a client CA bundle (the environment's NHS Root and SubCA) is required")]
    NoClientCa,
    /// A CA certificate could not be used as a trust anchor (or, in `tls.client_ca`, as a
    /// SubCA under one).
    #[error("{path}: certificate #{index} cannot be a trust anchor: {detail}")]
    BadAnchor {
        /// The CA file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// Why.
        detail: String,
    },
    /// A SubCA of the client CA bundle whose issuer chain reaches no Root in the bundle: the
    /// SubCAs are verified as intermediates under a Root, so alone it would admit nobody.
    #[error(
        "{path}: certificate #{index} ('{subject}') is a SubCA whose issuer '{issuer}' is not in tls.client_ca: add the environment's Root CA to tls.client_ca (a SubCA is verified under its Root, never trusted on its own)"
    )]
    SubCaWithoutRoot {
        /// The CA file.
        path: PathBuf,
        /// Position of the certificate in the file, from 1.
        index: usize,
        /// The SubCA's subject.
        subject: String,
        /// The issuer missing from the bundle.
        issuer: String,
    },
    /// rustls refused to assemble the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}
