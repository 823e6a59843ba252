//! HTTP/1.1 message rules hyper leaves to the application, checked before anything else
//! reads the request: exactly one valid `Host` (RFC 9112 §3.2), and no transfer coding
//! other than `chunked` (RFC 9112 §6.1: a server answers 501 to a coding it does not
//! implement, instead of taking the coded bytes for the content). Either refusal closes the
//! connection, since the rest of what the client sent cannot be trusted to be framed as
//! the server reads it.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, Version, header};

use super::response;
use crate::fhir::{IssueType, RecCode, RecError};

/// The refusal for a request that breaks the HTTP/1.1 framing rules, if it does.
pub(super) fn refusal(version: Version, headers: &HeaderMap) -> Option<Response> {
    // h2 carries the authority in `:authority` and has no transfer codings (its own framing
    // rules are the h2 layer's); HTTP/1.0 may omit Host, but not repeat it.
    let http1 = matches!(version, Version::HTTP_10 | Version::HTTP_11);
    let error = host(version, headers).or_else(|| http1.then(|| transfer_coding(headers)).flatten())?;
    let mut refused = response::error(&error);
    refused
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(refused)
}

fn host(version: Version, headers: &HeaderMap) -> Option<RecError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let bad = |text: &str| Some(RecError::new(RecCode::BadRequest, IssueType::Invalid, text));
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => bad("An HTTP/1.1 request must carry a Host header."),
        (None, _) => None,
        (Some(_), Some(_)) => bad("The request carries more than one Host header."),
        (Some(value), None) if !valid_host(value) => bad("The Host header is not a valid host[:port]."),
        (Some(_), None) => None,
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2): an authority without user information.
fn valid_host(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    !text.is_empty() && !text.contains('@') && text.parse::<http::uri::Authority>().is_ok()
}

fn transfer_coding(headers: &HeaderMap) -> Option<RecError> {
    let codings: Vec<String> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(|coding| coding.trim().to_ascii_lowercase())
        .filter(|coding| !coding.is_empty())
        .collect();
    match codings.as_slice() {
        [] => None,
        [only] if only == "chunked" => None,
        _ => Some(RecError::new(
            RecCode::NotImplemented,
            IssueType::NotSupported,
            format!(
                "Transfer-Encoding '{}' is not implemented: only 'chunked' is.",
                codings.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn status(version: Version, pairs: &[(&'static str, &'static str)]) -> Option<u16> {
        refusal(version, &headers(pairs)).map(|r| r.status().as_u16())
    }

    #[test]
    fn host_must_be_present_once_and_valid_on_http_1_1() {
        assert_eq!(status(Version::HTTP_11, &[("host", "localhost:8443")]), None);
        assert_eq!(status(Version::HTTP_11, &[]), Some(400));
        assert_eq!(
            status(Version::HTTP_11, &[("host", "a"), ("host", "b")]),
            Some(400)
        );
        assert_eq!(status(Version::HTTP_11, &[("host", "user@evil")]), Some(400));
        assert_eq!(status(Version::HTTP_11, &[("host", "a b")]), Some(400));
        assert_eq!(status(Version::HTTP_10, &[]), None);
        assert_eq!(status(Version::HTTP_2, &[]), None);
    }

    #[test]
    fn only_chunked_is_a_transfer_coding_we_implement() {
        let host = ("host", "localhost");
        assert_eq!(
            status(Version::HTTP_11, &[host, ("transfer-encoding", "chunked")]),
            None
        );
        assert_eq!(
            status(Version::HTTP_11, &[host, ("transfer-encoding", " Chunked ")]),
            None
        );
        for coding in ["gzip, chunked", "chunked, chunked", "deflate", "identity"] {
            let te = ("transfer-encoding", coding);
            assert_eq!(status(Version::HTTP_11, &[host, te]), Some(501), "{coding}");
        }
        let split = [
            host,
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(status(Version::HTTP_11, &split), Some(501));
    }
}
