//! Entry points for the coverage-guided fuzz targets in `fuzz/` (the `fuzzing` feature, off
//! by default): one function per parser of outside input, each a thin call into the real
//! parser with the fuzzer's bytes. None of them is part of the supported API.
//!
//! A parser may refuse its input (that is its job); what a target looks for is a panic, an
//! abort or a hang.

use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{SenderSettings, Settings};
use crate::fhir::{self, BarsIds, BodyKind, MessageBundle, NhsdHeaders, TargetIdentifier};
use crate::{net, sender, tls};

/// The name the loaders give the input in their errors, where the real ones name a file.
const ORIGIN: &str = "fuzz input";

/// The BaRS id and `NHSD-*` header decoders on a header block (`name: value` lines).
pub fn headers(data: &[u8]) {
    let headers = header_map(data);
    let _ = BarsIds::optional_from_headers(&headers);
    let _ = NhsdHeaders::from_headers(&headers);
    for value in &headers {
        if let Ok(text) = value.1.to_str() {
            let _ = TargetIdentifier::parse_token(text);
        }
    }
}

/// `Accept` and `Content-Type` negotiation on a header block (`name: value` lines).
pub fn media(data: &[u8]) {
    let headers = header_map(data);
    let _ = fhir::check_accept(&headers);
    let _ = fhir::check_content_type(&headers, BodyKind::Resource);
    let _ = fhir::check_content_type(&headers, BodyKind::Patch);
}

/// A request body through the message bundle checks, as the pipeline reads it (UTF-8, then
/// JSON, then the BaRS rules).
pub fn bundle(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = MessageBundle::from_json(text);
    }
}

/// The first bytes of a connection from a trusted load balancer: one PROXY v1 or v2 header.
pub fn proxy(data: &[u8]) {
    let mut reader = data;
    let mut read = pin!(net::read_proxy_header(&mut reader));
    // A byte slice never waits: the reader finishes on its first poll, with a header or an
    // error (an early end is `Io`), so polling once with a waker that does nothing is enough.
    let outcome = read.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(
        matches!(outcome, Poll::Ready(_)),
        "the PROXY reader waited on a byte slice"
    );
}

/// A configuration file's text through the receiver's and the sender tools' loaders, without
/// `BARS_` overrides.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Settings::from_toml(text, ORIGIN, std::iter::empty());
        let _ = SenderSettings::from_toml(text, ORIGIN, std::iter::empty());
    }
}

/// Certificate and key files: the PEM loaders, then the certificate fields read from each
/// certificate found and from the bytes taken as one DER certificate.
pub fn certs(data: &[u8]) {
    let path = Path::new(ORIGIN);
    if let Ok(certs) = tls::certs_from_pem(data, path) {
        for cert in &certs {
            let _ = tls::CertInfo::parse(cert);
        }
    }
    let _ = tls::key_from_pem(data, path);
    let _ = tls::CertInfo::parse(&data.to_vec().into());
}

/// A CRL file (PEM with one or more CRLs, or one DER CRL), split and described.
pub fn crl(data: &[u8]) {
    let _ = tls::crls_from_bytes(data.to_vec(), Path::new(ORIGIN));
}

/// An API-M token endpoint's answer, read both as a success and as a refusal.
pub fn token(data: &[u8]) {
    let _ = sender::parse_token_response(200, data);
    let _ = sender::parse_token_response(401, data);
}

/// A header block from `name: value` lines; lines that are not a valid header are skipped,
/// as hyper would have refused them before any parser here runs.
fn header_map(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}
