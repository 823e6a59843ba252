//! `[handler] kind = "forward"` end to end: real TLS clients to the real server, which
//! forwards to an in-process upstream that records what it receives. Every route, the
//! identity headers (and callers' forged ones stripped), every row of the README's mapping
//! table (success bodies and `REC_` OperationOutcomes relayed byte for byte, the rest mapped
//! by status, 504 and timeouts as 408), de-duplication in front of the upstream, and an https
//! upstream with a client certificate over h2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::upstream::{Behaviour, Recorded, Script, TestUpstream, echo};
use common::*;
use http_body_util::Full;
use serde_json::json;

/// Every interaction the receiver can forward is implemented upstream.
const EVERY_INTERACTION: &str = "interactions = [\"slot-search\", \"appointment-read\", \"appointment-search\", \"appointment-create\", \"appointment-update\", \"appointment-patch\", \"appointment-delete\", \"service-request-read\", \"service-request-search\", \"service-request-create\", \"service-request-update\", \"service-request-patch\", \"service-request-delete\"]";

fn forward_options(url: &str, extra: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            "[handler]\nkind = \"forward\"\n[upstream]\nurl = \"{url}\"\n{EVERY_INTERACTION}\n{extra}\n"
        ),
        ..ServerOptions::default()
    }
}

fn fingerprint(leaf: &Leaf) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.chain[0].as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts the BaRS and identity headers the upstream must see for a request made with `bars`
/// by the PKI's good client from 127.0.0.1.
#[track_caller]
fn assert_headers(r: &Recorded, bars: &Bars, pki: &TestPki) {
    assert_eq!(r.header("x-request-id"), Some(bars.request_id.as_str()));
    assert_eq!(r.header("x-correlation-id"), Some(bars.correlation_id.as_str()));
    assert_eq!(
        r.header("nhsd-target-identifier"),
        Some(bars_receiver::fhir::encode_header_json(&bars.target).as_str())
    );
    assert!(r.header("nhsd-end-user-organisation").is_some());
    assert!(r.header("nhsd-requesting-software").is_some());
    assert_eq!(r.header("accept"), Some("application/fhir+json; version=1.4.0"));
    assert_eq!(r.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(r.header_all("idempotency-key"), [bars.request_id.as_str()]);
    let xfcc = r.header_all("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{xfcc:?}");
    assert!(
        xfcc[0].starts_with(&format!("Hash={};Subject=\"", fingerprint(&pki.client))),
        "{}",
        xfcc[0]
    );
    assert!(xfcc[0].contains("CN=int.api.service.nhs.uk"), "{}", xfcc[0]);
}

#[tokio::test]
async fn xfcc_names_the_caller_in_rfc_2253_order_as_envoy_does() {
    use rcgen::DnType;
    let upstream = TestUpstream::start("/provider/bars", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    // The NHS proxy certificates' subject order (O, OU, CN), with a comma and quotes in a
    // value: RFC 2253 escapes them, and the quotes (as `\22`) cannot end the XFCC value.
    let caller = server.pki.client_leaf(pki::LeafSpec {
        subject: Some(vec![
            (DnType::OrganizationName, "nhs".into()),
            (DnType::OrganizationalUnitName, "Devices, \"Leeds\"".into()),
            (DnType::CommonName, "int.api.service.nhs.uk".into()),
        ]),
        dns: vec!["int.api.service.nhs.uk".into()],
        ..pki::LeafSpec::default()
    });
    let reply = server
        .client_with(Some(&caller))
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    assert_eq!(reply.status, 200);
    // What openssl prints for the same certificate, with the RFC 2253 name options Envoy's
    // library uses; the receiver writes a quote as `\22` where openssl writes `\"`.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("caller.pem");
    std::fs::write(&pem, &caller.pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    let openssl = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        openssl
            .strip_prefix("subject=")
            .map(|s| s.replace("\\\"", "\\22")),
        Some(r"CN=int.api.service.nhs.uk,OU=Devices\, \22Leeds\22,O=nhs".to_owned()),
        "{openssl}"
    );
    let records = upstream.records();
    assert_eq!(
        records[0].header_all("x-forwarded-client-cert"),
        [format!(
            r#"Hash={};Subject="CN=int.api.service.nhs.uk,OU=Devices\, \22Leeds\22,O=nhs";DNS=int.api.service.nhs.uk"#,
            fingerprint(&caller)
        )]
    );
}

/// Answers like a booking system: 201 + Location for creates, 204 for deletes, else 200
/// echoing what it got.
fn provider() -> Script {
    Arc::new(|r: &Recorded, _| match r.method.as_str() {
        "POST" if !r.path.ends_with("process-message") => Behaviour::Respond {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/fhir+json".into()),
                ("location".into(), "Appointment/new-1".into()),
            ],
            body: json!({"resourceType": "Appointment", "id": "new-1"})
                .to_string()
                .into_bytes(),
        },
        "DELETE" => Behaviour::Respond {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        },
        _ => Behaviour::json(
            200,
            &json!({"resourceType": "Bundle", "type": "searchset", "method": r.method, "path": r.path}),
        ),
    })
}

/// Method, path and query, body with its content type, expected status.
type Case = (&'static str, String, Option<(String, &'static str)>, u16);

#[tokio::test]
async fn forwards_every_route_with_method_path_query_body_and_identity() {
    let upstream = TestUpstream::start("/provider/bars", provider()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let client = server.client();

    let meta = client
        .send(server.addr, Bars::default().get("/metadata"))
        .await
        .json();
    let types: Vec<&str> = meta["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for ty in ["Slot", "MessageDefinition", "Appointment", "ServiceRequest"] {
        assert!(types.contains(&ty), "{ty} not advertised: {types:?}");
    }
    assert!(
        upstream.records().is_empty(),
        "/metadata is answered by the receiver"
    );

    // Bodies are pretty-printed so that forwarding them byte for byte is visible.
    let message = serde_json::to_string_pretty(&minimal_message()).unwrap();
    let mut cases: Vec<Case> = vec![
        ("POST", "/$process-message".into(), Some((message, "application/fhir+json")), 200),
        (
            "GET",
            "/Slot?status=free&start=ge2026-03-01T09:00:00%2B00:00&start=le2026-03-02T09:00:00Z&Schedule.actor:HealthcareService=2000099999&_include=Slot:schedule&_include=Schedule:actor:HealthcareService"
                .into(),
            None,
            200,
        ),
    ];
    for ty in ["Appointment", "ServiceRequest"] {
        let resource =
            serde_json::to_string_pretty(&json!({"resourceType": ty, "status": "active"})).unwrap();
        let update = serde_json::to_string_pretty(
            &json!({"resourceType": ty, "id": "c3f6145e-1a26-4345-b3f2-dccbcba62049", "status": "active"}),
        )
        .unwrap();
        let patch = r#"[ {"op": "replace", "path": "/status", "value": "cancelled"} ]"#.to_owned();
        cases.extend([
            (
                "GET",
                format!("/{ty}?patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888"),
                None,
                200,
            ),
            (
                "GET",
                format!("/{ty}/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
                None,
                200,
            ),
            (
                "POST",
                format!("/{ty}"),
                Some((resource, "application/fhir+json")),
                201,
            ),
            (
                "PUT",
                format!("/{ty}/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
                Some((update, "application/fhir+json")),
                200,
            ),
            (
                "PATCH",
                format!("/{ty}/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
                Some((patch, "application/json-patch+json")),
                200,
            ),
            (
                "DELETE",
                format!("/{ty}/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
                None,
                204,
            ),
        ]);
    }
    for (index, (method, target, body, status)) in cases.iter().enumerate() {
        let bars = Bars::default();
        let mut builder = bars.request(method, target);
        let sent = match body {
            Some((text, content_type)) => {
                builder = builder.header("content-type", *content_type);
                Bytes::from(text.clone())
            }
            None => Bytes::new(),
        };
        let reply = client
            .send(server.addr, builder.body(Full::new(sent.clone())).unwrap())
            .await;
        assert_eq!(reply.status, *status, "{method} {target}: {:?}", reply.body);
        assert_eq!(
            reply.header("x-request-id"),
            Some(bars.request_id.as_str()),
            "ids re-echoed"
        );
        assert_eq!(
            reply.header("x-correlation-id"),
            Some(bars.correlation_id.as_str())
        );

        let records = upstream.records();
        assert_eq!(
            records.len(),
            index + 1,
            "{method} {target} reached the upstream once"
        );
        let r = records.last().unwrap();
        let (path, query) = target
            .split_once('?')
            .map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
        assert_eq!(r.method, *method);
        assert_eq!(r.path, format!("/provider/bars{path}"));
        assert_eq!(r.query.as_deref(), query, "{method} {target}");
        assert_eq!(r.body, sent, "{method} {target}: the body exactly as sent");
        if let Some((_, content_type)) = body {
            assert_eq!(r.header("content-type"), Some(*content_type));
        }
        assert_headers(r, &bars, &server.pki);

        match status {
            201 => {
                assert_eq!(reply.header("location"), Some("Appointment/new-1"));
                assert_eq!(reply.json()["id"], "new-1");
            }
            204 => assert!(reply.body.is_empty()),
            _ => assert_eq!(reply.json()["method"], *method),
        }
    }
}

#[tokio::test]
async fn strips_caller_supplied_identity_headers() {
    let upstream = TestUpstream::start("", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let bars = Bars::default();
    let request = bars
        .request("POST", "/$process-message")
        .header("content-type", "application/fhir+json")
        .header(
            "x-forwarded-client-cert",
            "Hash=deadbeef;Subject=\"CN=evil\";DNS=evil.example",
        )
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("x-client-cert", "MIIevil")
        .header("x-ssl-client-s-dn", "CN=evil")
        .header("forwarded", "for=6.6.6.6;proto=http")
        .header("x_forwarded_client_cert", "Hash=deadbeef")
        .header("true-client-ip", "6.6.6.6")
        .header("x-original-forwarded-for", "6.6.6.6")
        .header("remote-user", "admin")
        .header("authorization", "Bearer not-for-the-provider")
        .body(Full::new(Bytes::from(minimal_message().to_string())))
        .unwrap();
    let reply = server.client().send(server.addr, request).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let r = &upstream.records()[0];
    assert_headers(r, &bars, &server.pki);
    assert!(!r.header_all("x-forwarded-client-cert")[0].contains("deadbeef"));
    for gone in [
        "x-forwarded-host",
        "x-client-cert",
        "x-ssl-client-s-dn",
        "forwarded",
        "x_forwarded_client_cert",
        "true-client-ip",
        "x-original-forwarded-for",
        "remote-user",
        "authorization",
    ] {
        assert!(r.header(gone).is_none(), "{gone} reached the upstream");
    }
}

#[tokio::test]
async fn maps_a_refused_connection_to_503() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_configured(forward_options(&format!("http://127.0.0.1:{port}"), "")).await;
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    reply.assert_outcome(503, "REC_SERVICE_UNAVAILABLE", "transient");
    assert_eq!(reply.header("x-request-id"), Some(bars.request_id.as_str()));
    let read = server
        .client()
        .send(
            server.addr,
            Bars::default().get("/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await;
    read.assert_outcome(503, "REC_SERVICE_UNAVAILABLE", "transient");
}

#[tokio::test]
async fn maps_a_reset_before_the_response_to_503_and_never_sends_a_post_twice() {
    let upstream = TestUpstream::start("", Arc::new(|_: &Recorded, _| Behaviour::Close)).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    reply.assert_outcome(503, "REC_SERVICE_UNAVAILABLE", "transient");
    // Give a (wrong) automatic retry every chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.records().len(), 1, "the POST was sent once");
}

#[tokio::test]
async fn maps_an_upstream_timeout_to_408_and_forwards_the_retry_again() {
    let slow: Script = Arc::new(|_: &Recorded, _| {
        Behaviour::Delay(Duration::from_secs(60), Box::new(Behaviour::text(200, "late")))
    });
    let upstream = TestUpstream::start("", slow).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "timeout = \"1s\"")).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let reply = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    reply.assert_outcome(408, "REC_TIMEOUT", "timeout");
    assert_eq!(reply.header("x-request-id"), Some(bars.request_id.as_str()));

    // A timeout is not the message's fault: the retry goes to the upstream again.
    upstream.set_script(echo());
    let retry = server.client().send(server.addr, bars.message(body)).await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(upstream.records().len(), 2);
}

#[tokio::test]
async fn refuses_an_oversized_upstream_body_with_500_never_truncated() {
    let big = json!({"resourceType": "Bundle", "type": "searchset", "padding": "x".repeat(8192)});
    let upstream = TestUpstream::start("", Arc::new(move |_: &Recorded, _| Behaviour::json(200, &big))).await;
    let server =
        TestServer::start_configured(forward_options(&upstream.url, "max_response_body = \"4KiB\"")).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().get("/Appointment?patient:identifier=x%7C1"),
        )
        .await;
    reply.assert_outcome(500, "REC_SERVER_ERROR", "exception");
    assert!(reply.body.len() < 4096);
}

/// An answer of the upstream with this status, content type and body, exactly.
fn raw_answer(status: u16, content_type: &str, body: &[u8]) -> Behaviour {
    Behaviour::Respond {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.to_vec(),
    }
}

/// Sets the upstream to answer every request with `behaviour`.
fn answer_always(upstream: &TestUpstream, behaviour: Behaviour) {
    upstream.set_script(Arc::new(move |_: &Recorded, _| behaviour.clone()));
}

/// A vendored NHS example, as its bytes.
fn nhs_example(path: &str) -> Vec<u8> {
    let path = fixtures().join("examples1.4.0").join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("NHS example missing at {}: {e}", path.display()))
}

/// A `REC_` OperationOutcome spaced and ordered as a provider's system might write it, with a
/// number serde_json would write differently (`1e2`).
fn provider_outcome(code: &str, issue: &str) -> Vec<u8> {
    format!(
        "{{\n  \"resourceType\" : \"OperationOutcome\",\n  \"issue\" : [ {{\n    \"severity\" : \"error\",\n    \"code\" : \"{issue}\",\n    \"details\" : {{ \"coding\" : [ {{ \"system\" : \"https://fhir.nhs.uk/Codesystem/http-error-codes\", \"code\" : \"{code}\" }} ] }},\n    \"diagnostics\" : \"said by the provider\",\n    \"extension\" : [ {{ \"url\" : \"https://provider.example/attempts\", \"valueDecimal\" : 1e2 }} ]\n  }} ]\n}}\n"
    )
    .into_bytes()
}

/// Through a real client: a message (POST, de-duplicated) and a read (GET).
async fn both_routes(server: &TestServer) -> [(&'static str, Reply); 2] {
    let message = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    let read = server
        .client()
        .send(
            server.addr,
            Bars::default().get("/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await;
    [("$process-message", message), ("GET /Appointment/1", read)]
}

#[tokio::test]
async fn relays_upstream_success_bodies_byte_for_byte() {
    let upstream = TestUpstream::start("", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    // The NHS booking example, 18 741 bytes of tab-indented JSON: the sender gets those bytes.
    let example = nhs_example("process_message/POST-body.json");
    assert_eq!(example.len(), 18_741, "the vendored example");
    answer_always(&upstream, raw_answer(200, "application/fhir+json", &example));
    for (route, reply) in both_routes(&server).await {
        assert_eq!(reply.status, 200, "{route}");
        assert_eq!(reply.body.len(), 18_741, "{route}");
        assert!(reply.body == example, "{route}: the body byte for byte");
    }
    // Numbers as written, member order and white space kept; 201 with its Location.
    let written = b"{ \"resourceType\" : \"Appointment\", \"id\" : \"new-1\", \"minutesDuration\" : 1e2, \"a\" : 1.50 }";
    upstream.set_script(Arc::new(|_: &Recorded, _| Behaviour::Respond {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/fhir+json".into()),
            ("location".into(), "Appointment/new-1".into()),
        ],
        body: b"{ \"resourceType\" : \"Appointment\", \"id\" : \"new-1\", \"minutesDuration\" : 1e2, \"a\" : 1.50 }".to_vec(),
    }));
    for (route, reply) in both_routes(&server).await {
        assert_eq!(reply.status, 201, "{route}");
        assert_eq!(
            &reply.body[..],
            &written[..],
            "{route}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.header("location"), Some("Appointment/new-1"));
    }
    // No body: none relayed.
    answer_always(&upstream, raw_answer(204, "application/fhir+json", b""));
    for (route, reply) in both_routes(&server).await {
        assert_eq!((reply.status, reply.body.len()), (204, 0), "{route}");
    }
    // A success whose body is not JSON is the receiver's failure, never relayed.
    answer_always(&upstream, raw_answer(200, "text/html", b"<html>ok</html>"));
    for (route, reply) in both_routes(&server).await {
        reply.assert_outcome(500, "REC_SERVER_ERROR", "exception");
        assert!(!String::from_utf8_lossy(&reply.body).contains("html"), "{route}");
    }
}

#[tokio::test]
async fn relays_upstream_rec_operation_outcomes_byte_for_byte_with_their_status() {
    let upstream = TestUpstream::start("", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    // The NHS examples the receiver_errors tests expect to reach the sender as sent (401, 403,
    // 422, 500 no-store), and 503 and others with a provider's own spacing.
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (400, provider_outcome("REC_BAD_REQUEST", "value")),
        (401, nhs_example("unauthorized.json")),
        (403, nhs_example("forbidden.json")),
        (404, provider_outcome("REC_NOT_FOUND", "not-found")),
        (409, provider_outcome("REC_CONFLICT", "conflict")),
        (
            422,
            nhs_example("OperationOutcome/REC/422-REC_UNPROCESSABLE_ENTITY-not-supported.json"),
        ),
        (
            500,
            nhs_example("OperationOutcome/REC/500-REC_SERVER_ERROR-no-store.json"),
        ),
        (501, provider_outcome("REC_NOT_IMPLEMENTED", "not-supported")),
        (
            503,
            nhs_example("OperationOutcome/REC/503-REC_SERVICE_UNAVAILABLE-transient.json"),
        ),
    ];
    for (status, body) in cases {
        answer_always(&upstream, raw_answer(status, "application/fhir+json", &body));
        for (route, reply) in both_routes(&server).await {
            assert_eq!(reply.status, status, "{route}");
            assert!(
                reply.body == body,
                "{route}, {status}: the OperationOutcome byte for byte, got {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
}

#[tokio::test]
async fn replays_a_relayed_final_refusal_byte_for_byte_without_the_upstream() {
    let body = provider_outcome("REC_UNPROCESSABLE_ENTITY", "business-rule");
    let answer = raw_answer(422, "application/fhir+json", &body);
    let upstream = TestUpstream::start("", Arc::new(move |_: &Recorded, _| answer.clone())).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let bars = Bars::default();
    let message = minimal_message().to_string();
    let reply = server
        .client()
        .send(server.addr, bars.message(message.clone()))
        .await;
    assert_eq!((reply.status, &reply.body[..]), (422, &body[..]));
    assert_eq!(
        reply.header("x-correlation-id"),
        Some(bars.correlation_id.as_str())
    );
    // A final refusal is replayed to the retry, the same bytes, without troubling the upstream.
    let again = server.client().send(server.addr, bars.message(message)).await;
    assert_eq!((again.status, &again.body[..]), (422, &body[..]));
    assert_eq!(upstream.records().len(), 1);
}

/// What the sender gets for an upstream answer without a `REC_` OperationOutcome.
struct Mapped {
    status: u16,
    body: &'static [u8],
    expect: (u16, &'static str, &'static str),
}

#[tokio::test]
async fn maps_upstream_errors_without_a_rec_operation_outcome_by_status() {
    let upstream = TestUpstream::start("", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let plain_outcome: &[u8] =
        br#"{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "said by the provider"}]}"#;
    let cases = [
        // The NHS mock receiver's bodies for these are `{}`.
        Mapped {
            status: 400,
            body: b"said by the provider",
            expect: (400, "REC_BAD_REQUEST", "invalid"),
        },
        Mapped {
            status: 401,
            body: b"{}",
            expect: (401, "REC_UNAUTHORIZED", "forbidden"),
        },
        Mapped {
            status: 403,
            body: plain_outcome,
            expect: (403, "REC_FORBIDDEN", "forbidden"),
        },
        Mapped {
            status: 404,
            body: b"",
            expect: (404, "REC_NOT_FOUND", "not-found"),
        },
        Mapped {
            status: 405,
            body: b"",
            expect: (405, "REC_METHOD_NOT_ALLOWED", "not-supported"),
        },
        Mapped {
            status: 406,
            body: b"",
            expect: (406, "REC_NOT_ACCEPTABLE", "processing"),
        },
        Mapped {
            status: 408,
            body: b"{}",
            expect: (408, "REC_TIMEOUT", "timeout"),
        },
        Mapped {
            status: 409,
            body: b"",
            expect: (409, "REC_CONFLICT", "conflict"),
        },
        Mapped {
            status: 413,
            body: b"",
            expect: (413, "REC_BAD_REQUEST", "too-costly"),
        },
        Mapped {
            status: 415,
            body: b"",
            expect: (415, "REC_BAD_REQUEST", "not-supported"),
        },
        Mapped {
            status: 422,
            body: plain_outcome,
            expect: (422, "REC_UNPROCESSABLE_ENTITY", "processing"),
        },
        Mapped {
            status: 425,
            body: b"",
            expect: (425, "REC_TOO_EARLY", "duplicate"),
        },
        Mapped {
            status: 429,
            body: b"",
            expect: (429, "REC_TOO_MANY_REQUESTS", "throttled"),
        },
        Mapped {
            status: 501,
            body: b"",
            expect: (501, "REC_NOT_IMPLEMENTED", "not-supported"),
        },
        // A 4xx BaRS has no code for is the receiver's failure.
        Mapped {
            status: 410,
            body: b"",
            expect: (500, "REC_SERVER_ERROR", "exception"),
        },
        Mapped {
            status: 503,
            body: b"{}",
            expect: (503, "REC_SERVICE_UNAVAILABLE", "transient"),
        },
        Mapped {
            status: 500,
            body: b"{}",
            expect: (500, "REC_SERVER_ERROR", "exception"),
        },
        Mapped {
            status: 502,
            body: b"<html>said by the provider</html>",
            expect: (500, "REC_SERVER_ERROR", "exception"),
        },
        Mapped {
            status: 500,
            body: plain_outcome,
            expect: (500, "REC_SERVER_ERROR", "exception"),
        },
        // A gateway timeout is a timeout, whatever it carries (the NHS mock sends `{}`).
        Mapped {
            status: 504,
            body: b"{}",
            expect: (408, "REC_TIMEOUT", "timeout"),
        },
        Mapped {
            status: 504,
            body: b"",
            expect: (408, "REC_TIMEOUT", "timeout"),
        },
        // Redirects are not followed.
        Mapped {
            status: 302,
            body: b"",
            expect: (500, "REC_SERVER_ERROR", "exception"),
        },
    ];
    for case in cases {
        answer_always(
            &upstream,
            raw_answer(case.status, "application/fhir+json", case.body),
        );
        for (route, reply) in both_routes(&server).await {
            let (status, code, issue) = case.expect;
            let context = format!("upstream {} -> {route}", case.status);
            assert_eq!(reply.status, status, "{context}: {:?}", reply.body);
            reply.assert_outcome(status, code, issue);
            assert!(
                !String::from_utf8_lossy(&reply.body).contains("said by the provider"),
                "{context}: the receiver's own OperationOutcome, nothing of the upstream's text"
            );
        }
    }
    // 504 also carrying a REC_ OperationOutcome is still the sender's timeout.
    let outcome = provider_outcome("REC_SERVER_ERROR", "exception");
    answer_always(&upstream, raw_answer(504, "application/fhir+json", &outcome));
    for (_, reply) in both_routes(&server).await {
        reply.assert_outcome(408, "REC_TIMEOUT", "timeout");
    }
}

#[tokio::test]
async fn a_transient_upstream_answer_is_not_remembered_but_a_401_is() {
    // 503 and 504 are not the message's fault: the retry goes upstream again. A 401 the
    // provider's system gave is its verdict on the message, replayed like any final refusal.
    let upstream = TestUpstream::start("", echo()).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    for (status, forwarded) in [(503, 2), (504, 2), (401, 1)] {
        answer_always(&upstream, raw_answer(status, "application/fhir+json", b"{}"));
        let before = upstream.records().len();
        let bars = Bars::default();
        let message = minimal_message().to_string();
        let first = server
            .client()
            .send(server.addr, bars.message(message.clone()))
            .await;
        let again = server.client().send(server.addr, bars.message(message)).await;
        assert_eq!(first.status, again.status, "{status}");
        assert_eq!(upstream.records().len() - before, forwarded, "upstream {status}");
    }
}

#[tokio::test]
async fn a_retried_message_reaches_the_upstream_once() {
    let slow: Script = Arc::new(|_: &Recorded, _| {
        Behaviour::Delay(
            Duration::from_millis(1500),
            Box::new(Behaviour::json(
                200,
                &json!({"resourceType": "Bundle", "type": "message"}),
            )),
        )
    });
    let upstream = TestUpstream::start("", slow).await;
    let server = TestServer::start_configured(forward_options(&upstream.url, "")).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let client = server.client();
    let (first, early) = tokio::join!(client.send(server.addr, bars.message(body.clone())), async {
        // Retry while the first attempt is still at the upstream.
        upstream
            .wait_until(Duration::from_secs(30), "the first attempt", |r| !r.is_empty())
            .await;
        client.send(server.addr, bars.message(body.clone())).await
    });
    assert_eq!(first.status, 200, "{:?}", first.body);
    early.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
    let late = client.send(server.addr, bars.message(body)).await;
    late.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_eq!(upstream.records().len(), 1, "the provider saw the message once");
}

#[tokio::test]
async fn forwards_to_an_https_upstream_with_a_client_certificate_over_h2() {
    let pki = Arc::new(TestPki::new());
    let upstream = TestUpstream::start_tls("/bars", &pki, echo()).await;
    let certs = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = certs.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca = write("upstream-ca.pem", &pki.root.pem);
    let cert = write(
        "upstream-client.pem",
        &format!("{}{}", pki.client.pem, pki.subca.pem),
    );
    let key = write("upstream-client.key", &pki.client.key_pem);
    // The upstream certificate names localhost, not 127.0.0.1: server_name says so.
    let extra = format!("ca = [\"{ca}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\nserver_name = \"localhost\"\n");
    let server =
        TestServer::start_configured_with_pki(pki.clone(), forward_options(&upstream.url, &extra)).await;
    for _ in 0..3 {
        let bars = Bars::default();
        let reply = server
            .client()
            .send(server.addr, bars.message(minimal_message().to_string()))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let r = upstream.records().pop().unwrap();
        assert_eq!(r.path, "/bars/$process-message");
        assert_eq!(r.version, http::Version::HTTP_2, "h2 by ALPN");
        assert!(
            r.client_cert,
            "the receiver presented its upstream client certificate"
        );
        assert_headers(&r, &bars, &pki);
    }
}

#[tokio::test]
async fn refuses_an_https_upstream_it_does_not_trust() {
    let pki = Arc::new(TestPki::new());
    let upstream = TestUpstream::start_tls("", &pki, echo()).await;
    let other = TestPki::new();
    let certs = tempfile::tempdir().unwrap();
    let ca = certs.path().join("other-ca.pem");
    std::fs::write(&ca, &other.root.pem).unwrap();
    let extra = format!("ca = [\"{}\"]\nserver_name = \"localhost\"\n", ca.display());
    let server = TestServer::start_configured(forward_options(&upstream.url, &extra)).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    reply.assert_outcome(503, "REC_SERVICE_UNAVAILABLE", "transient");
    assert!(upstream.records().is_empty());
}

#[cfg(all(feature = "cli", feature = "dev-tools"))]
#[test]
fn check_loads_the_upstream_files_and_names_the_one_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = bin(dir.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.arg("check").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bars-receiver"))
        .current_dir(dir.path())
        .arg("dev-pki")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let forward = [
        ("BARS_HANDLER__KIND", "forward"),
        ("BARS_UPSTREAM__URL", "https://127.0.0.1:9/bars"),
    ];
    let (code, text) = run(&[forward[0], forward[1], ("BARS_UPSTREAM__CA", "empty.pem")]);
    assert_eq!(code, 64, "{text}");
    assert!(text.contains("upstream") && text.contains("empty.pem"), "{text}");
    let (code, text) = run(&[
        forward[0],
        forward[1],
        ("BARS_UPSTREAM__CA", "certs/dev/ca-bundle.pem"),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("forward to https://127.0.0.1:9/bars"), "{text}");
}
