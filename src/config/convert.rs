//! The receiver's file as parsed ([`RawConfig`]) → typed [`Settings`], collecting every
//! problem. Sections with a file of their own (`ops`, `upstream`, `sender`, `messaging`) are
//! converted there.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::fields::{MIB, Problems, duration, file, networks, size};
use super::ops;
use super::raw::RawConfig;
use super::{
    Environment, HandlerKind, HttpSettings, InboxSettings, ListenSettings, LogFormat, LogSettings, Problem,
    ReceiverInfo, Settings,
};
use crate::fhir::{RequesterHeaders, TargetIdentifier};
use crate::net::Allowlist;
use crate::tls::{ClientNamePins, NamePattern, TlsSettings};

pub(super) fn convert(raw: RawConfig) -> Result<Settings, Vec<Problem>> {
    let mut p = Problems(Vec::new());

    let environment = match raw.environment.as_deref() {
        None => {
            p.add("environment", "required: int, prod or dev");
            Environment::Dev
        }
        Some(s) => Environment::parse(s).unwrap_or_else(|| {
            p.add("environment", format!("'{s}' is not int, prod or dev"));
            Environment::Dev
        }),
    };

    let default_address = if environment == Environment::Dev {
        "127.0.0.1:8443"
    } else {
        "0.0.0.0:8443"
    };
    let address_text = raw.listen.address.as_deref().unwrap_or(default_address);
    let address = p.take(
        "listen.address",
        address_text
            .parse::<SocketAddr>()
            .map_err(|_| format!("'{address_text}' is not an IP:port address")),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    let listen = ListenSettings {
        address,
        handshake_timeout: duration(
            &mut p,
            "listen.handshake_timeout",
            raw.listen.handshake_timeout,
            "10s",
            (1, 300),
        ),
        max_connections: {
            let n = raw.listen.max_connections.unwrap_or(10_000);
            if !(1..=1_000_000).contains(&n) {
                p.add("listen.max_connections", format!("{n} is outside 1..=1000000"));
            }
            n.clamp(1, 1_000_000) as usize
        },
        shutdown_grace: duration(
            &mut p,
            "listen.shutdown_grace",
            raw.listen.shutdown_grace,
            "20s",
            (0, 600),
        ),
        trusted_proxies: ops::trusted_proxies(&mut p, raw.listen.trusted_proxies),
        max_connection_age: duration(
            &mut p,
            "listen.max_connection_age",
            raw.listen.max_connection_age,
            "1h",
            (1, 7 * 86_400),
        ),
        first_request_timeout: duration(
            &mut p,
            "listen.first_request_timeout",
            raw.listen.first_request_timeout,
            "10s",
            (1, 300),
        ),
        idle_timeout: duration(
            &mut p,
            "listen.idle_timeout",
            raw.listen.idle_timeout,
            "75s",
            (1, 3600),
        ),
    };

    let (crl, revocation) = ops::revocation(&mut p, &raw.tls, environment);
    let cert_chain = required_file(&mut p, "tls.cert_chain", raw.tls.cert_chain);
    let private_key = required_file(&mut p, "tls.private_key", raw.tls.private_key);
    let client_ca: Vec<PathBuf> = match raw.tls.client_ca {
        None => {
            p.add(
                "tls.client_ca",
                "required: the environment's NHS Root and SubCA certificate files",
            );
            Vec::new()
        }
        Some(files) if files.is_empty() => {
            p.add(
                "tls.client_ca",
                "is empty: the environment's NHS Root and SubCA certificate files are required",
            );
            Vec::new()
        }
        Some(files) => files
            .into_iter()
            .enumerate()
            .map(|(i, f)| file(&mut p, &format!("tls.client_ca[{i}]"), f))
            .collect(),
    };
    let pins = raw
        .tls
        .allowed_client_names
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            NamePattern::parse(name)
                .map_err(|e| p.add(&format!("tls.allowed_client_names[{i}]"), e.to_string()))
                .ok()
        })
        .collect();
    let tls = TlsSettings::new(cert_chain, private_key, client_ca, ClientNamePins::new(pins))
        .with_crls(crl, revocation);

    let allowlist = allowlist(
        &mut p,
        environment,
        raw.allowlist.sources,
        raw.allowlist.allow_any_source_unsafe,
    );

    let deadline = duration(&mut p, "http.deadline", raw.http.deadline, "5s", (1, 30));
    let processing_limit = duration(
        &mut p,
        "http.processing_limit",
        raw.http.processing_limit,
        "60s",
        (1, 3600),
    );
    if processing_limit < deadline {
        p.add("http.processing_limit", "must not be shorter than http.deadline");
    }
    let base_path = raw.http.base_path.unwrap_or_else(|| "/".into());
    if !base_path.starts_with('/') || base_path.contains(['?', '#', ' ']) {
        p.add(
            "http.base_path",
            format!("'{base_path}' must be a path starting with '/'"),
        );
    }
    let max_body = size(
        &mut p,
        "http.max_body",
        raw.http.max_body,
        10 * MIB,
        (1024, 100 * MIB),
    );
    let max_inflight_body = size(
        &mut p,
        "http.max_inflight_body",
        raw.http.max_inflight_body,
        256 * MIB,
        (1024, 64 * 1024 * MIB),
    );
    if max_inflight_body < max_body {
        p.add("http.max_inflight_body", "must not be smaller than http.max_body");
    }
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB; h2 counts the same limit in
    // its own header-list measure.
    let max_header_bytes = size(
        &mut p,
        "http.max_header_bytes",
        raw.http.max_header_bytes,
        16 * 1024,
        (8 * 1024, MIB),
    );
    let http = HttpSettings {
        max_body,
        max_header_bytes,
        max_inflight_body,
        deadline,
        processing_limit,
        base_path: base_path.trim_end_matches('/').to_owned(),
        rate_limit: match raw.http.rate_limit.unwrap_or(0) {
            0 => None,
            n if (1..=1_000_000).contains(&n) => Some(n as u32),
            n => {
                p.add(
                    "http.rate_limit",
                    format!("{n} is outside 0 (off) ..= 1000000 requests a second"),
                );
                None
            }
        },
    };

    let defaults = ReceiverInfo::default();
    let services = raw
        .receiver
        .services
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, token)| {
            let parsed = TargetIdentifier::parse_token(token);
            if parsed.is_none() {
                p.add(
                    &format!("receiver.services[{i}]"),
                    format!("'{token}' is not system|value"),
                );
            }
            parsed
        })
        .collect();
    let ods_code = match raw.receiver.ods_code {
        Some(code) if super::sender::ods_like(&code) => Some(code.to_ascii_uppercase()),
        Some(code) => {
            p.add(
                "receiver.ods_code",
                format!("'{code}' is not an ODS code (letters and digits, 3 to 10)"),
            );
            None
        }
        None => None,
    };
    let receiver = ReceiverInfo {
        services,
        ods_code,
        name: raw.receiver.name.unwrap_or(defaults.name),
        publisher: raw.receiver.publisher,
        software_name: raw.receiver.software_name.unwrap_or(defaults.software_name),
        software_version: raw.receiver.software_version.unwrap_or(defaults.software_version),
        base_url: raw.receiver.base_url,
        requester_headers: match raw.receiver.requester_headers.as_deref() {
            None => defaults.requester_headers,
            Some(text) => RequesterHeaders::parse(text).unwrap_or_else(|| {
                p.add(
                    "receiver.requester_headers",
                    format!("'{text}' is not optional or required"),
                );
                defaults.requester_headers
            }),
        },
        // From an hour (a narrow same-day search) to a year.
        max_slot_range: duration(
            &mut p,
            "receiver.max_slot_range",
            raw.receiver.max_slot_range,
            "31d",
            (3_600, 366 * 86_400),
        ),
    };

    let handler = match raw.handler.kind.as_deref().unwrap_or("inbox") {
        "inbox" => HandlerKind::Inbox,
        "forward" => HandlerKind::Forward,
        "relay" => HandlerKind::Relay,
        other => {
            p.add(
                "handler.kind",
                format!("'{other}' is not a handler kind this build has (inbox, forward, relay)"),
            );
            HandlerKind::Inbox
        }
    };
    let upstream = super::upstream::convert(&mut p, handler, raw.upstream, deadline);

    let inbox_path = PathBuf::from(raw.inbox.path.unwrap_or_else(|| "data/inbox.db".into()));
    if inbox_path.as_os_str().is_empty() {
        p.add("inbox.path", "must not be empty");
    }
    // At least a day: the proxy and senders retry over minutes to hours.
    let dedup_retention = duration(
        &mut p,
        "inbox.dedup_retention",
        raw.inbox.dedup_retention,
        "30d",
        (86_400, 3_650 * 86_400),
    );

    let store = super::store::convert(&mut p, environment, raw.store, inbox_path.clone());

    let log = log(&mut p, raw.log);

    let admin = ops::admin(&mut p, raw.admin);
    let reload = ops::reload(&mut p, raw.reload);
    let sender = raw
        .sender
        .map(|section| super::sender::convert(&mut p, environment, section));
    let message_definitions = super::messaging::convert(&mut p, raw.messaging, &receiver.services);

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Settings {
        environment,
        listen,
        tls,
        allowlist,
        http,
        receiver,
        handler,
        upstream,
        inbox: InboxSettings {
            path: inbox_path,
            dedup_retention,
        },
        store,
        log,
        admin,
        reload,
        sender,
        message_definitions,
        ignored_variables: raw.ignored_variables,
    })
}

fn allowlist(
    p: &mut Problems,
    environment: Environment,
    sources: Option<Vec<String>>,
    any_unsafe: Option<bool>,
) -> Allowlist {
    let any_unsafe = any_unsafe.unwrap_or(false);
    if any_unsafe {
        if sources.as_ref().is_some_and(|s| !s.is_empty()) {
            p.add(
                "allowlist.allow_any_source_unsafe",
                "is true while allowlist.sources is set: remove one of them",
            );
        }
        return Allowlist::allow_any_source_unsafe();
    }
    let texts: Vec<String> = sources.unwrap_or_else(|| {
        environment
            .preset_sources()
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    let nets = networks(
        p,
        "allowlist.sources",
        &texts,
        "allows every address; set allow_any_source_unsafe = true if that is really meant",
    );
    if texts.is_empty() {
        p.add(
            "allowlist.sources",
            "is empty, which would refuse every caller; list the proxy addresses, omit the key for the environment preset, or set allow_any_source_unsafe = true",
        );
    }
    Allowlist::new(nets)
}

/// `[log]`: the format and a valid `tracing` filter.
pub(super) fn log(p: &mut Problems, raw: super::raw::RawLog) -> LogSettings {
    let format = match raw.format.as_deref().unwrap_or("auto") {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        "auto" => LogFormat::Auto,
        other => {
            p.add("log.format", format!("'{other}' is not json, pretty or auto"));
            LogFormat::Auto
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        p.add("log.level", format!("'{level}' is not a log filter: {e}"));
    }
    LogSettings { format, level }
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
