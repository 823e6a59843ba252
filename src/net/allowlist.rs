//! The source-IP allowlist, checked right after accept and before any TLS work.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which source addresses may open a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
    any_source_unsafe: bool,
}

impl Allowlist {
    /// Allows exactly these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self {
            nets,
            any_source_unsafe: false,
        }
    }

    /// Allows every source address: only for deployments where another layer enforces it.
    pub fn allow_any_source_unsafe() -> Self {
        Self {
            nets: Vec::new(),
            any_source_unsafe: true,
        }
    }

    /// Whether the allowlist is switched off.
    pub fn is_any_source_unsafe(&self) -> bool {
        self.any_source_unsafe
    }

    /// The allowed networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` may connect. IPv4-mapped IPv6 addresses (from dual-stack sockets) are
    /// checked as the IPv4 address they carry.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.any_source_unsafe {
            return true;
        }
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a CIDR (`35.197.254.55/32`) or a bare address (taken as a single host).
pub(crate) fn parse_source(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "'{text}' has host bits set; did you mean {} or {}/{}?",
                net.trunc(),
                net.addr(),
                net.max_prefix_len()
            ));
        }
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{text}' is not an IP address or CIDR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Allowlist {
        Allowlist::new(items.iter().map(|s| parse_source(s).unwrap()).collect())
    }

    #[test]
    fn allows_only_listed_networks() {
        let a = list(&["35.197.254.55/32", "10.0.0.0/8"]);
        assert!(a.allows("35.197.254.55".parse().unwrap()));
        assert!(a.allows("10.1.2.3".parse().unwrap()));
        assert!(!a.allows("35.197.254.56".parse().unwrap()));
        assert!(!a.allows("::1".parse().unwrap()));
    }

    #[test]
    fn checks_ipv4_mapped_addresses_as_ipv4() {
        let a = list(&["127.0.0.2/32"]);
        assert!(a.allows("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!a.allows("::ffff:127.0.0.3".parse().unwrap()));
    }

    #[test]
    fn bare_addresses_are_single_hosts_and_host_bits_are_refused() {
        assert_eq!(parse_source("34.89.0.111").unwrap().to_string(), "34.89.0.111/32");
        assert!(parse_source("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(parse_source("nope").is_err());
    }

    #[test]
    fn an_empty_list_refuses_everyone_and_the_unsafe_switch_allows_everyone() {
        assert!(!Allowlist::new(vec![]).allows("127.0.0.1".parse().unwrap()));
        assert!(Allowlist::allow_any_source_unsafe().allows("8.8.8.8".parse().unwrap()));
    }
}
