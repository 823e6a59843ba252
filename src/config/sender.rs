//! `[sender]`: this receiver acting as a BaRS sender (responses and updates through the BaRS
//! API), its API-M credentials and the identity it sends. Optional: without the section the
//! receiver only receives.

use std::path::PathBuf;
use std::time::Duration;

use super::Environment;
use super::fields::{Problems, duration, file};
use super::raw::RawSender;
use crate::secret::Secret;

/// API-M refuses assertions that expire more than five minutes ahead.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The BaRS API sandbox: no token needed.
pub const SANDBOX_BASE_URL: &str = "https://sandbox.api.service.nhs.uk/booking-and-referral/FHIR/R4";

/// `[sender]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderSettings {
    /// How requests are authorised.
    pub auth: SenderAuth,
    /// The BaRS API base URL, without a trailing slash.
    pub base_url: String,
    /// The BaRS version sent in `Accept` (`application/fhir+json; version=...`).
    pub bars_version: String,
    /// `NHSD-End-User-Organisation`: the sending organisation's ODS code.
    pub ods_code: String,
    /// `NHSD-End-User-Organisation`: its name.
    pub organisation_name: Option<String>,
    /// `NHSD-Requesting-Software`: the product name.
    pub software_name: String,
    /// `NHSD-Requesting-Software`: the product version.
    pub software_version: String,
    /// `NHSD-Requesting-Software`: an identifier, `system|value`.
    pub software_identifier: Option<(String, String)>,
    /// Time allowed for one HTTP exchange (the proxy itself waits up to 32 s for a receiver).
    pub timeout: Duration,
    /// Attempts per request, first included, when the transport fails or ids are not echoed.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Trust only these CA certificates for the token and API URLs, instead of the public
    /// web roots.
    pub ca_file: Option<PathBuf>,
}

/// `sender.mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderAuth {
    /// `sandbox`: no `Authorization` header.
    Sandbox,
    /// `signed-jwt`: API-M access tokens obtained with a signed client assertion.
    SignedJwt(ApimSettings),
}

/// The API-M application credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApimSettings {
    /// The application's API key: the assertion's `iss` and `sub`.
    pub api_key: Secret<String>,
    /// The RSA private key (PEM) whose public key is registered with API-M.
    pub private_key: PathBuf,
    /// Its registered key id, `<Supplier>-<Environment>-<rotation>`.
    pub kid: String,
    /// The token URL, also the assertion's `aud`.
    pub token_url: String,
    /// How far ahead the assertion's `exp` lies (at most 5 minutes).
    pub assertion_lifetime: Duration,
}

impl Environment {
    /// The API-M token URL and BaRS API base URL of this environment.
    pub fn sender_urls(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Int => Some((
                "https://int.api.service.nhs.uk/oauth2/token",
                "https://int.api.service.nhs.uk/booking-and-referral/FHIR/R4",
            )),
            Self::Prod => Some((
                "https://api.service.nhs.uk/oauth2/token",
                "https://api.service.nhs.uk/booking-and-referral/FHIR/R4",
            )),
            Self::Dev => None,
        }
    }
}

pub(super) fn convert(p: &mut Problems, environment: Environment, raw: RawSender) -> SenderSettings {
    let presets = environment.sender_urls();
    let sandbox = match raw.mode.as_deref().unwrap_or("signed-jwt") {
        "signed-jwt" => false,
        "sandbox" => true,
        other => {
            p.add("sender.mode", format!("'{other}' is not signed-jwt or sandbox"));
            false
        }
    };
    let auth = if sandbox {
        SenderAuth::Sandbox
    } else {
        SenderAuth::SignedJwt(apim(p, environment, presets, &raw))
    };
    let base_url = match (raw.base_url, sandbox, presets) {
        (Some(url), _, _) => url_setting(p, "sender.base_url", &url),
        (None, true, _) => SANDBOX_BASE_URL.to_owned(),
        (None, false, Some((_, base))) => base.to_owned(),
        (None, false, None) => {
            p.add(
                "sender.base_url",
                "required when environment = dev (int and prod have presets)",
            );
            String::new()
        }
    };
    let bars_version = raw.bars_version.unwrap_or_else(|| "1.4.0".into());
    if !version_like(&bars_version) {
        p.add(
            "sender.bars_version",
            format!("'{bars_version}' is not a version such as 1.4.0"),
        );
    }
    let ods_code = match raw.ods_code {
        Some(code) if ods_like(&code) => code.to_ascii_uppercase(),
        Some(code) => {
            p.add(
                "sender.ods_code",
                format!("'{code}' is not an ODS code (3 to 10 letters and digits)"),
            );
            code
        }
        None => {
            p.add(
                "sender.ods_code",
                "required: your organisation's ODS code, sent in NHSD-End-User-Organisation",
            );
            String::new()
        }
    };
    let software_identifier = raw
        .software_identifier
        .and_then(|token| match token.split_once('|') {
            Some((s, v)) if !s.is_empty() && !v.is_empty() => Some((s.to_owned(), v.to_owned())),
            _ => {
                p.add(
                    "sender.software_identifier",
                    format!("'{token}' is not system|value"),
                );
                None
            }
        });
    let max_attempts = raw.max_attempts.unwrap_or(3);
    if !(1..=10).contains(&max_attempts) {
        p.add("sender.max_attempts", format!("{max_attempts} is outside 1..=10"));
    }
    SenderSettings {
        auth,
        base_url,
        bars_version,
        ods_code,
        organisation_name: raw.organisation_name,
        software_name: raw.software_name.unwrap_or_else(|| "bars-receiver".into()),
        software_version: raw
            .software_version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        software_identifier,
        timeout: duration(p, "sender.timeout", raw.timeout, "40s", (1, 300)),
        max_attempts: max_attempts.clamp(1, 10) as u32,
        retry_backoff: duration(p, "sender.retry_backoff", raw.retry_backoff, "1s", (0, 60)),
        ca_file: raw.ca_file.map(|f| file(p, "sender.ca_file", f)),
    }
}

fn apim(
    p: &mut Problems,
    environment: Environment,
    presets: Option<(&str, &str)>,
    raw: &RawSender,
) -> ApimSettings {
    let api_key = match raw.api_key.as_deref().map(str::trim) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => {
            p.add(
                "sender.api_key",
                "required for mode signed-jwt: your API-M application's API key (set BARS_SENDER__API_KEY)",
            );
            String::new()
        }
    };
    let private_key = match raw.private_key.clone() {
        Some(path) => file(p, "sender.private_key", path),
        None => {
            p.add(
                "sender.private_key",
                "required for mode signed-jwt: the RSA key registered with API-M (bars-receiver keygen)",
            );
            PathBuf::new()
        }
    };
    let kid = match raw.kid.as_deref() {
        Some(kid) if !kid.is_empty() && kid.bytes().all(|b| b.is_ascii_graphic()) => kid.to_owned(),
        Some(kid) => {
            p.add(
                "sender.kid",
                format!("'{kid}' must be printable ASCII without spaces"),
            );
            kid.to_owned()
        }
        None => {
            p.add(
                "sender.kid",
                "required for mode signed-jwt: the key id registered with API-M, e.g. MySupplier-INT-1",
            );
            String::new()
        }
    };
    let token_url = match (&raw.token_url, presets) {
        (Some(url), _) => url_setting(p, "sender.token_url", url),
        (None, Some((token, _))) => token.to_owned(),
        (None, None) => {
            p.add(
                "sender.token_url",
                format!(
                    "required when environment = {} (int and prod have presets)",
                    environment.as_str()
                ),
            );
            String::new()
        }
    };
    let lifetime_text = raw.assertion_lifetime.clone();
    let assertion_lifetime = match lifetime_text.as_deref().map(humantime::parse_duration) {
        Some(Ok(d)) if d > MAX_ASSERTION_LIFETIME => {
            p.add(
                "sender.assertion_lifetime",
                format!(
                    "'{}' is more than 5m: API-M refuses client assertions expiring more than 5 minutes ahead",
                    lifetime_text.unwrap_or_default()
                ),
            );
            MAX_ASSERTION_LIFETIME
        }
        // A minute short of API-M's limit, so that a clock a little behind API-M's still
        // sees the assertion as expiring within five minutes.
        _ => duration(p, "sender.assertion_lifetime", lifetime_text, "4m", (1, 300)),
    };
    ApimSettings {
        api_key: Secret::new(api_key),
        private_key,
        kid,
        token_url,
        assertion_lifetime,
    }
}

/// An absolute `https` URL, or `http` to a loopback host (a local mock); no query or fragment.
/// Returned without a trailing slash.
fn url_setting(p: &mut Problems, key: &str, text: &str) -> String {
    match check_url(text) {
        Ok(()) => text.trim_end_matches('/').to_owned(),
        Err(why) => {
            p.add(key, format!("'{text}' {why}"));
            String::new()
        }
    }
}

fn check_url(text: &str) -> Result<(), &'static str> {
    if text.contains(['?', '#', ' ']) {
        return Err("must not have a query, fragment or spaces");
    }
    let uri: http::Uri = text.parse().map_err(|_| "is not a URL")?;
    let host = uri.host().ok_or("has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if crate::loopback::is_loopback_host(host) => Ok(()),
        Some("http") => Err("must be https (plain http only to a loopback address, for a local mock)"),
        _ => Err("must be an https URL"),
    }
}

fn version_like(v: &str) -> bool {
    let core = v.split('-').next().unwrap_or_default();
    !core.is_empty()
        && core
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn ods_like(code: &str) -> bool {
    (3..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SenderSettings {
    /// Loads only `environment` and `[sender]` from a file, with the process environment's
    /// `BARS_` overrides: the sender tools work on a machine without the receiver's TLS files.
    pub fn load(path: &std::path::Path) -> Result<Self, super::ConfigError> {
        let text = super::fields::read_file(path)?;
        Self::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// `[sender]` of the embedded development configuration (sandbox mode).
    pub fn dev() -> Result<Self, super::ConfigError> {
        Self::from_toml(super::DEV_CONFIG, "embedded config/dev.toml", std::env::vars())
    }

    /// Parses `environment` and `[sender]` of TOML text named `origin`, with `BARS_`
    /// variables layered over it. The other sections must still be well-formed.
    pub fn from_toml(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, super::ConfigError> {
        let raw = super::raw::parse_raw(text, origin, vars)?;
        let mut p = Problems(Vec::new());
        let environment = match raw.environment.as_deref().map(Environment::parse) {
            Some(Some(env)) => env,
            _ => {
                p.add("environment", "required: int, prod or dev");
                Environment::Dev
            }
        };
        let sender = match raw.sender {
            Some(section) => Some(convert(&mut p, environment, section)),
            None => {
                p.add("sender", "no [sender] section: this configuration does not send");
                None
            }
        };
        match sender {
            Some(sender) if p.0.is_empty() => Ok(sender),
            _ => Err(super::ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: p.0,
            }),
        }
    }
}
