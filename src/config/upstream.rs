//! `[upstream]`: the provider's own system that the `forward` and `relay` handlers call.

use std::path::PathBuf;
use std::time::Duration;

use super::HandlerKind;
use super::fields::{MIB, Problems, file, size};
use super::raw::RawUpstream;
use crate::fhir::{Interaction, ResourceType};

/// `[upstream]`: where and how the forward and relay handlers reach the provider's system.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamSettings {
    /// Base URL, `http://` or `https://`, without a trailing `/`. The request's path relative
    /// to `http.base_path` is appended, then its query.
    pub url: String,
    /// CA files trusted for an `https` upstream's certificate.
    pub ca: Vec<PathBuf>,
    /// Also trust the operating system's root store for the upstream (never for callers).
    pub use_system_roots: bool,
    /// Client certificate chain presented to the upstream, with [`UpstreamSettings::key`].
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The name the upstream certificate is verified against (and sent as SNI), when it is
    /// not the URL's host.
    pub server_name: Option<String>,
    /// Speak only HTTP/2 (over `http://`: h2c with prior knowledge). Otherwise HTTP/1.1, or
    /// h2 when an `https` upstream offers it by ALPN.
    pub http2_only: bool,
    /// Time for one upstream exchange (connect, send, complete answer).
    pub timeout: Duration,
    /// Largest upstream answer body; a larger one is a 500, never truncated.
    pub max_response_body: usize,
    /// Relay: the first retry delay; each further one doubles, up to [`UpstreamSettings::retry_cap`].
    pub retry_base: Duration,
    /// Relay: the longest retry delay.
    pub retry_cap: Duration,
    /// Relay: attempts before a message becomes a dead letter.
    pub max_attempts: u32,
    /// Relay: conversations delivered concurrently.
    pub max_in_flight: usize,
    /// The interactions the upstream implements besides `$process-message`: only these are
    /// forwarded and listed in the CapabilityStatement; every other one answers 501.
    pub interactions: UpstreamInteractions,
}

/// `upstream.interactions`: the BaRS interactions your system implements besides
/// `$process-message` (which every receiver must), named as the access log and the metrics
/// name them: `slot-search`, `appointment-read`, `appointment-search`, `appointment-create`,
/// `appointment-update`, `appointment-patch`, `appointment-delete`, and the same six for
/// `service-request-`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamInteractions(Vec<Interaction>);

/// Every interaction an upstream may implement, in the order they are listed.
const FORWARDABLE: [Interaction; 13] = [
    Interaction::SearchSlots,
    Interaction::Read(ResourceType::Appointment),
    Interaction::Search(ResourceType::Appointment),
    Interaction::Create(ResourceType::Appointment),
    Interaction::Update(ResourceType::Appointment),
    Interaction::Patch(ResourceType::Appointment),
    Interaction::Delete(ResourceType::Appointment),
    Interaction::Read(ResourceType::ServiceRequest),
    Interaction::Search(ResourceType::ServiceRequest),
    Interaction::Create(ResourceType::ServiceRequest),
    Interaction::Update(ResourceType::ServiceRequest),
    Interaction::Patch(ResourceType::ServiceRequest),
    Interaction::Delete(ResourceType::ServiceRequest),
];

impl UpstreamInteractions {
    /// Every interaction an upstream may implement.
    pub fn all() -> Self {
        Self(FORWARDABLE.to_vec())
    }

    /// The names, in the order of [`UpstreamInteractions`]' documentation.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|i| i.name()).collect()
    }

    /// Whether `interaction` is implemented upstream.
    pub(crate) fn contains(&self, interaction: Interaction) -> bool {
        self.0.contains(&interaction)
    }

    /// Parses the names under `key`.
    fn parse(p: &mut Problems, key: &str, names: &[String]) -> Self {
        let mut found: Vec<Interaction> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.trim();
            let key = format!("{key}[{i}]");
            match name {
                // Mandatory, so always forwarded; naming it changes nothing.
                "process-message" => {}
                "metadata" | "message-definition-search" => p.add(
                    &key,
                    format!("'{name}' is answered by the receiver itself (from its configuration), never forwarded"),
                ),
                _ => match FORWARDABLE.iter().find(|f| f.name() == name) {
                    Some(f) if found.contains(f) => p.add(&key, format!("'{name}' is listed twice")),
                    Some(f) => found.push(*f),
                    None => p.add(
                        &key,
                        format!(
                            "'{name}' is not a BaRS interaction; one of {}",
                            Self::all().names().join(", ")
                        ),
                    ),
                },
            }
        }
        found.sort_by_key(|f| FORWARDABLE.iter().position(|x| x == f));
        Self(found)
    }
}

/// Converts `[upstream]`, requiring it for the handlers that use it and refusing it for the
/// one that does not.
pub(super) fn convert(
    p: &mut Problems,
    kind: HandlerKind,
    raw: Option<RawUpstream>,
    deadline: Duration,
) -> Option<UpstreamSettings> {
    let needed = matches!(kind, HandlerKind::Forward | HandlerKind::Relay);
    let Some(raw) = raw else {
        if needed {
            p.add(
                "upstream.url",
                format!(
                    "required with handler.kind = {}: the base URL of your system",
                    kind.as_str()
                ),
            );
        }
        return None;
    };
    if !needed {
        p.add(
            "upstream",
            format!(
                "is set, but handler.kind = {} does not use it: set handler.kind = \"forward\" or \"relay\", or remove [upstream]",
                kind.as_str()
            ),
        );
        return None;
    }
    let (url, https) = match raw.url.as_deref().map(str::trim) {
        None | Some("") => {
            p.add(
                "upstream.url",
                "required: the base URL of your system, http(s)://host:port/path",
            );
            (String::new(), false)
        }
        Some(text) => match parse_url(text) {
            Ok(https) => (text.trim_end_matches('/').to_owned(), https),
            Err(message) => {
                p.add("upstream.url", format!("'{text}' {message}"));
                (String::new(), false)
            }
        },
    };
    let ca: Vec<PathBuf> = raw
        .ca
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| file(p, &format!("upstream.ca[{i}]"), f))
        .collect();
    let use_system_roots = raw.use_system_roots.unwrap_or(false);
    let cert = raw.cert.map(|f| file(p, "upstream.cert", f));
    let key = raw.key.map(|f| file(p, "upstream.key", f));
    match (&cert, &key) {
        (Some(_), None) => p.add("upstream.key", "required with upstream.cert"),
        (None, Some(_)) => p.add("upstream.cert", "required with upstream.key"),
        _ => {}
    }
    let server_name = raw.server_name.map(|name| name.trim().to_owned());
    if let Some(name) = &server_name {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            p.add(
                "upstream.server_name",
                format!("'{name}' is not a DNS name or IP address"),
            );
        }
    }
    if !url.is_empty() && https && ca.is_empty() && !use_system_roots {
        p.add(
            "upstream.ca",
            "required for an https upstream: the CA file(s) that issued your system's certificate (or use_system_roots = true)",
        );
    }
    if !url.is_empty() && !https {
        let tls_keys = [
            ("upstream.ca", !ca.is_empty()),
            ("upstream.use_system_roots", use_system_roots),
            ("upstream.cert", cert.is_some()),
            ("upstream.key", key.is_some()),
            ("upstream.server_name", server_name.is_some()),
        ];
        for (key, set) in tls_keys {
            if set {
                p.add(
                    key,
                    "is a TLS setting, but upstream.url is http://: use https:// or remove it",
                );
            }
        }
    }

    let timeout = bounded(
        p,
        "upstream.timeout",
        raw.timeout,
        deadline,
        (Duration::from_secs(1), Duration::from_secs(300)),
    );
    let max_response_body = size(
        p,
        "upstream.max_response_body",
        raw.max_response_body,
        10 * MIB,
        (1024, 100 * MIB),
    );
    let retry_base = bounded(
        p,
        "upstream.retry_base",
        raw.retry_base,
        Duration::from_secs(2),
        (Duration::from_millis(10), Duration::from_secs(3600)),
    );
    let retry_cap = bounded(
        p,
        "upstream.retry_cap",
        raw.retry_cap,
        Duration::from_secs(15 * 60),
        (Duration::from_millis(10), Duration::from_secs(24 * 3600)),
    );
    if retry_cap < retry_base {
        p.add(
            "upstream.retry_cap",
            "must not be shorter than upstream.retry_base",
        );
    }
    let max_attempts = count(p, "upstream.max_attempts", raw.max_attempts, 100, (1, 100_000));
    let max_in_flight = count(p, "upstream.max_in_flight", raw.max_in_flight, 8, (1, 1024));
    let interactions =
        UpstreamInteractions::parse(p, "upstream.interactions", &raw.interactions.unwrap_or_default());
    Some(UpstreamSettings {
        url,
        ca,
        use_system_roots,
        cert,
        key,
        server_name,
        http2_only: raw.http2_only.unwrap_or(false),
        timeout,
        max_response_body,
        retry_base,
        retry_cap,
        max_attempts,
        max_in_flight: max_in_flight as usize,
        interactions,
    })
}

/// Checks a base URL; `Ok(true)` for https.
fn parse_url(text: &str) -> Result<bool, String> {
    let uri: http::Uri = text.parse().map_err(|_| "is not a URL".to_owned())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must start with http:// or https://".into()),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if uri.query().is_some() || text.contains('#') {
        return Err("must not have a query or fragment".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry credentials".into());
    }
    Ok(https)
}

fn bounded(
    p: &mut Problems,
    key: &str,
    value: Option<String>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    match humantime::parse_duration(&text) {
        Ok(d) if d >= min && d <= max => d,
        Ok(_) => {
            p.add(
                key,
                format!(
                    "'{text}' is outside {}..={}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
            default
        }
        Err(_) => {
            p.add(key, format!("'{text}' is not a duration such as 5s or 500ms"));
            default
        }
    }
}

fn count(p: &mut Problems, key: &str, value: Option<i64>, default: u32, (min, max): (u32, u32)) -> u32 {
    let n = value.unwrap_or(i64::from(default));
    if n < i64::from(min) || n > i64::from(max) {
        p.add(key, format!("{n} is outside {min}..={max}"));
        return default;
    }
    // In range just above, so it fits.
    u32::try_from(n).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(names: &[&str]) -> (UpstreamInteractions, Vec<String>) {
        let mut p = Problems(Vec::new());
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let parsed = UpstreamInteractions::parse(&mut p, "upstream.interactions", &names);
        (
            parsed,
            p.0.into_iter()
                .map(|problem| format!("{}: {}", problem.key, problem.message))
                .collect(),
        )
    }

    #[test]
    fn interactions_are_named_as_the_access_log_names_them() {
        let (parsed, problems) = parse(&["appointment-read", "slot-search", "process-message"]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(parsed.names(), ["slot-search", "appointment-read"]);
        assert!(parsed.contains(Interaction::SearchSlots));
        assert!(!parsed.contains(Interaction::Read(ResourceType::ServiceRequest)));
        assert_eq!(UpstreamInteractions::all().names().len(), 13);
        assert!(UpstreamInteractions::default().names().is_empty());

        let (_, problems) = parse(&[
            "slot-search",
            "slot-search",
            "metadata",
            "message-definition-search",
            "slots",
        ]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("upstream.interactions[1]: 'slot-search' is listed twice"));
        assert!(problems[1].starts_with("upstream.interactions[2]: 'metadata' is answered by the receiver"));
        assert!(problems[3].starts_with("upstream.interactions[4]: 'slots' is not a BaRS interaction; one of slot-search, appointment-read"));
    }
}
