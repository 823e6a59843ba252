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
/// JSON, then the BaRS rules, the profiles and MessageDefinitions), and an accepted one
/// through the receiver ids spliced into its text, which must stay the same message.
pub fn bundle(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = MessageBundle::from_json(text) else {
        return;
    };
    let definitions = fhir::Definitions::bars();
    let receiver = fhir::Receiver {
        services: &[],
        organisation: None,
        definitions: &definitions,
    };
    let Ok(located) = fhir::read_message(text, &receiver) else {
        return;
    };
    let (answered, ids) = located.with_receiver_ids();
    let again = MessageBundle::from_json(&answered.source);
    assert!(
        again.is_ok_and(|m| m.id == message.id && m.event == message.event),
        "receiver ids broke an accepted message"
    );
    // Where validation found the ids and where a scan of the text finds them must be the
    // same places: the answers differ only in the fresh ids themselves.
    let (scanned, scanned_ids) = message.with_receiver_ids();
    let masked = |text: &str, ids: &[fhir::AssignedId]| {
        ids.iter()
            .fold(text.to_owned(), |text, a| text.replace(&a.id, "<id>"))
    };
    let places = |ids: &[fhir::AssignedId]| {
        ids.iter()
            .map(|a| {
                (
                    a.entry,
                    a.full_url.clone(),
                    a.resource_type.clone(),
                    a.previous.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(places(&ids), places(&scanned_ids), "ids assigned in other places");
    assert_eq!(
        masked(&answered.source, &ids),
        masked(&scanned.source, &scanned_ids),
        "the ids found by validation and by the scan were spliced differently"
    );
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

#[cfg(test)]
mod tests {
    //! The committed seeds reach each parser's success path, so the fuzzers start deep
    //! inside the parsers rather than at their first refusal.

    use super::*;
    use crate::config::ConfigError;
    use crate::sender::TokenError;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn text(target: &str, name: &str) -> String {
        String::from_utf8(seed(target, name)).unwrap()
    }

    #[test]
    fn header_seeds_decode() {
        let headers = header_map(&seed("headers", "seed-all"));
        assert!(BarsIds::from_headers(&headers).is_ok());
        let nhsd = NhsdHeaders::from_headers(&headers).unwrap();
        assert_eq!(nhsd.target.unwrap().value, "111111111");
        assert_eq!(
            nhsd.end_user_organisation.unwrap().ods_code.as_deref(),
            Some("A1001")
        );
        assert_eq!(nhsd.requesting_software.unwrap().name.as_deref(), Some("tests"));
        assert!(nhsd.requesting_practitioner.is_some());
        let unpadded = header_map(&seed("headers", "seed-unpadded"));
        assert!(NhsdHeaders::from_headers(&unpadded).unwrap().target.is_some());
    }

    #[test]
    fn media_seed_is_accepted() {
        let headers = header_map(&seed("media", "seed-fhir-version"));
        assert!(fhir::check_accept(&headers).is_ok());
        assert!(fhir::check_content_type(&headers, BodyKind::Resource).is_ok());
    }

    #[test]
    fn bundle_seeds_pass_the_message_checks() {
        for name in [
            "seed-minimal.json",
            "seed-response.json",
            "seed-nhs-1.json",
            "seed-nhs-3.json",
        ] {
            if let Err(e) = MessageBundle::from_json(&text("bundle", name)) {
                panic!("{name}: {e:?}");
            }
        }
    }

    #[test]
    fn the_nhs_bundle_seeds_reach_the_receiver_ids() {
        let definitions = fhir::Definitions::bars();
        let receiver = fhir::Receiver {
            services: &[],
            organisation: None,
            definitions: &definitions,
        };
        // A new request gets ids; a response whose resources all carry theirs keeps them.
        for (name, assigned) in [("seed-nhs-1.json", true), ("seed-nhs-3.json", false)] {
            let message = match fhir::read_message(&text("bundle", name), &receiver) {
                Ok(message) => message,
                Err(e) => panic!("{name}: {e:?}"),
            };
            let (answered, ids) = message.with_receiver_ids();
            assert_eq!(!ids.is_empty(), assigned, "{name}");
            assert_eq!(answered.source != message.source, assigned, "{name}");
            bundle(&seed("bundle", name));
        }
    }

    #[test]
    fn proxy_seeds_carry_addresses() {
        let read = |name: &str| {
            let bytes = seed("proxy", name);
            let mut reader = bytes.as_slice();
            let mut future = pin!(net::read_proxy_header(&mut reader));
            match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(result) => result,
                Poll::Pending => panic!("{name}: waited"),
            }
        };
        for name in [
            "seed-v1-tcp4",
            "seed-v1-tcp6",
            "seed-v2-tcp4",
            "seed-v2-tcp6",
            "seed-v2-tlv",
        ] {
            assert!(matches!(read(name), Ok(Some(_))), "{name}");
        }
        for name in ["seed-v1-unknown", "seed-v2-local"] {
            assert!(matches!(read(name), Ok(None)), "{name}");
        }
        assert!(read("seed-v2-unix").is_err());
        assert!(read("regress-v1-split-utf8").is_err());
    }

    #[test]
    fn config_seeds_parse_up_to_their_missing_files() {
        for name in ["seed-dev.toml", "seed-int.toml", "seed-prod.toml"] {
            // The files they name are not here: conversion runs to the end and lists them.
            match Settings::from_toml(&text("config", name), name, std::iter::empty()) {
                Ok(_) | Err(ConfigError::Invalid { .. }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
            match SenderSettings::from_toml(&text("config", name), name, std::iter::empty()) {
                Ok(_) | Err(ConfigError::Invalid { .. }) => {}
                Err(e) => panic!("{name} [sender]: {e}"),
            }
        }
    }

    #[test]
    fn certificate_and_key_seeds_load() {
        let path = Path::new(ORIGIN);
        let chain = tls::certs_from_pem(&seed("certs", "seed-chain.pem"), path).unwrap();
        assert_eq!(chain.len(), 2);
        let leaf = tls::CertInfo::parse(&chain[0]).unwrap();
        assert_eq!(leaf.dns_names, ["receiver.example.nhs.uk"]);
        assert!(tls::CertInfo::parse(&seed("certs", "seed-leaf.der").into()).is_ok());
        assert!(tls::key_from_pem(&seed("certs", "seed-pkcs8-key.pem"), path).is_ok());
        assert!(tls::key_from_pem(&seed("certs", "seed-sec1-key.pem"), path).is_ok());
    }

    #[test]
    fn crl_seeds_load_and_describe() {
        let path = Path::new(ORIGIN);
        for (name, count) in [("seed-crl.pem", 1), ("seed-crl.der", 1), ("seed-two-crls.pem", 2)] {
            let (crls, infos) = tls::crls_from_bytes(seed("crl", name), path).unwrap();
            assert_eq!(crls.len(), count, "{name}");
            assert!(
                infos
                    .iter()
                    .all(|i| i.revoked == 1 && i.issuer == "CN=Fuzz Root CA"),
                "{name}"
            );
        }
    }

    #[test]
    fn token_seeds_parse() {
        let token = sender::parse_token_response(200, &seed("token", "seed-apim")).unwrap();
        assert_eq!(token.expires_in.as_secs(), 599);
        assert!(sender::parse_token_response(200, &seed("token", "seed-numbers")).is_ok());
        assert!(matches!(
            sender::parse_token_response(401, &seed("token", "seed-refused")),
            Err(TokenError::Refused { .. })
        ));
    }
}
