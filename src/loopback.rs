//! This machine as an address: whether a host or URL names it (plain `http` is allowed, and
//! not warned about, only there), and where a local client reaches a listener bound to an
//! unspecified address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `host` (a name, or an IP address with or without brackets) is this machine:
/// `localhost` in any case, or a loopback address.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url`'s host is this machine. A URL that does not parse, or has no host, is not.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(is_loopback_host))
        .unwrap_or(false)
}

/// Where a client on this machine reaches a listener bound to `addr`: an unspecified
/// address (`0.0.0.0`, `::`) is read as the loopback address of its family.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_of_this_machine_are_loopback() {
        for host in ["localhost", "LocalHost", "127.0.0.1", "127.0.0.2", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.org", "10.0.0.1", "[::2]", "localhost.example.org", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(is_loopback_url("http://localhost:8080/fhir"));
        assert!(is_loopback_url("http://[::1]:8080/"));
        assert!(!is_loopback_url("http://upstream.example.org/"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn an_unspecified_bind_address_is_reached_on_loopback() {
        let reach = |s: &str| reachable(s.parse().unwrap()).to_string();
        assert_eq!(reach("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(reach("[::]:8443"), "[::1]:8443");
        assert_eq!(reach("192.0.2.1:8443"), "192.0.2.1:8443");
    }
}
