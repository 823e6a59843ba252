//! The operational sections: revocation (`tls.crl*`), PROXY protocol
//! (`listen.trusted_proxies`), the admin listener and reloads.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::fields::{Problems, duration, file, networks};
use super::raw::{RawAdmin, RawReload, RawTls};
use super::{AdminSettings, Environment, ReloadSettings};
use crate::net::ProxyPolicy;
use crate::tls::RevocationPolicy;

/// `tls.crl` and its two loud relaxations.
/// `tls.crl` is required outside development: without it a revoked proxy certificate would
/// still be admitted. Only `tls.allow_no_revocation_check_unsafe = true` waives it.
pub(super) fn revocation(
    p: &mut Problems,
    raw: &RawTls,
    environment: Environment,
) -> (Vec<PathBuf>, RevocationPolicy) {
    let files: Vec<PathBuf> = raw
        .crl
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| file(p, &format!("tls.crl[{i}]"), f))
        .collect();
    let no_check = raw.allow_no_revocation_check_unsafe.unwrap_or(false);
    if files.is_empty() && !no_check && environment != Environment::Dev {
        p.add(
            "tls.crl",
            "required for int and prod: list the CRLs of your environment's SubCA (and Root), or set tls.allow_no_revocation_check_unsafe = true",
        );
    }
    if !files.is_empty() && no_check {
        p.add(
            "tls.allow_no_revocation_check_unsafe",
            "is true while tls.crl lists CRLs: remove one of them",
        );
    }
    let policy = RevocationPolicy {
        allow_unknown_status_unsafe: raw.allow_unknown_revocation_status_unsafe.unwrap_or(false),
        allow_expired_crl_unsafe: raw.allow_expired_crl_unsafe.unwrap_or(false),
    };
    (files, policy)
}

/// `listen.trusted_proxies`: load balancers that must send a PROXY header.
pub(super) fn trusted_proxies(p: &mut Problems, raw: Option<Vec<String>>) -> ProxyPolicy {
    let texts = raw.unwrap_or_default();
    ProxyPolicy::new(networks(
        p,
        "listen.trusted_proxies",
        &texts,
        "would let any address claim any client address",
    ))
}

/// `[admin]`: on by default, on loopback.
pub(super) fn admin(p: &mut Problems, raw: RawAdmin) -> AdminSettings {
    let text = raw.address.unwrap_or_else(|| "127.0.0.1:9090".into());
    let address = text.parse::<SocketAddr>().unwrap_or_else(|_| {
        p.add("admin.address", format!("'{text}' is not an IP:port address"));
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    AdminSettings {
        enabled: raw.enabled.unwrap_or(true),
        address,
    }
}

/// `[reload] watch_interval`: `0s` turns file watching off (SIGHUP still reloads).
pub(super) fn reload(p: &mut Problems, raw: RawReload) -> ReloadSettings {
    let interval = duration(p, "reload.watch_interval", raw.watch_interval, "5s", (0, 3600));
    ReloadSettings {
        watch_interval: (!interval.is_zero()).then_some(interval),
    }
}
