//! Acting as a BaRS sender (bars-spec §6): the API-M signing key and client assertion, the
//! token exchange and cache, and the BaRS API client that sends responses and updates back
//! through the national proxy. Knows nothing of the server.

mod assertion;
mod cache;
mod client;
mod error;
mod key;
mod outcome;
mod request;
mod token;
mod transport;

pub use assertion::{AssertionError, AssertionSigner, ClientAssertion, decode_parts};
pub use cache::TokenProvider;
pub use client::BarsClient;
pub use error::{SendError, SetupError};
pub use key::{
    KeyError, KidConventionError, MIN_RSA_BITS, RECOMMENDED_RSA_BITS, SigningKey, key_file_warning,
    kid_convention,
};
pub use outcome::{CodeFamily, OutcomeError};
pub use request::{BarsMethod, BarsRequest, BarsResponse};
pub use token::{AccessToken, CLIENT_ASSERTION_TYPE, TokenError, parse_token_response};

// The lifetime bound lives with the setting it bounds and `Secret` in a leaf module, so that
// config never uses the sender; both keep their public paths here.
pub use crate::config::MAX_ASSERTION_LIFETIME;
pub use crate::secret::Secret;
