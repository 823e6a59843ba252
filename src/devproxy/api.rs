//! `/booking-and-referral/FHIR/R4/...`: the BaRS API as the national proxy serves it. In
//! order: a BaRS endpoint (404 otherwise), a valid bearer token (401 `SEND_UNAUTHORIZED`),
//! `GET /metadata` without a target answered by the proxy itself, both BaRS ids and a target
//! (400), the target decoded (400 `PROXY_BAD_REQUEST`) and found in the catalogue (404
//! `PROXY_NOT_FOUND`), then the request forwarded over mutual TLS and the answer relayed,
//! rewritten where the national proxy rewrites it.

use std::time::Instant;

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;

use super::catalogue::Catalogue;
use super::forward::{Answer, Forwarder, Outbound, end_to_end};
use super::outcome::ProxyOutcome;
use super::rewrite::{on_failure, rewrite};
use super::token::{BearerRefusal, TokenService};
use crate::fhir::{NHSD_TARGET_IDENTIFIER, TargetIdentifier, X_CORRELATION_ID, X_REQUEST_ID};

/// The path of the BaRS API on the proxy.
pub const API_BASE_PATH: &str = "/booking-and-referral/FHIR/R4";

/// Standard alphabet, padding optional (senders differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An answer to send back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// A JSON answer made by the proxy.
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    /// One of the proxy's own OperationOutcomes, echoing the request's BaRS ids.
    pub(crate) fn outcome(outcome: ProxyOutcome, request: &HeaderMap) -> Self {
        let mut reply = Self::json(outcome.status(), &outcome.body());
        echo_ids(request, &mut reply.headers);
        reply
    }
}

/// One request to the BaRS API, as received.
#[derive(Debug)]
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a Method,
    /// The path after [`API_BASE_PATH`], as sent (e.g. `/$process-message`).
    pub(crate) suffix: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: Bytes,
}

/// The BaRS API behind the token check.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) catalogue: Catalogue,
    pub(crate) forwarder: Forwarder,
    /// The proxy's own CapabilityStatement.
    pub(crate) capability: Value,
}

impl Api {
    /// Answers one request; never fails (every refusal is an answer).
    pub(crate) async fn handle(&self, tokens: &TokenService, request: ApiRequest<'_>) -> Reply {
        let started = Instant::now();
        let headers = request.headers;
        let endpoint = normalise(request.suffix);
        if !is_bars_endpoint(&endpoint) {
            return Reply::outcome(ProxyOutcome::PageNotFound, headers);
        }
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let app = match tokens.check_bearer(authorization) {
            Ok(app) => app,
            Err(BearerRefusal::Missing) => return Reply::outcome(ProxyOutcome::NoToken, headers),
            Err(BearerRefusal::Invalid) => return Reply::outcome(ProxyOutcome::BadToken, headers),
        };
        let target_header = headers.get(NHSD_TARGET_IDENTIFIER);
        if target_header.is_none() && endpoint == "/metadata" && request.method == Method::GET {
            let mut reply = Reply::json(200, &self.capability);
            echo_ids(headers, &mut reply.headers);
            return reply;
        }
        let has = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| !v.trim().is_empty())
        };
        let ids_optional = endpoint == "/metadata" && request.method == Method::GET;
        let ids_present = has(X_REQUEST_ID) && has(X_CORRELATION_ID);
        if !ids_optional && !ids_present {
            return Reply::outcome(ProxyOutcome::MissingHeaders, headers);
        }
        let Some(target_header) = target_header else {
            return Reply::outcome(ProxyOutcome::MissingHeaders, headers);
        };
        let target = match decode_target(target_header.as_bytes()) {
            Ok(target) => target,
            Err(outcome) => return Reply::outcome(outcome, headers),
        };
        let Some(endpoint_entry) = self.catalogue.find(&target) else {
            tracing::info!(application = %app, service = %target, "target not in the endpoint catalogue");
            return Reply::outcome(ProxyOutcome::NotInCatalogue, headers);
        };
        let mut url = format!("{}{}", endpoint_entry.url, request.suffix);
        if let Some(query) = request.query {
            url.push('?');
            url.push_str(query);
        }
        let outbound = Outbound {
            method: request.method.clone(),
            url,
            headers: headers.clone(),
            body: request.body,
        };
        let (reply, receiver_status, failure) = match self.forwarder.send(outbound).await {
            Ok(answer) => {
                let receiver_status = answer.status;
                (relayed(answer, headers), Some(receiver_status), None)
            }
            Err(failure) => {
                let reply = Reply::outcome(on_failure(&failure), headers);
                (reply, None, Some(failure.to_string()))
            }
        };
        tracing::info!(
            application = %app,
            method = %request.method,
            path = %request.suffix,
            service = %target,
            receiver = %endpoint_entry.url,
            receiver_status,
            status = reply.status,
            failure,
            duration_ms = started.elapsed().as_millis() as u64,
            "forwarded"
        );
        reply
    }
}

/// The receiver's answer as the sender gets it: unchanged, or with the national proxy's
/// generic body in place of the receiver's (the receiver's headers, its echoed ids among
/// them, kept).
fn relayed(answer: Answer, request: &HeaderMap) -> Reply {
    match rewrite(answer.status, &answer.body) {
        Some(generic) => {
            let mut replaced = Reply::json(generic.status(), &generic.body());
            for (name, value) in &answer.headers {
                if name != header::CONTENT_TYPE && name != header::CONTENT_ENCODING {
                    replaced.headers.append(name.clone(), value.clone());
                }
            }
            echo_ids(request, &mut replaced.headers);
            replaced
        }
        None => Reply {
            status: answer.status,
            headers: end_to_end(&answer.headers),
            body: answer.body,
        },
    }
}

/// The path with `%24` read as `$`, for matching only (the path is forwarded as sent).
fn normalise(suffix: &str) -> String {
    suffix.replace("%24", "$")
}

/// The receiver endpoints the BaRS API routes (anything else is the proxy's 404).
fn is_bars_endpoint(path: &str) -> bool {
    path == "/metadata"
        || path == "/$process-message"
        || ["/Slot", "/Appointment", "/ServiceRequest", "/MessageDefinition"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// `NHSD-Target-Identifier`: base64 of `{"system": ..., "value": ...}`.
fn decode_target(raw: &[u8]) -> Result<TargetIdentifier, ProxyOutcome> {
    let text = std::str::from_utf8(raw).map_err(|_| ProxyOutcome::TargetNotBase64)?;
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|_| ProxyOutcome::TargetNotBase64)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| ProxyOutcome::TargetSchema)?;
    match (value["system"].as_str(), value["value"].as_str()) {
        (Some(system), Some(value)) if !system.is_empty() && !value.is_empty() => Ok(TargetIdentifier {
            system: system.to_owned(),
            value: value.to_owned(),
        }),
        _ => Err(ProxyOutcome::TargetSchema),
    }
}

/// Copies the request's BaRS ids onto an answer that lacks them.
fn echo_ids(request: &HeaderMap, answer: &mut HeaderMap) {
    for name in [X_REQUEST_ID, X_CORRELATION_ID] {
        if answer.contains_key(name) {
            continue;
        }
        if let Some(value) = request.get(name) {
            answer.insert(http::HeaderName::from_static(name), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::encode_header_json;
    use serde_json::json;

    #[test]
    fn decodes_targets_as_the_proxy_does() {
        let good =
            encode_header_json(&json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "1"}));
        assert_eq!(decode_target(good.as_bytes()).unwrap().value, "1");
        let unpadded = good.trim_end_matches('=');
        assert!(decode_target(unpadded.as_bytes()).is_ok());
        assert_eq!(
            decode_target(b"%%%not base64"),
            Err(ProxyOutcome::TargetNotBase64)
        );
        let no_value = encode_header_json(&json!({"system": "s"}));
        assert_eq!(
            decode_target(no_value.as_bytes()),
            Err(ProxyOutcome::TargetSchema)
        );
        let not_json = BASE64.encode("system=s");
        assert_eq!(
            decode_target(not_json.as_bytes()),
            Err(ProxyOutcome::TargetSchema)
        );
    }

    #[test]
    fn routes_only_bars_endpoints() {
        for path in [
            "/metadata",
            "/$process-message",
            "/Slot",
            "/Appointment/1",
            "/ServiceRequest",
            "/MessageDefinition",
        ] {
            assert!(is_bars_endpoint(path), "{path}");
        }
        assert!(is_bars_endpoint(&normalise("/%24process-message")));
        for path in ["/", "/Patient", "/DocumentReference", "/metadata/x", "/_status"] {
            assert!(!is_bars_endpoint(path), "{path}");
        }
    }
}
