//! What a handler knows about the request it is answering.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::fhir::{
    BarsIds, EndUserOrganisation, NhsdHeaders, RequestingPractitioner, RequestingSoftware, TargetIdentifier,
};
use crate::store::Settlement;
use crate::tls::PeerIdentity;

/// The BaRS ids, decoded headers and verified caller of one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestContext {
    /// `X-Request-Id`: unique per message, unchanged on retries.
    pub request_id: Uuid,
    /// `X-Correlation-Id`: the conversation; replies reuse it.
    pub correlation_id: Uuid,
    /// `NHSD-Target-Identifier`: the service addressed.
    pub target: Option<TargetIdentifier>,
    /// `NHSD-End-User-Organisation`.
    pub end_user_organisation: Option<EndUserOrganisation>,
    /// `NHSD-Requesting-Software`.
    pub requesting_software: Option<RequestingSoftware>,
    /// `NHSD-Requesting-Practitioner`.
    pub requesting_practitioner: Option<RequestingPractitioner>,
    /// The caller proven by mutual TLS (the BaRS proxy), with the source address.
    pub peer: PeerIdentity,
    /// When the request arrived.
    pub received_at: OffsetDateTime,
    /// The HTTP method, e.g. `POST` (empty in a context built with [`RequestContext::new`]).
    pub method: String,
    /// The path relative to `http.base_path`, exactly as received (percent-encoding kept),
    /// e.g. `/$process-message` or `/Appointment/123`.
    pub path: String,
    /// The query string as received, without the `?`.
    pub query: Option<String>,
    /// The request headers as received, names in lowercase, in order. Headers that claim an
    /// identity (`X-Forwarded-*`, `Forwarded`, `X-Client-Cert`, `x-forwarded-client-cert`...)
    /// are left out: identity comes only from [`RequestContext::peer`]. So are values that
    /// are not visible ASCII.
    pub http_headers: Vec<(String, String)>,
    /// The request body exactly as received (UTF-8, within `http.max_body`), on requests
    /// that carry one.
    pub body: Option<Arc<str>>,
    /// For the built-in handlers: records the request's de-duplication outcome in the
    /// commit that accepts its message.
    pub(crate) settlement: Option<Settlement>,
}

impl RequestContext {
    /// A context from ids, decoded headers and the peer (the server builds these; tests and
    /// examples may too).
    pub fn new(ids: BarsIds, headers: NhsdHeaders, peer: PeerIdentity) -> Self {
        Self {
            request_id: ids.request_id,
            correlation_id: ids.correlation_id,
            target: headers.target,
            end_user_organisation: headers.end_user_organisation,
            requesting_software: headers.requesting_software,
            requesting_practitioner: headers.requesting_practitioner,
            peer,
            received_at: OffsetDateTime::now_utc(),
            method: String::new(),
            path: String::new(),
            query: None,
            http_headers: Vec::new(),
            body: None,
            settlement: None,
        }
    }

    /// A context with fresh ids, no NHSD headers and a loopback peer, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self::new(
            BarsIds {
                request_id: Uuid::new_v4(),
                correlation_id: Uuid::new_v4(),
            },
            NhsdHeaders::default(),
            PeerIdentity::for_tests("x", std::net::Ipv4Addr::LOCALHOST.into()),
        )
    }

    /// Adds what the request line said: method, path relative to the base path, and query.
    pub fn with_request_line(mut self, method: &str, path: &str, query: Option<&str>) -> Self {
        self.method = method.to_owned();
        self.path = path.to_owned();
        self.query = query.map(str::to_owned);
        self
    }

    /// Adds the request headers, leaving out those that claim an identity.
    pub fn with_http_headers<'a>(mut self, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.http_headers = headers
            .into_iter()
            .filter(|(name, _)| !claims_identity(name))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        self
    }

    /// Adds the body exactly as received.
    pub fn with_body(mut self, body: Arc<str>) -> Self {
        self.body = Some(body);
        self
    }

    /// The first value of a request header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.http_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded headers as JSON, for audit records.
    pub fn headers_json(&self) -> serde_json::Value {
        serde_json::json!({
            "x-request-id": self.request_id.to_string(),
            "x-correlation-id": self.correlation_id.to_string(),
            "nhsd-target-identifier": self.target.as_ref().map(|t| serde_json::json!({"system": t.system, "value": t.value})),
            "nhsd-end-user-organisation": self.end_user_organisation.as_ref().map(|o| &o.resource),
            "nhsd-requesting-software": self.requesting_software.as_ref().map(|s| &s.resource),
            "nhsd-requesting-practitioner": self.requesting_practitioner.as_ref().map(|p| &p.resource),
        })
    }
}

/// Whether a request header claims something about the caller's identity or the path it
/// came by. Such headers are never trusted from a caller: a receiver that forwards adds its
/// own, from the TLS session.
pub(crate) fn claims_identity(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    // CGI-style servers read `X_Forwarded_For` as `X-Forwarded-For`: a name with an
    // underscore is never passed on (nginx drops them by default for the same reason).
    name.contains('_')
        || matches!(
            name.as_str(),
            "forwarded"
                | "x-real-ip"
                | "true-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "client-ip"
                | "x-client-ip"
                | "x-cluster-client-ip"
                | "client-cert"
                | "client-cert-chain"
                | "remote-user"
                | "x-remote-user"
                | "x-authenticated-user"
                | "x-user"
        )
        || name.starts_with("x-forwarded-")
        || name.starts_with("x-original-")
        || name.starts_with("x-envoy-")
        || name.starts_with("x-client-")
        || name.starts_with("x-ssl-")
        || name.starts_with("ssl-client")
        || name.starts_with("x-amzn-mtls-")
        || name.starts_with("x-arr-clientcert")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_claims_are_recognised_in_any_case() {
        for name in [
            "X-Forwarded-Client-Cert",
            "x-forwarded-for",
            "X-Forwarded-Proto",
            "X-Client-Cert",
            "Forwarded",
            "X-Real-IP",
            "Client-Cert",
            "x-ssl-client-s-dn",
            "X_Forwarded_Client_Cert",
            "x_real_ip",
            "True-Client-IP",
            "X-Original-Forwarded-For",
            "x-envoy-external-address",
            "Remote-User",
            "X-Remote-User",
        ] {
            assert!(claims_identity(name), "{name}");
        }
        for name in ["x-request-id", "nhsd-target-identifier", "accept", "content-type"] {
            assert!(!claims_identity(name), "{name}");
        }
    }

    #[test]
    fn leaves_identity_claims_out_of_the_header_list() {
        let ctx = RequestContext::for_tests()
            .with_http_headers([("Accept", "a"), ("X-Forwarded-Client-Cert", "Hash=evil")]);
        assert_eq!(ctx.http_headers, vec![("accept".to_owned(), "a".to_owned())]);
        assert_eq!(ctx.header("ACCEPT"), Some("a"));
    }
}
