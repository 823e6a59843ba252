//! The hop-by-hop header list, shared by everything in this crate that relays HTTP (the
//! forward and relay handlers, the dev proxy).

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1): never forwarded
/// by anything in this crate that relays HTTP.
pub(crate) const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];
