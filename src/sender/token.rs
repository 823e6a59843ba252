//! The API-M token exchange (client credentials with a signed JWT): the form posted, and the
//! typed success and failure answers. A failure's `error_description` is kept verbatim: it is
//! what tells an integrator why API-M refused the key.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::assertion::{AssertionError, AssertionSigner};
use super::transport::Transport;
use crate::secret::Secret;

/// `client_assertion_type` for a JWT bearer assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An API-M access token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret<String>,
    /// `token_type` (`Bearer`).
    pub token_type: String,
    /// `expires_in`.
    pub expires_in: Duration,
    /// `issued_at`, milliseconds since the Unix epoch, when API-M sent it.
    pub issued_at: Option<u64>,
}

/// Why no token was obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The client assertion could not be signed.
    #[error(transparent)]
    Assertion(#[from] AssertionError),
    /// The token URL could not be reached or did not answer.
    #[error("token request to {url} failed: {message}")]
    Transport {
        /// The token URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// API-M refused the request and said why.
    #[error("API-M refused the token request (HTTP {status}): {}{}", description.as_deref().unwrap_or("(no error_description)"), detail(error.as_deref(), message_id.as_deref()))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// `error`, e.g. `invalid_request`.
        error: Option<String>,
        /// `error_description`, verbatim.
        description: Option<String>,
        /// `message_id`, to quote to NHS England support.
        message_id: Option<String>,
    },
    /// The answer could not be understood.
    #[error("token endpoint answered HTTP {status} with an unusable body: {detail}")]
    Malformed {
        /// The HTTP status.
        status: u16,
        /// What was wrong (and the start of the body, when it is not JSON).
        detail: String,
    },
    /// Sandbox mode has no tokens.
    #[error("sender.mode is sandbox: the sandbox needs no token")]
    Sandbox,
}

fn detail(error: Option<&str>, message_id: Option<&str>) -> String {
    match (error, message_id) {
        (None, None) => String::new(),
        (Some(e), None) => format!(" (error {e})"),
        (None, Some(m)) => format!(" (message_id {m})"),
        (Some(e), Some(m)) => format!(" (error {e}, message_id {m})"),
    }
}

/// Signs a fresh assertion and exchanges it for a token.
pub(crate) async fn exchange(
    signer: &AssertionSigner,
    transport: &Transport,
) -> Result<AccessToken, TokenError> {
    let assertion = signer.sign()?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
        .append_pair("client_assertion", assertion.jwt().expose())
        .finish();
    let url = signer.token_url();
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| TokenError::Transport {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    let response = transport.send(request).await.map_err(|e| TokenError::Transport {
        url: url.to_owned(),
        message: e.0,
    })?;
    let token = parse_token_response(response.status, &response.body)?;
    tracing::info!(
        kid = signer.key().kid(),
        expires_in = token.expires_in.as_secs(),
        "API-M access token obtained"
    );
    Ok(token)
}

/// Parses a token endpoint answer: 200 with a token, or an error object.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<AccessToken, TokenError> {
    let malformed = |detail: String| TokenError::Malformed { status, detail };
    if !(200..300).contains(&status) {
        return match serde_json::from_slice::<RawFailure>(body) {
            Ok(f) if f.error.is_some() || f.error_description.is_some() || f.message_id.is_some() => {
                Err(TokenError::Refused {
                    status,
                    error: f.error,
                    description: f.error_description,
                    message_id: f.message_id,
                })
            }
            _ => Err(malformed(format!("not an OAuth error object: {}", snippet(body)))),
        };
    }
    // Never quote a 2xx body: it carries the access token.
    let raw: RawSuccess = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "the token response does not parse (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let token_type = raw.token_type.unwrap_or_else(|| "Bearer".into());
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(malformed(format!("token_type '{token_type}' is not Bearer")));
    }
    if raw.access_token.is_empty() {
        return Err(malformed("access_token is empty".into()));
    }
    let expires_in = raw
        .expires_in
        .as_u64()
        .ok_or_else(|| malformed("expires_in is not a number of seconds".into()))?;
    Ok(AccessToken {
        token: Secret::new(raw.access_token),
        token_type,
        expires_in: Duration::from_secs(expires_in),
        issued_at: raw.issued_at.and_then(|n| n.as_u64()),
    })
}

/// API-M sends `expires_in` and `issued_at` as strings; other OAuth servers as numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

impl Number {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawSuccess {
    access_token: String,
    expires_in: Number,
    token_type: Option<String>,
    issued_at: Option<Number>,
}

#[derive(Deserialize)]
struct RawFailure {
    error: Option<String>,
    error_description: Option<String>,
    message_id: Option<String>,
}

/// The start of a body, printable, for an error message.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    if s.is_empty() { "(empty body)".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expires_in_as_string_or_number() {
        let api_m = br#"{"access_token": "Sr5PGv19wTEHJdDr2wx2f7IGd0cw", "expires_in": "599", "token_type": "Bearer", "issued_at": "1650000000000"}"#;
        let t = parse_token_response(200, api_m).unwrap();
        assert_eq!(t.token.expose(), "Sr5PGv19wTEHJdDr2wx2f7IGd0cw");
        assert_eq!(t.expires_in, Duration::from_secs(599));
        assert_eq!(t.issued_at, Some(1_650_000_000_000));
        let other = br#"{"access_token": "x", "expires_in": 3600, "token_type": "bearer"}"#;
        assert_eq!(
            parse_token_response(200, other).unwrap().expires_in,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn keeps_the_error_description_verbatim() {
        let body = br#"{"error": "invalid_request", "error_description": "Invalid 'kid' header in JWT - no matching public key", "message_id": "rrt-123"}"#;
        let err = parse_token_response(401, body).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Invalid 'kid' header in JWT - no matching public key"),
            "{text}"
        );
        assert!(
            text.contains("rrt-123") && text.contains("invalid_request"),
            "{text}"
        );
        assert!(matches!(err, TokenError::Refused { status: 401, .. }));
    }

    #[test]
    fn refuses_unusable_answers() {
        assert!(matches!(
            parse_token_response(502, b"<html>bad gateway</html>"),
            Err(TokenError::Malformed { status: 502, .. })
        ));
        assert!(parse_token_response(200, br#"{"access_token": "x", "expires_in": "soon"}"#).is_err());
        assert!(
            parse_token_response(
                200,
                br#"{"access_token": "x", "expires_in": 1, "token_type": "MAC"}"#
            )
            .is_err()
        );
    }
}
