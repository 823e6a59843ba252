//! `POST /oauth2/token`: API-M's client-credentials grant with a signed JWT. Issues opaque
//! bearer tokens (`expires_in` "599", `token_type` Bearer, `issued_at` in ms), remembers
//! each assertion's `jti` until it expires, and checks bearer tokens for the BaRS API.
//! Tokens and API keys are never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use uuid::Uuid;

use super::assertion::{self, JTI_REUSED, Refusal};
use super::registry::Registry;

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerRefusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token this proxy did not issue, or one that has expired.
    Invalid,
}

/// The token endpoint and the tokens it issued.
pub(crate) struct TokenService {
    registry: Registry,
    audiences: Vec<String>,
    lifetime: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Issued tokens: the application's name and when the token expires.
    tokens: HashMap<String, (String, Instant)>,
    /// `(api key, jti)` of accepted assertions, until their `exp`.
    jtis: HashMap<(String, String), u64>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("registry", &self.registry)
            .field("audiences", &self.audiences)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    pub(crate) fn new(registry: Registry, audiences: Vec<String>, lifetime: Duration) -> Self {
        Self {
            registry,
            audiences,
            lifetime,
            state: Mutex::new(State::default()),
        }
    }

    /// Answers a token request: status and JSON body.
    pub(crate) fn exchange(&self, body: &[u8]) -> (u16, Value) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        match self.grant(body, now.as_secs()) {
            Ok((app, token)) => {
                tracing::info!(application = %app, expires_in = self.lifetime.as_secs(), "access token issued");
                let body = json!({
                    "access_token": token,
                    "expires_in": self.lifetime.as_secs().to_string(),
                    "token_type": "Bearer",
                    "issued_at": now.as_millis().to_string(),
                });
                (200, body)
            }
            Err(refusal) => {
                let message_id = format!("rrt-{}", Uuid::new_v4());
                tracing::info!(
                    status = refusal.status,
                    error = refusal.error,
                    error_description = refusal.description,
                    %message_id,
                    "token request refused"
                );
                let body = json!({
                    "error": refusal.error,
                    "error_description": refusal.description,
                    "message_id": message_id,
                });
                (refusal.status, body)
            }
        }
    }

    fn grant(&self, body: &[u8], now: u64) -> Result<(String, String), Refusal> {
        let verified = assertion::verify(body, &self.registry, &self.audiences, now)?;
        let token = new_token();
        let mut state = self.lock();
        state.jtis.retain(|_, exp| *exp > now);
        let jti = (verified.api_key, verified.jti);
        if state.jtis.contains_key(&jti) {
            return Err(JTI_REUSED);
        }
        state.jtis.insert(jti, verified.exp);
        let at = Instant::now();
        state.tokens.retain(|_, (_, expires)| *expires > at);
        state
            .tokens
            .insert(token.clone(), (verified.app.clone(), at + self.lifetime));
        Ok((verified.app, token))
    }

    /// Checks an `Authorization` header; the application's name when the token is good.
    pub(crate) fn check_bearer(&self, authorization: Option<&str>) -> Result<String, BearerRefusal> {
        let token = authorization
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(BearerRefusal::Missing)?;
        let state = self.lock();
        match state.tokens.get(token) {
            Some((app, expires)) if *expires > Instant::now() => Ok(app.clone()),
            _ => Err(BearerRefusal::Invalid),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds plain maps; a panic while holding the lock leaves them usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 32 random bytes, base64url: an opaque token nobody can guess.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable; two UUIDs (also from the OS RNG, via
        // getrandom) keep the token unguessable rather than predictable.
        bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}
