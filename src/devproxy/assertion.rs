//! Checking a client-credentials token request the way API-M does: the form, the signed
//! client assertion's header and claims, its RS512 signature against the application's
//! registered JWKS. Each refusal carries API-M's status, `error` and `error_description`.
//! The `jti` replay check needs state and lives with the token endpoint.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::registry::Registry;
use crate::sender::CLIENT_ASSERTION_TYPE;

/// API-M refuses assertions expiring more than five minutes ahead.
const MAX_LIFETIME_SECS: u64 = 300;

/// An API-M refusal: HTTP status, `error`, `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) error: &'static str,
    pub(crate) description: &'static str,
}

const fn invalid(status: u16, description: &'static str) -> Refusal {
    Refusal {
        status,
        error: "invalid_request",
        description,
    }
}

pub(crate) const GRANT_TYPE_MISSING: Refusal = invalid(400, "grant_type is missing");
pub(crate) const GRANT_TYPE_INVALID: Refusal = Refusal {
    status: 400,
    error: "unsupported_grant_type",
    description: "grant_type is invalid",
};
pub(crate) const ASSERTION_TYPE: Refusal = invalid(
    400,
    "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
);
pub(crate) const ASSERTION_MISSING: Refusal = invalid(400, "Missing client_assertion");
pub(crate) const MALFORMED: Refusal = invalid(400, "Malformed JWT in client_assertion");
pub(crate) const KID_MISSING: Refusal = invalid(400, "Missing 'kid' header in client_assertion JWT");
pub(crate) const TYP: Refusal = invalid(
    400,
    "Invalid 'typ' header in client_assertion JWT - must be 'JWT'",
);
pub(crate) const ALG: Refusal = invalid(
    400,
    "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
);
pub(crate) const ISS_SUB: Refusal = invalid(
    400,
    "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT",
);
pub(crate) const UNKNOWN_APP: Refusal = invalid(401, "Invalid 'iss'/'sub' claims in client_assertion JWT");
pub(crate) const UNKNOWN_KID: Refusal = invalid(
    401,
    "Invalid 'kid' header in client_assertion JWT - no matching public key",
);
pub(crate) const SIGNATURE: Refusal = Refusal {
    status: 401,
    error: "public_key error",
    description: "JWT signature verification failed",
};
pub(crate) const AUD: Refusal = invalid(401, "Missing or invalid 'aud' claim in client_assertion JWT");
pub(crate) const JTI_MISSING: Refusal = invalid(400, "Missing 'jti' claim in client_assertion JWT");
pub(crate) const JTI_INVALID: Refusal = invalid(
    400,
    "Invalid 'jti' claim in client_assertion JWT - must be a unique string value such as a GUID",
);
pub(crate) const JTI_REUSED: Refusal = invalid(400, "Non-unique 'jti' claim in client_assertion JWT");
pub(crate) const EXP_MISSING: Refusal = invalid(400, "Missing 'exp' claim in client_assertion JWT");
pub(crate) const EXP_INVALID: Refusal = invalid(
    400,
    "Invalid 'exp' claim in client_assertion JWT - must be an integer",
);
pub(crate) const EXP_PASSED: Refusal = invalid(
    400,
    "Invalid 'exp' claim in client_assertion JWT - JWT has expired",
);
pub(crate) const EXP_TOO_FAR: Refusal = invalid(
    400,
    "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
);

/// A client assertion that passed every check but the `jti` replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The application's name (for logs).
    pub(crate) app: String,
    /// Its API key (`iss`), which scopes the `jti`.
    pub(crate) api_key: String,
    pub(crate) jti: String,
    pub(crate) exp: u64,
}

/// Checks a token request body (`application/x-www-form-urlencoded`) at time `now`
/// (seconds since the Unix epoch). `audiences` are the token URLs accepted as `aud`.
pub(crate) fn verify(
    body: &[u8],
    registry: &Registry,
    audiences: &[String],
    now: u64,
) -> Result<Verified, Refusal> {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    match form.get("grant_type").map(String::as_str) {
        None | Some("") => return Err(GRANT_TYPE_MISSING),
        Some("client_credentials") => {}
        Some(_) => return Err(GRANT_TYPE_INVALID),
    }
    if form.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
        return Err(ASSERTION_TYPE);
    }
    let jwt = match form.get("client_assertion").map(String::as_str) {
        None | Some("") => return Err(ASSERTION_MISSING),
        Some(jwt) => jwt,
    };

    let (header, claims) = unverified_parts(jwt).ok_or(MALFORMED)?;
    if header["kid"].as_str().is_none_or(str::is_empty) {
        return Err(KID_MISSING);
    }
    if header["typ"].as_str() != Some("JWT") {
        return Err(TYP);
    }
    if header["alg"].as_str() != Some("RS512") {
        return Err(ALG);
    }
    let kid = header["kid"].as_str().unwrap_or_default();

    let (iss, sub) = (claims["iss"].as_str(), claims["sub"].as_str());
    let api_key = match (iss, sub) {
        (Some(iss), Some(sub)) if iss == sub && !iss.is_empty() => iss,
        _ => return Err(ISS_SUB),
    };
    let app = registry.get(api_key).ok_or(UNKNOWN_APP)?;
    let key = app.key(kid).ok_or(UNKNOWN_KID)?;

    // The signature, and only it: every claim rule is checked below with API-M's messages.
    let mut validation = Validation::new(Algorithm::RS512);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(jwt, key, &validation).map_err(|_| SIGNATURE)?;

    let aud_ok = match &claims["aud"] {
        Value::String(aud) => audiences.iter().any(|a| a == aud),
        Value::Array(list) => list
            .iter()
            .any(|v| v.as_str().is_some_and(|aud| audiences.iter().any(|a| a == aud))),
        _ => false,
    };
    if !aud_ok {
        return Err(AUD);
    }

    let exp = match &claims["exp"] {
        Value::Null => return Err(EXP_MISSING),
        value => value.as_u64().ok_or(EXP_INVALID)?,
    };
    if exp <= now {
        return Err(EXP_PASSED);
    }
    if exp > now + MAX_LIFETIME_SECS {
        return Err(EXP_TOO_FAR);
    }

    let jti = match &claims["jti"] {
        Value::Null => return Err(JTI_MISSING),
        Value::String(jti) if !jti.is_empty() => jti.clone(),
        _ => return Err(JTI_INVALID),
    };
    Ok(Verified {
        app: app.name.clone(),
        api_key: api_key.to_owned(),
        jti,
        exp,
    })
}

/// The header and claims of a compact JWS, unverified; `None` unless it is three
/// base64url parts whose first two are JSON objects.
fn unverified_parts(jwt: &str) -> Option<(Value, Value)> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return None;
    };
    if signature.is_empty() {
        return None;
    }
    let json = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        value.is_object().then_some(value)
    };
    Some((json(header)?, json(claims)?))
}
