//! The API-M client assertion (bars-spec §6): an RS512 JWT with `typ` JWT and the registered
//! `kid`, claims `iss` = `sub` = the API key, `aud` = the token URL, a fresh UUID `jti` and an
//! `exp` at most five minutes ahead.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use uuid::Uuid;

use super::key::SigningKey;
use crate::config::MAX_ASSERTION_LIFETIME;
use crate::secret::Secret;

/// Why an assertion could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    /// The lifetime asked for is over [`MAX_ASSERTION_LIFETIME`] or zero.
    #[error(
        "assertion lifetime {0:?} is outside 1s..=5m: API-M refuses assertions expiring more than 5 minutes ahead"
    )]
    Lifetime(Duration),
    /// The signer failed (an unusable key).
    #[error("{origin}: signing failed: {detail}")]
    Sign {
        /// The key file.
        origin: String,
        /// The signer's message (never key material).
        detail: String,
    },
}

/// Signs client assertions for one API-M application.
#[derive(Clone)]
pub struct AssertionSigner {
    key: Arc<SigningKey>,
    api_key: Secret<String>,
    token_url: String,
    lifetime: Duration,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.key.kid())
            .field("token_url", &self.token_url)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer for the application `api_key`, exchanging at `token_url`. A `lifetime` over
    /// five minutes is refused.
    pub fn new(
        key: Arc<SigningKey>,
        api_key: Secret<String>,
        token_url: impl Into<String>,
        lifetime: Duration,
    ) -> Result<Self, AssertionError> {
        if lifetime.is_zero() || lifetime > MAX_ASSERTION_LIFETIME {
            return Err(AssertionError::Lifetime(lifetime));
        }
        Ok(Self {
            key,
            api_key,
            token_url: token_url.into(),
            lifetime,
        })
    }

    /// The token URL, which is also the assertion's audience.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A freshly signed assertion with a new `jti`.
    pub fn sign(&self) -> Result<ClientAssertion, AssertionError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            iss: self.api_key.expose(),
            sub: self.api_key.expose(),
            aud: &self.token_url,
            jti: Uuid::new_v4().to_string(),
            exp: now + self.lifetime.as_secs(),
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS512);
        header.typ = Some("JWT".into());
        header.kid = Some(self.key.kid().to_owned());
        let jwt = jsonwebtoken::encode(&header, &claims, self.key.encoding_key()).map_err(|e| {
            AssertionError::Sign {
                origin: self.key.origin().display().to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok(ClientAssertion {
            jwt: Secret::new(jwt),
            jti: claims.jti,
            exp: claims.exp,
        })
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    exp: u64,
}

/// A signed client assertion.
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    jwt: Secret<String>,
    jti: String,
    exp: u64,
}

impl ClientAssertion {
    /// The compact JWT, for the token request (or for printing when debugging a key).
    pub fn jwt(&self) -> &Secret<String> {
        &self.jwt
    }

    /// Its `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// Its `exp`, in seconds since the Unix epoch.
    pub fn exp(&self) -> u64 {
        self.exp
    }

    /// The decoded header and claims, for display (the signature is not checked here).
    pub fn decoded(&self) -> (Value, Value) {
        decode_parts(self.jwt.expose())
    }
}

/// Decodes the header and claims of a compact JWT without verifying it (for display).
/// Unreadable parts decode to `null`.
pub fn decode_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut part = || {
        parts
            .next()
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let header = part();
    (header, part())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn signer(lifetime: Duration) -> Result<AssertionSigner, AssertionError> {
        let pem = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .unwrap()
            .serialize_pem();
        let key = SigningKey::from_pem(pem.as_bytes(), "Test-INT-1", Path::new("k.pem")).unwrap();
        AssertionSigner::new(
            Arc::new(key),
            Secret::new("app-key".into()),
            "https://int.api.service.nhs.uk/oauth2/token",
            lifetime,
        )
    }

    #[test]
    fn signs_the_header_and_claims_api_m_requires() {
        let s = signer(MAX_ASSERTION_LIFETIME).unwrap();
        let a = s.sign().unwrap();
        let (header, claims) = a.decoded();
        assert_eq!(header["alg"], "RS512");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "Test-INT-1");
        assert_eq!(claims["iss"], "app-key");
        assert_eq!(claims["sub"], "app-key");
        assert_eq!(claims["aud"], "https://int.api.service.nhs.uk/oauth2/token");
        assert!(Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 300, "{exp} vs {now}");
        assert_ne!(s.sign().unwrap().jti(), a.jti(), "a fresh jti each time");
        assert!(!format!("{a:?}").contains(a.jwt().expose().as_str()));
    }

    #[test]
    fn refuses_a_lifetime_over_five_minutes() {
        assert!(matches!(
            signer(Duration::from_secs(301)),
            Err(AssertionError::Lifetime(_))
        ));
        assert!(signer(Duration::ZERO).is_err());
    }
}
