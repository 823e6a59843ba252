//! The `dev-proxy` configuration file: a local stand-in for the BaRS API proxy and API-M
//! (`bars-receiver dev-proxy`). Parsed like the receiver's file: unknown keys refused, every
//! problem reported with its key before any socket is bound. No `BARS_` overrides apply to
//! it (they belong to the receiver's file).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::convert::log;
use super::fields::{Problems, duration, file};
use super::raw::RawLog;
use super::{ConfigError, LogSettings};
use crate::secret::Secret;

/// Validated dev-proxy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevProxySettings {
    /// `listen.address`.
    pub listen: SocketAddr,
    /// `listen.shutdown_grace`: time for in-flight requests after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// `tls.cert_chain`: the proxy's own server certificate chain (server-authenticated TLS
    /// towards senders).
    pub cert_chain: PathBuf,
    /// `tls.private_key`: its key.
    pub private_key: PathBuf,
    /// `token.url`: the token URL client assertions must name as `aud`. `None`: the
    /// `https://<bound address>/oauth2/token` (and the same with `localhost`).
    pub token_url: Option<String>,
    /// `token.access_token_lifetime`: `expires_in` of issued tokens.
    pub access_token_lifetime: Duration,
    /// `[[application]]`: the registered sender applications.
    pub applications: Vec<ApplicationSettings>,
    /// `catalogue.file`: the endpoint catalogue (target service → receiver base URL).
    pub catalogue: PathBuf,
    /// `forward.source_address`: the local address forwarded connections come from, so that
    /// receivers' allowlists see the proxy's own address. `None`: the system's choice.
    pub source_address: Option<IpAddr>,
    /// `forward.client_cert`: the proxy's client certificate chain presented to receivers.
    pub client_cert: PathBuf,
    /// `forward.client_key`: its key.
    pub client_key: PathBuf,
    /// `forward.receiver_ca`: CA files trusted for receivers' server certificates.
    pub receiver_ca: Vec<PathBuf>,
    /// `forward.timeout`: no complete answer from a receiver within this is a 408.
    pub timeout: Duration,
    /// `[log]`.
    pub log: LogSettings,
}

/// One registered sender application (`[[application]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplicationSettings {
    /// A name for logs (the API key is never logged).
    pub name: String,
    /// The application's API key: client assertions carry it as `iss` and `sub`.
    pub api_key: Secret<String>,
    /// The JWKS file with the application's public keys, by `kid`.
    pub jwks: PathBuf,
}

impl DevProxySettings {
    /// Loads and validates a dev-proxy configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = super::fields::read_file(path)?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses dev-proxy TOML text named `origin`.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        let raw: RawDevProxy =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Key {
                origin: origin.to_owned(),
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        convert(raw).map_err(|problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }
}

fn convert(raw: RawDevProxy) -> Result<DevProxySettings, Vec<super::Problem>> {
    let mut p = Problems(Vec::new());
    let listen_text = raw.listen.address.unwrap_or_else(|| "127.0.0.1:9443".into());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        p.add(
            "listen.address",
            format!("'{listen_text}' is not an IP:port address"),
        );
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let shutdown_grace = duration(
        &mut p,
        "listen.shutdown_grace",
        raw.listen.shutdown_grace,
        "5s",
        (0, 600),
    );
    let cert_chain = required_file(&mut p, "tls.cert_chain", raw.tls.cert_chain);
    let private_key = required_file(&mut p, "tls.private_key", raw.tls.private_key);

    let token_url = raw.token.url.map(|url| {
        if !url.starts_with("https://") || url.contains(['?', '#', ' ']) {
            p.add("token.url", format!("'{url}' is not an https URL"));
        }
        url
    });
    let access_token_lifetime = duration(
        &mut p,
        "token.access_token_lifetime",
        raw.token.access_token_lifetime,
        "599s",
        (1, 3600),
    );

    let mut applications: Vec<ApplicationSettings> = Vec::new();
    for (i, app) in raw.application.into_iter().enumerate() {
        let key = |field: &str| format!("application[{i}].{field}");
        let api_key = match app.api_key.map(|k| k.trim().to_owned()) {
            Some(k) if !k.is_empty() => k,
            _ => {
                p.add(&key("api_key"), "required: the application's API key");
                String::new()
            }
        };
        if !api_key.is_empty() && applications.iter().any(|a| a.api_key.expose() == &api_key) {
            p.add(&key("api_key"), "is registered twice");
        }
        let jwks = required_file(&mut p, &key("jwks"), app.jwks);
        applications.push(ApplicationSettings {
            name: app.name.unwrap_or_else(|| format!("application {}", i + 1)),
            api_key: Secret::new(api_key),
            jwks,
        });
    }

    let catalogue = required_file(&mut p, "catalogue.file", raw.catalogue.file);

    let source_address = raw.forward.source_address.and_then(|text| {
        text.parse::<IpAddr>()
            .map_err(|_| p.add("forward.source_address", format!("'{text}' is not an IP address")))
            .ok()
    });
    let client_cert = required_file(&mut p, "forward.client_cert", raw.forward.client_cert);
    let client_key = required_file(&mut p, "forward.client_key", raw.forward.client_key);
    let receiver_ca: Vec<PathBuf> = match raw.forward.receiver_ca {
        Some(files) if !files.is_empty() => files
            .into_iter()
            .enumerate()
            .map(|(i, f)| file(&mut p, &format!("forward.receiver_ca[{i}]"), f))
            .collect(),
        _ => {
            p.add(
                "forward.receiver_ca",
                "required: the CA files that issued the receivers' server certificates",
            );
            Vec::new()
        }
    };
    let timeout = duration(&mut p, "forward.timeout", raw.forward.timeout, "32s", (1, 300));

    let log = log(&mut p, raw.log);

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(DevProxySettings {
        listen,
        shutdown_grace,
        cert_chain,
        private_key,
        token_url,
        access_token_lifetime,
        applications,
        catalogue,
        source_address,
        client_cert,
        client_key,
        receiver_ca,
        timeout,
        log,
    })
}

fn required_file(p: &mut Problems, key: &str, value: Option<String>) -> PathBuf {
    match value {
        Some(v) => file(p, key, v),
        None => {
            p.add(key, "required");
            PathBuf::new()
        }
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevProxy {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    token: RawToken,
    #[serde(default)]
    application: Vec<RawApplication>,
    #[serde(default)]
    catalogue: RawCatalogue,
    #[serde(default)]
    forward: RawForward,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_chain: Option<String>,
    private_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    url: Option<String>,
    access_token_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: Option<String>,
    api_key: Option<String>,
    jwks: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    source_address: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    receiver_ca: Option<Vec<String>>,
    timeout: Option<String>,
}
