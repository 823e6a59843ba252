//! What the forward and relay handlers tell the upstream: the caller's headers less the hop-by-hop ones and any claim of
//! identity, plus `X-Forwarded-For`, `X-Forwarded-Proto` and an Envoy-format
//! `x-forwarded-client-cert` built from the verified TLS peer. Identity only ever comes from
//! our own TLS session.

use super::{RequestContext, claims_identity};
use crate::fhir::{
    NHSD_END_USER_ORGANISATION, NHSD_REQUESTING_PRACTITIONER, NHSD_REQUESTING_SOFTWARE,
    NHSD_TARGET_IDENTIFIER, X_CORRELATION_ID, X_REQUEST_ID, encode_header_json,
};
use crate::tls::PeerIdentity;
use crate::upstream::HOP_BY_HOP;

/// Beyond [`HOP_BY_HOP`], the headers the client computes itself or that are not for the
/// upstream.
const NOT_FORWARDED: &[&str] = &[
    // Set by the client from the upstream URL and the body.
    "host",
    "content-length",
    // The answer is read and checked as JSON: it must come uncompressed. The body is sent
    // whole, so there is nothing to continue.
    "accept-encoding",
    "expect",
    // The sender's token is for the BaRS proxy, never for the provider's system.
    "authorization",
];

/// `Idempotency-Key`: always the `X-Request-Id`.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `X-Forwarded-Client-Cert`, Envoy's format.
pub(crate) const XFCC: &str = "x-forwarded-client-cert";

/// The headers to send upstream for `ctx`, names in lowercase.
pub(crate) fn outbound_headers(ctx: &RequestContext) -> Vec<(String, String)> {
    let connection_named: Vec<String> = ctx
        .http_headers
        .iter()
        .filter(|(name, _)| name == "connection")
        .flat_map(|(_, value)| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect();
    let mut headers: Vec<(String, String)> = ctx
        .http_headers
        .iter()
        .filter(|(name, _)| {
            !HOP_BY_HOP.contains(&name.as_str())
                && !NOT_FORWARDED.contains(&name.as_str())
                && !claims_identity(name)
                && !connection_named.contains(name)
        })
        .cloned()
        .collect();
    // The ids and NHSD-* headers are the ones the pipeline checked; a context built without
    // the raw headers (an integrator's test, say) still carries them.
    let mut ensure = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            if !headers.iter().any(|(n, _)| n == name) {
                headers.push((name.to_owned(), value));
            }
        }
    };
    ensure(X_REQUEST_ID, Some(ctx.request_id.to_string()));
    ensure(X_CORRELATION_ID, Some(ctx.correlation_id.to_string()));
    ensure(
        NHSD_TARGET_IDENTIFIER,
        ctx.target
            .as_ref()
            .map(|t| encode_header_json(&serde_json::json!({"system": t.system, "value": t.value}))),
    );
    ensure(
        NHSD_END_USER_ORGANISATION,
        ctx.end_user_organisation
            .as_ref()
            .map(|o| encode_header_json(&o.resource)),
    );
    ensure(
        NHSD_REQUESTING_SOFTWARE,
        ctx.requesting_software
            .as_ref()
            .map(|s| encode_header_json(&s.resource)),
    );
    ensure(
        NHSD_REQUESTING_PRACTITIONER,
        ctx.requesting_practitioner
            .as_ref()
            .map(|p| encode_header_json(&p.resource)),
    );
    // The X-Request-Id is the idempotency key: a retry the receiver could not answer from
    // de-duplication (after a timeout or 5xx) reaches the upstream with the same key, so the
    // provider's system can tell it from a new message.
    headers.retain(|(name, _)| name != IDEMPOTENCY_KEY);
    headers.push((IDEMPOTENCY_KEY.into(), ctx.request_id.to_string()));
    headers.push(("x-forwarded-for".into(), ctx.peer.source_ip.to_string()));
    headers.push(("x-forwarded-proto".into(), "https".into()));
    headers.push((XFCC.into(), xfcc(&ctx.peer)));
    headers
}

/// The verified peer in Envoy's `x-forwarded-client-cert` format:
/// `Hash=<sha256 of the DER, hex>;Subject="<subject DN, RFC 2253>";DNS=<SAN>...`.
pub(crate) fn xfcc(peer: &PeerIdentity) -> String {
    // The RFC 2253 subject is written as is, like Envoy does: its backslashes are its own
    // escapes, and it holds no quote (a `"` in a value is written `\22`), so the quotes
    // around it cannot be closed early. A subject set by other code gets the same escape.
    let mut value = format!(
        "Hash={};Subject=\"{}\"",
        peer.sha256_fingerprint,
        peer.subject.replace('"', "\\22")
    );
    for name in &peer.dns_names {
        value.push_str(";DNS=");
        if name.contains([',', ';', '=', '"']) {
            value.push_str(&quoted(name));
        } else {
            value.push_str(name);
        }
    }
    value
}

/// A double-quoted XFCC value, with `"` and `\` escaped.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{BarsIds, NhsdHeaders};
    use uuid::Uuid;

    fn peer() -> PeerIdentity {
        let mut peer = PeerIdentity::for_tests("int.api.service.nhs.uk", [10, 0, 0, 7].into());
        peer.subject = r"CN=int.api.service.nhs.uk,OU=Devices\, Leeds,O=NHS \22Digital\22".into();
        peer.dns_names = vec!["a.nhs.uk".into(), "b.nhs.uk".into()];
        peer
    }

    fn ctx(headers: &[(&'static str, &'static str)]) -> RequestContext {
        RequestContext::new(
            BarsIds {
                request_id: Uuid::new_v4(),
                correlation_id: Uuid::new_v4(),
            },
            NhsdHeaders::default(),
            peer(),
        )
        .with_http_headers(headers.iter().copied())
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn formats_the_peer_as_envoy_xfcc() {
        assert_eq!(
            xfcc(&peer()),
            format!(
                r#"Hash={};Subject="CN=int.api.service.nhs.uk,OU=Devices\, Leeds,O=NHS \22Digital\22";DNS=a.nhs.uk;DNS=b.nhs.uk"#,
                "0".repeat(64)
            )
        );
        let mut raw = peer();
        raw.subject = r#"CN=a"b"#.into();
        raw.dns_names.clear();
        assert!(xfcc(&raw).ends_with(r#";Subject="CN=a\22b""#), "{}", xfcc(&raw));
    }

    #[test]
    fn drops_hop_by_hop_and_identity_headers_and_adds_our_own() {
        let out = outbound_headers(&ctx(&[
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("host", "receiver.example"),
            ("content-length", "10"),
            ("authorization", "Bearer secret"),
            ("accept-encoding", "gzip"),
            ("expect", "100-continue"),
            ("x-forwarded-client-cert", "Hash=evil"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-client-cert", "evil"),
            ("accept", "application/fhir+json; version=1.4.0"),
            ("use-context", "stats"),
        ]));
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "te",
            "transfer-encoding",
            "upgrade",
            "host",
            "content-length",
            "authorization",
            "accept-encoding",
            "expect",
            "x-client-cert",
        ] {
            assert!(get(&out, gone).is_empty(), "{gone} was forwarded: {out:?}");
        }
        assert_eq!(get(&out, "x-forwarded-for"), ["10.0.0.7"]);
        assert_eq!(get(&out, "x-forwarded-proto"), ["https"]);
        assert_eq!(get(&out, "idempotency-key").len(), 1, "one key, ours");
        assert_eq!(get(&out, XFCC), [xfcc(&peer()).as_str()]);
        assert_eq!(get(&out, "accept"), ["application/fhir+json; version=1.4.0"]);
        assert_eq!(get(&out, "use-context"), ["stats"]);
        assert_eq!(get(&out, X_REQUEST_ID).len(), 1);
        assert_eq!(get(&out, X_CORRELATION_ID).len(), 1);
    }
}
