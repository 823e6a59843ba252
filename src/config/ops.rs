//! The operational sections: revocation (`tls.crl*`), PROXY protocol
//! (`listen.trusted_proxies`), the admin listener and reloads.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::convert::{Problems, duration, file, networks};
use super::raw::{RawAdmin, RawReload, RawTls};
use super::{AdminSettings, ReloadSettings};
use crate::net::ProxyPolicy;
use crate::tls::RevocationPolicy;

/// `tls.crl` and its two loud relaxations.
pub(super) fn revocation(p: &mut Problems, raw: &RawTls) -> (Vec<PathBuf>, RevocationPolicy) {
    let files = raw
        .crl
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, f)| file(p, &format!("tls.crl[{i}]"), f))
        .collect();
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
