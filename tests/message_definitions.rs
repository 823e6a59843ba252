//! The MessageDefinitions a receiver serves and the CapabilityStatement that lists them:
//! `GET /MessageDefinition?context=...` answered by the receiver itself from
//! `[[messaging.definitions]]` (searchset, 400 `required` naming `context`, 404), through the
//! real binary and curl as well as the tests' TLS client; `messaging.supportedMessage`,
//! `rest[mode=client]` with a `[sender]`, Slot `searchInclude`, and in forward mode only the
//! interactions `upstream.interactions` names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::upstream::{TestUpstream, echo};
use common::{Bars, ServerOptions, TestServer, bin, fixtures};
use serde_json::{Value, json};
use uuid::Uuid;

const REFERRAL: &str = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral";
const VALIDATION: &str =
    "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation";
const DEV_SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|2000072489";

/// `[[messaging.definitions]]` entries: url, service, categories.
fn definitions(entries: &[(&str, &str, &[&str])]) -> String {
    entries
        .iter()
        .map(|(url, service, categories)| {
            let categories: Vec<String> = categories.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "[[messaging.definitions]]\nurl = \"{url}\"\nservices = [\"{service}\"]\ncategories = [{}]\n",
                categories.join(", ")
            )
        })
        .collect()
}

fn with_toml(extra: String) -> ServerOptions {
    ServerOptions {
        extra_toml: extra,
        ..ServerOptions::default()
    }
}

fn entry_urls(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {bundle}"))
        .iter()
        .map(|e| e["resource"]["url"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a one-issue OperationOutcome whose `expression` is exactly `expression`.
#[track_caller]
fn assert_expression(reply: &common::Reply, expression: &[&str]) {
    assert_eq!(
        reply.json()["issue"][0]["expression"],
        json!(expression),
        "{}",
        reply.json()
    );
}

// ---------------------------------------------------------------------------------------------
// `serve --dev`, through curl
// ---------------------------------------------------------------------------------------------

/// A `serve --dev` process, killed when dropped.
struct Dev {
    child: Child,
    port: u16,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve --dev` in `dir` on an ephemeral port and waits until it listens.
fn serve_dev(dir: &Path, base_url: &str) -> Dev {
    let mut child = bin(dir)
        .args(["serve", "--dev"])
        .env("BARS_LISTEN__ADDRESS", "127.0.0.1:0")
        .env("BARS_ADMIN__ENABLED", "false")
        .env("BARS_LOG__FORMAT", "json")
        .env("BARS_RECEIVER__BASE_URL", base_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve --dev");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(address) = v["address"].as_str().filter(|a| !a.is_empty()) {
                    let _ = tx.send(address.parse::<std::net::SocketAddr>().unwrap().port());
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("serve --dev logs the address it listens on");
    Dev { child, port }
}

/// curl with the development client certificate and the BaRS headers for `DEV_SERVICE`;
/// the status and the body.
fn curl(dir: &Path, port: u16, method: &str, path: &str) -> (u16, Value) {
    let target = bars_receiver::fhir::encode_header_json(
        &json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000072489"}),
    );
    let out = Command::new("curl")
        .current_dir(dir)
        .args([
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            "certs/dev/ca-bundle.pem",
            "--cert",
            "certs/dev/client.pem",
            "--key",
            "certs/dev/client.key",
            "-X",
            method,
            "-H",
            &format!("X-Request-Id: {}", Uuid::new_v4()),
            "-H",
            &format!("X-Correlation-Id: {}", Uuid::new_v4()),
            "-H",
            &format!("NHSD-Target-Identifier: {target}"),
            "-w",
            "\n%{http_code}",
            &format!("https://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl printed {text:?}"));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed {text:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, body)
}

#[test]
fn serve_dev_answers_message_definition_searches_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let base = "https://bars-dev.example.nhs.uk/FHIR/R4";
    let dev = serve_dev(dir.path(), base);
    let d = dir.path();
    let service = "context=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fdos-service-id%7C2000072489";

    // Every definition of the development set, for its service.
    let (status, all) = curl(d, dev.port, "GET", &format!("/MessageDefinition?{service}"));
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["resourceType"], "Bundle");
    assert_eq!(all["type"], "searchset");
    assert_eq!(all["total"], 9, "{all}");
    assert_eq!(entry_urls(&all).len(), 9);
    assert_eq!(
        all["link"][0]["url"],
        format!("{base}/MessageDefinition?{service}"),
        "the self link names the registered base URL"
    );
    let validation = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["url"] == VALIDATION)
        .expect("the validation request definition");
    assert_eq!(validation["version"], "1.1.0");
    assert_eq!(validation["status"], "active");
    assert_eq!(validation["eventCoding"]["code"], "servicerequest-request");
    assert_eq!(
        validation["allowedResponse"][1]["message"],
        "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-full"
    );

    // Service and use-case category, both required.
    let (status, a4t1) = curl(
        d,
        dev.port,
        "GET",
        &format!(
            "/MessageDefinition?{service}&context=https://fhir.nhs.uk/CodeSystem/usecases-categories-bars%7Ca4t1"
        ),
    );
    assert_eq!(status, 200, "{a4t1}");
    let mut urls = entry_urls(&a4t1);
    urls.sort();
    assert_eq!(
        urls,
        [
            VALIDATION.to_owned(),
            "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-full"
                .to_owned(),
            "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-interim"
                .to_owned(),
        ]
    );

    // The NHS API tests' request: a bare value, the specification's example service.
    let (status, nhs) = curl(d, dev.port, "GET", "/MessageDefinition?context=2000099999");
    assert_eq!(status, 200, "{nhs}");
    assert_eq!(nhs["total"], 9, "{nhs}");

    let (status, missing) = curl(d, dev.port, "GET", "/MessageDefinition");
    assert_eq!(status, 400, "{missing}");
    assert_eq!(missing["issue"][0]["code"], "required");
    assert_eq!(
        missing["issue"][0]["details"]["coding"][0]["code"],
        "REC_BAD_REQUEST"
    );
    assert_eq!(missing["issue"][0]["expression"], json!(["context"]));

    let (status, empty) = curl(d, dev.port, "GET", "/MessageDefinition?context=");
    assert_eq!(status, 400, "{empty}");
    assert_eq!(empty["issue"][0]["code"], "value");
    assert_eq!(empty["issue"][0]["expression"], json!(["context"]));

    let (status, none) = curl(
        d,
        dev.port,
        "GET",
        "/MessageDefinition?context=https://fhir.nhs.uk/Id/dos-service-id%7C1",
    );
    assert_eq!(status, 404, "{none}");
    assert_eq!(none["issue"][0]["code"], "not-found");
    assert_eq!(none["issue"][0]["details"]["coding"][0]["code"], "REC_NOT_FOUND");

    // The CapabilityStatement lists them, and the development [sender] as the client mode.
    let (status, meta) = curl(d, dev.port, "GET", "/metadata");
    assert_eq!(status, 200, "{meta}");
    let supported = meta["messaging"][0]["supportedMessage"].as_array().unwrap();
    assert_eq!(supported.len(), 9, "{meta}");
    assert!(supported.iter().all(|m| m["mode"] == "receiver"));
    assert!(supported.iter().any(|m| m["definition"] == VALIDATION));
    assert_eq!(meta["messaging"][0]["endpoint"][0]["address"], base);
    assert_eq!(meta["rest"][1]["mode"], "client", "serve --dev has a [sender]");
    assert_eq!(meta["rest"][1]["operation"][0]["name"], "process-message");
}

// ---------------------------------------------------------------------------------------------
// The NHS repository's MessageDefinition tests, against the receiver directly
// ---------------------------------------------------------------------------------------------

/// The NHS test (`tests/test_message_definition.py`) sends a bare `context=2000099999` with a
/// target of its own, and expects 200 with a body shaped like the spec's example.
#[tokio::test]
async fn answers_the_nhs_message_definition_request_in_the_shape_of_the_spec_example() {
    let server = TestServer::start(with_toml(definitions(&[(
        REFERRAL,
        "https://fhir.nhs.uk/Id/dos-service-id|2000099999",
        &["a6t1"],
    )])))
    .await;
    let nhs = Bars {
        target: json!({"value": "NHS0001", "system": "https://fhir.nhs.uk/Id/dos-service-id"}),
        ..Bars::default()
    };
    let reply = server
        .client()
        .send(server.addr, nhs.get("/MessageDefinition?context=2000099999"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert_eq!(reply.header("x-request-id"), Some(nhs.request_id.as_str()));
    let ours = reply.json();

    let path = fixtures()
        .join("examples1.4.0/message_definition/MessageDefinition_ServiceRequest-request_CaseTransfer.json");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Every member of the example's Bundle (the self link needs receiver.base_url)...
    for key in example.as_object().unwrap().keys().filter(|k| *k != "link") {
        assert!(ours.get(key).is_some(), "the searchset has no {key}: {ours}");
    }
    assert_eq!(ours["type"], example["type"]);
    assert_eq!(ours["total"], 1);
    // ... and of its MessageDefinition, but the example's meta.profile, which names a profile
    // the implementation guide does not have.
    let theirs = &example["entry"][0]["resource"];
    let resource = &ours["entry"][0]["resource"];
    for key in theirs.as_object().unwrap().keys().filter(|k| *k != "meta") {
        assert!(
            resource.get(key).is_some(),
            "the MessageDefinition has no {key}: {resource}"
        );
    }
    assert_eq!(resource["resourceType"], "MessageDefinition");
    assert_eq!(resource["url"], REFERRAL);
    assert_eq!(resource["eventCoding"], theirs["eventCoding"]);
    for focus in resource["focus"].as_array().unwrap() {
        assert!(
            focus["code"].is_string() && focus["profile"].is_string(),
            "{focus}"
        );
        assert!(focus["min"].is_u64() && focus["max"].is_string(), "{focus}");
    }
    let codings: Vec<&Value> = resource["useContext"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["valueCodeableConcept"]["coding"][0])
        .collect();
    assert!(
        codings.contains(&&json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "code": "2000099999"}))
    );
    assert!(codings.contains(&&json!({
        "system": "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars",
        "code": "a6t1",
        "display": "CAD to CAD Out of Area Referral"
    })));

    // The NHS test's second case: POST is 405 with Allow.
    let post = server
        .client()
        .send(
            server.addr,
            nhs.request("POST", "/MessageDefinition")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    post.assert_outcome(405, "REC_METHOD_NOT_ALLOWED", "not-supported");
    assert_eq!(post.header("allow"), Some("GET"));
}

#[tokio::test]
async fn refuses_a_search_without_context_and_finds_nothing_for_another_service() {
    let server = TestServer::start(with_toml(definitions(&[(VALIDATION, DEV_SERVICE, &["a4t1"])]))).await;
    let client = server.client();

    let missing = client
        .send(
            server.addr,
            Bars::default().get("/MessageDefinition?_format=json"),
        )
        .await;
    missing.assert_outcome(400, "REC_BAD_REQUEST", "required");
    assert_expression(&missing, &["context"]);

    let malformed = client
        .send(server.addr, Bars::default().get("/MessageDefinition?context=%7C"))
        .await;
    malformed.assert_outcome(400, "REC_BAD_REQUEST", "value");
    assert_expression(&malformed, &["context"]);

    let other = client
        .send(
            server.addr,
            Bars::default().get(
                "/MessageDefinition?context=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fdos-service-id%7C111111111",
            ),
        )
        .await;
    other.assert_outcome(404, "REC_NOT_FOUND", "not-found");

    // The category alone, and the service with a category it does not offer.
    let by_category = client
        .send(
            server.addr,
            Bars::default().get(
                "/MessageDefinition?context=https://fhir.nhs.uk/CodeSystem/usecases-categories-bars%7Ca4t1",
            ),
        )
        .await;
    assert_eq!(by_category.status, 200, "{:?}", by_category.body);
    assert_eq!(entry_urls(&by_category.json()), [VALIDATION]);
    let wrong_category = client
        .send(
            server.addr,
            Bars::default().get("/MessageDefinition?context=2000072489&context=a6t1"),
        )
        .await;
    wrong_category.assert_outcome(404, "REC_NOT_FOUND", "not-found");

    // Ids stay required here as everywhere but /metadata.
    let no_ids = client
        .send(
            server.addr,
            http::Request::get("/MessageDefinition?context=2000072489")
                .header("host", "localhost")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(no_ids.status, 400, "{:?}", no_ids.body);
}

#[tokio::test]
async fn without_definitions_the_search_finds_nothing_and_metadata_lists_no_messaging() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = server.client();
    client
        .send(
            server.addr,
            Bars::default().get("/MessageDefinition?context=111111111"),
        )
        .await
        .assert_outcome(404, "REC_NOT_FOUND", "not-found");
    let meta = client
        .send(server.addr, Bars::default().get("/metadata"))
        .await
        .json();
    assert!(meta.get("messaging").is_none(), "{meta}");
    assert_eq!(
        meta["rest"].as_array().unwrap().len(),
        1,
        "no [sender], no client mode: {meta}"
    );
    assert_eq!(meta["rest"][0]["mode"], "server");
    assert!(
        meta["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "MessageDefinition"),
        "served by the receiver itself: {meta}"
    );
}

#[tokio::test]
async fn metadata_lists_the_supported_messages_and_the_client_mode_of_a_sender() {
    let extra = format!(
        "{}[sender]\nmode = \"sandbox\"\nods_code = \"X26\"\n",
        definitions(&[
            (
                VALIDATION,
                "https://fhir.nhs.uk/Id/dos-service-id|111111111",
                &["a4t1"]
            ),
            (
                REFERRAL,
                "https://fhir.nhs.uk/Id/dos-service-id|111111111",
                &["a6t1"]
            ),
            (
                VALIDATION,
                "https://fhir.nhs.uk/Id/dos-service-id|111111111",
                &["a4t4"]
            ),
        ])
    );
    let server = TestServer::start(with_toml(extra)).await;
    let meta = server
        .client()
        .send(server.addr, Bars::default().get("/metadata"))
        .await
        .json();
    assert_eq!(
        meta["messaging"][0]["supportedMessage"],
        json!([
            {"mode": "receiver", "definition": VALIDATION},
            {"mode": "receiver", "definition": REFERRAL}
        ]),
        "each supported definition once, mode receiver: {meta}"
    );
    let client_mode = &meta["rest"][1];
    assert_eq!(client_mode["mode"], "client", "{meta}");
    assert_eq!(client_mode["operation"][0]["name"], "process-message");
    assert!(
        client_mode["security"].get("service").is_none(),
        "the sandbox needs no token"
    );

    // Both validation entries are served, each with its own id.
    let search = server
        .client()
        .send(
            server.addr,
            Bars::default().get("/MessageDefinition?context=111111111"),
        )
        .await
        .json();
    assert_eq!(search["total"], 3, "{search}");
    let ids: Vec<&str> = search["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert!(ids[0] != ids[2] && ids[0] != ids[1], "{ids:?}");
}

// ---------------------------------------------------------------------------------------------
// Forward mode: only what the upstream implements
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn forward_mode_lists_and_forwards_only_the_interactions_implemented_upstream() {
    let upstream = TestUpstream::start("/provider", echo()).await;
    let extra = format!(
        "[handler]\nkind = \"forward\"\n[upstream]\nurl = \"{}\"\ninteractions = [\"slot-search\", \"appointment-read\"]\n{}",
        upstream.url,
        definitions(&[(
            VALIDATION,
            "https://fhir.nhs.uk/Id/dos-service-id|111111111",
            &["a4t1"]
        )])
    );
    let server = TestServer::start_configured(with_toml(extra)).await;
    let client = server.client();

    let meta = client
        .send(server.addr, Bars::default().get("/metadata"))
        .await
        .json();
    let resources = meta["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> = resources.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["CapabilityStatement", "MessageDefinition", "Slot", "Appointment"]
    );
    let appointment = resources.iter().find(|r| r["type"] == "Appointment").unwrap();
    assert_eq!(appointment["interaction"], json!([{"code": "read"}]));
    let slot = resources.iter().find(|r| r["type"] == "Slot").unwrap();
    let includes: Vec<&str> = slot["searchInclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    for include in ["Slot:schedule", "Schedule:actor:HealthcareService"] {
        assert!(includes.contains(&include), "{include} not in {includes:?}");
    }
    assert_eq!(
        meta["messaging"][0]["supportedMessage"][0]["definition"],
        VALIDATION
    );

    // Not implemented upstream: 501, and the upstream never asked.
    for path in [
        "/Appointment?patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888",
        "/ServiceRequest/abc-1",
    ] {
        client
            .send(server.addr, Bars::default().get(path))
            .await
            .assert_outcome(501, "REC_NOT_IMPLEMENTED", "not-supported");
    }
    assert!(upstream.records().is_empty(), "{:?}", upstream.records());

    // MessageDefinition is answered by the receiver, not forwarded.
    let definitions = client
        .send(
            server.addr,
            Bars::default().get("/MessageDefinition?context=111111111"),
        )
        .await;
    assert_eq!(definitions.status, 200, "{:?}", definitions.body);
    assert_eq!(entry_urls(&definitions.json()), [VALIDATION]);
    assert!(upstream.records().is_empty());

    // Implemented upstream: forwarded.
    let read = client
        .send(
            server.addr,
            Bars::default().get("/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    let slots = client
        .send(
            server.addr,
            Bars::default().get(
                "/Slot?status=free&start=ge2026-03-01T09:00:00%2B00:00&start=le2026-03-02T09:00:00Z&Schedule.actor:HealthcareService=2000099999&_include=Slot:schedule&_include=Schedule:actor:HealthcareService",
            ),
        )
        .await;
    assert_eq!(slots.status, 200, "{:?}", slots.body);
    let paths: Vec<String> = upstream.records().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/provider/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049",
            "/provider/Slot"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration refused, naming the key
// ---------------------------------------------------------------------------------------------

#[test]
fn check_refuses_unknown_categories_and_interactions_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "environment = \"dev\"\n\
             [handler]\nkind = \"forward\"\n\
             [upstream]\nurl = \"http://127.0.0.1:1\"\ninteractions = [\"slot-search\", \"message-definition-search\"]\n\
             [[messaging.definitions]]\nurl = \"{VALIDATION}\"\nservices = [\"{DEV_SERVICE}\"]\ncategories = [\"A4T1\"]\n\
             [[messaging.definitions]]\nurl = \"https://fhir.nhs.uk/MessageDefinition/bars-message-unknown\"\nservices = [\"{DEV_SERVICE}\"]\ncategories = [\"a4t1\"]\n"
        ),
    )
    .unwrap();
    for command in ["check", "serve"] {
        let out = bin(dir.path())
            .args([command, "--config", "bad.toml"])
            .output()
            .unwrap();
        let text = crate::common::output_text(&out);
        assert_eq!(out.status.code(), Some(64), "{command}: {text}");
        for needle in [
            "messaging.definitions[0].categories[0]: 'A4T1' is not a code of https://fhir.nhs.uk/CodeSystem/usecases-categories-bars",
            "messaging.definitions[1].url: 'https://fhir.nhs.uk/MessageDefinition/bars-message-unknown' is not a BaRS message definition",
            "upstream.interactions[1]: 'message-definition-search' is answered by the receiver itself",
        ] {
            assert!(text.contains(needle), "{command}: no {needle:?} in {text}");
        }
    }
}

#[tokio::test]
async fn a_message_claiming_a_definition_not_configured_is_refused_422_not_supported() {
    let only_validation = definitions(&[(VALIDATION, DEV_SERVICE, &["a4t1"])]);
    let server = TestServer::start(with_toml(only_validation)).await;
    let client = server.client();
    // minimal_message is a conforming referral: a BaRS definition, but not one this
    // receiver says it supports.
    let refused = client
        .send(
            server.addr,
            Bars::default().message(common::minimal_message().to_string()),
        )
        .await;
    refused.assert_outcome(422, "REC_UNPROCESSABLE_ENTITY", "not-supported");
    assert_expression(&refused, &["Bundle.entry[0].resource.definition"]);
    assert_eq!(server.inbox_count(), 0);

    // Configured, the same message is accepted.
    let both = definitions(&[
        (VALIDATION, DEV_SERVICE, &["a4t1"]),
        (REFERRAL, DEV_SERVICE, &["a6t1"]),
    ]);
    let server = TestServer::start(with_toml(both)).await;
    let accepted = server
        .client()
        .send(
            server.addr,
            Bars::default().message(common::minimal_message().to_string()),
        )
        .await;
    assert_eq!(
        accepted.status,
        200,
        "{}",
        String::from_utf8_lossy(&accepted.body)
    );
}
