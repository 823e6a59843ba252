//! Why a client could not be set up, and why a send failed.

use super::assertion::AssertionError;
use super::key::KeyError;
use super::outcome::OutcomeError;
use super::token::TokenError;
use crate::tls::TlsError;

/// Why a [`super::BarsClient`] could not be built. Errors name the key or file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// `sender.private_key` is unusable.
    #[error("sender.private_key: {0}")]
    Key(#[from] KeyError),
    /// `sender.ca_file` is unusable, or TLS could not be configured.
    #[error("sender.ca_file: {0}")]
    Tls(#[from] TlsError),
    /// The assertion settings are refused.
    #[error("sender.assertion_lifetime: {0}")]
    Assertion(#[from] AssertionError),
    /// A configured value cannot be sent as an HTTP header.
    #[error("{key}: cannot be sent as an HTTP header: {source}")]
    Header {
        /// The setting at fault.
        key: &'static str,
        /// Why.
        source: http::header::InvalidHeaderValue,
    },
}

/// Why a BaRS API request did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No access token could be obtained.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// The API, proxy or receiver answered with an error OperationOutcome.
    #[error("{0}")]
    Refused(Box<OutcomeError>),
    /// An error status without an OperationOutcome.
    #[error("HTTP {status} without an OperationOutcome: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// Every attempt failed before a response arrived.
    #[error("no response after {attempts} attempt(s): {message}")]
    Transport {
        /// Attempts made (all with the same X-Request-Id).
        attempts: u32,
        /// The last failure.
        message: String,
    },
    /// Every response lacked the echoed `X-Request-Id`/`X-Correlation-Id`.
    #[error(
        "no response echoed X-Request-Id and X-Correlation-Id after {attempts} attempt(s) (last HTTP {status})"
    )]
    MissingIds {
        /// Attempts made (all with the same X-Request-Id).
        attempts: u32,
        /// The last status.
        status: u16,
    },
    /// The request could not be built.
    #[error("the request could not be built: {0}")]
    Request(String),
}

impl SendError {
    /// The OperationOutcome error, when the failure was answered with one.
    pub fn outcome(&self) -> Option<&OutcomeError> {
        match self {
            Self::Refused(o) => Some(o),
            _ => None,
        }
    }

    /// The HTTP status of the final answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused(o) => Some(o.status),
            Self::Status { status, .. } | Self::MissingIds { status, .. } => Some(*status),
            Self::Token(TokenError::Refused { status, .. }) => Some(*status),
            _ => None,
        }
    }
}
