//! The BaRS REST interaction rules (Core 1.5.0, failure scenarios of `GET /Slot`,
//! `GET /Appointment`, `GET /ServiceRequest`; the OpenAPI spec's required headers), through
//! real TLS clients (rustls + hyper, and `curl`) against the real server: each refusal with
//! its exact status, `REC_` code, issue type and `expression`, and never a handler call for
//! a refused request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bars_receiver::handler::{DeleteHandler, ReadHandler, SearchHandler};
use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, RequestContext, ResourceHandlers, SearchParams, SlotHandler,
    SlotQuery, SlotStatus, default_handlers,
};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::*;

const ID: &str = "91607239-b002-470a-8709-6b25bd50fdd1";
const NHS_NUMBER: &str = "https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888";
const SERVICE: &str = "Schedule.actor:HealthcareService=2000099999";
const INCLUDES: &str = "_include=Slot:schedule&_include=Schedule:actor:HealthcareService";
const RANGE: &str = "start=ge2026-03-01T09:00:00%2B00:00&start=le2026-03-02T09:00:00Z";

/// Every REST handler, counting its calls and keeping the last slot query.
#[derive(Default)]
struct Recorder {
    calls: AtomicUsize,
    slots: Mutex<Option<SlotQuery>>,
}

impl Recorder {
    fn answer(&self, body: Value) -> HandlerResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(FhirResponse::ok(body))
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn searchset() -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": 0})
}

impl SlotHandler for Recorder {
    async fn search_slots(&self, _ctx: &RequestContext, query: SlotQuery) -> HandlerResult {
        *self.slots.lock().unwrap() = Some(query);
        self.answer(searchset())
    }
}

impl SearchHandler for Recorder {
    async fn search(&self, _ctx: &RequestContext, _params: SearchParams) -> HandlerResult {
        self.answer(searchset())
    }
}

impl ReadHandler for Recorder {
    async fn read(&self, _ctx: &RequestContext, id: &str) -> HandlerResult {
        self.answer(json!({"resourceType": "Appointment", "id": id, "status": "booked"}))
    }
}

impl DeleteHandler for Recorder {
    async fn delete(&self, _ctx: &RequestContext, id: &str) -> HandlerResult {
        self.answer(json!({"resourceType": "Appointment", "id": id, "status": "cancelled"}))
    }
}

fn resources(recorder: &Arc<Recorder>) -> ResourceHandlers {
    ResourceHandlers::new()
        .read(recorder.clone())
        .search(recorder.clone(), [])
        .delete(recorder.clone())
}

async fn server_with(receiver_extra: &str) -> (TestServer, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let handlers = recorder.clone();
    let server = TestServer::start_with(
        ServerOptions {
            receiver_extra: receiver_extra.to_owned(),
            ..ServerOptions::default()
        },
        move |store| -> Handlers {
            default_handlers(store)
                .with_slots(handlers.clone())
                .with_appointments(resources(&handlers))
                .with_service_requests(resources(&handlers))
        },
    )
    .await;
    (server, recorder)
}

async fn get(server: &TestServer, path: &str) -> Reply {
    server.client().send(server.addr, Bars::default().get(path)).await
}

/// Asserts the refusal and the `expression` naming the parameter or header at fault.
#[track_caller]
fn assert_refusal(reply: &Reply, status: u16, code: &str, issue: &str, expression: &str) {
    reply.assert_outcome(status, code, issue);
    assert_eq!(
        reply.json()["issue"][0]["expression"],
        json!([expression]),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

fn slot_path(parts: &[&str]) -> String {
    format!("/Slot?{}", parts.join("&"))
}

#[tokio::test]
async fn a_complete_slot_search_reaches_the_handler_parsed() {
    let (server, recorder) = server_with("").await;
    // The `+` of the offset left unencoded, as senders often do; both statuses, comma-separated.
    let reply = get(
        &server,
        &slot_path(&[
            "status=free,busy",
            "start=ge2026-03-01T10:00:00+01:00",
            "start=le2026-03-02T09:00:00Z",
            SERVICE,
            INCLUDES,
            "_include=HealthcareService:location",
        ]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(recorder.calls(), 1);
    let query = recorder.slots.lock().unwrap().clone().unwrap();
    assert_eq!(query.status, vec![SlotStatus::Free, SlotStatus::Busy]);
    assert_eq!(query.start_from.hour(), 9, "normalised to UTC");
    assert_eq!(query.healthcare_service, "2000099999");
    assert_eq!(query.includes.len(), 3, "unsupported includes are passed on");
}

#[tokio::test]
async fn slot_search_status_must_be_present_and_free_or_busy() {
    let (server, recorder) = server_with("").await;
    for status in ["status=invalid", "status=free,proposed", "status=Free"] {
        let reply = get(&server, &slot_path(&[status, RANGE, SERVICE, INCLUDES])).await;
        assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.status");
    }
    let reply = get(&server, &slot_path(&[RANGE, SERVICE, INCLUDES])).await;
    assert_refusal(&reply, 400, "REC_BAD_REQUEST", "required", "http.status");
    assert_eq!(recorder.calls(), 0, "no refused search reaches the handler");
}

#[tokio::test]
async fn slot_search_start_must_be_a_ge_and_an_le_with_offsets() {
    let (server, recorder) = server_with("").await;
    let reply = get(&server, &slot_path(&["status=free", SERVICE, INCLUDES])).await;
    assert_refusal(&reply, 400, "REC_BAD_REQUEST", "required", "http.start");
    let no_offset = "start=ge2026-03-01T09:00:00&start=le2026-03-02T09:00:00Z";
    let reply = get(
        &server,
        &slot_path(&["status=free", no_offset, SERVICE, INCLUDES]),
    )
    .await;
    assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.start");
    let backwards = "start=ge2026-03-03T09:00:00Z&start=le2026-03-02T09:00:00Z";
    let reply = get(
        &server,
        &slot_path(&["status=free", backwards, SERVICE, INCLUDES]),
    )
    .await;
    assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.start");
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn slot_search_requires_the_healthcare_service() {
    let (server, recorder) = server_with("").await;
    let reply = get(&server, &slot_path(&["status=free", RANGE, INCLUDES])).await;
    assert_refusal(
        &reply,
        400,
        "REC_BAD_REQUEST",
        "required",
        "http.Schedule.actor:HealthcareService",
    );
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn slot_search_requires_the_minimum_includes() {
    let (server, recorder) = server_with("").await;
    for includes in [
        "",
        "_include=Slot:schedule",
        "_include=Schedule:actor:HealthcareService",
        "_include=Schedule",
        "_include=invalid",
    ] {
        let reply = get(&server, &slot_path(&["status=free", RANGE, SERVICE, includes])).await;
        assert_refusal(&reply, 400, "REC_BAD_REQUEST", "required", "http._include");
    }
    assert_eq!(recorder.calls(), 0);
}

#[tokio::test]
async fn slot_search_wider_than_max_slot_range_is_too_costly() {
    let (server, recorder) = server_with(r#"max_slot_range = "2d""#).await;
    let exactly = "start=ge2026-03-01T09:00:00Z&start=le2026-03-03T09:00:00Z";
    let reply = get(&server, &slot_path(&["status=free", exactly, SERVICE, INCLUDES])).await;
    assert_eq!(reply.status, 200, "the maximum itself is allowed");
    let wider = "start=ge2026-03-01T09:00:00Z&start=le2026-03-03T09:00:01Z";
    let reply = get(&server, &slot_path(&["status=free", wider, SERVICE, INCLUDES])).await;
    assert_refusal(
        &reply,
        422,
        "REC_UNPROCESSABLE_ENTITY",
        "too-costly",
        "http.start",
    );
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn patient_searches_need_patient_identifier_as_system_and_value() {
    let (server, recorder) = server_with("").await;
    for resource in ["Appointment", "ServiceRequest"] {
        let reply = get(&server, &format!("/{resource}?patient:identifier={NHS_NUMBER}")).await;
        assert_eq!(
            reply.status,
            200,
            "{resource}: {}",
            String::from_utf8_lossy(&reply.body)
        );

        let reply = get(&server, &format!("/{resource}")).await;
        assert_refusal(
            &reply,
            400,
            "REC_BAD_REQUEST",
            "required",
            "http.patient:identifier",
        );
        let reply = get(&server, &format!("/{resource}?patient:name=Smith")).await;
        assert_refusal(
            &reply,
            400,
            "REC_BAD_REQUEST",
            "required",
            "http.patient:identifier",
        );
        for bad in [
            "9912003888",
            "%7C9912003888",
            "https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C",
        ] {
            let reply = get(&server, &format!("/{resource}?patient:identifier={bad}")).await;
            assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.patient:identifier");
        }
    }
    assert_eq!(
        recorder.calls(),
        2,
        "only the two good searches reached the handler"
    );
}

#[tokio::test]
async fn reads_and_deletes_need_a_uuid_id() {
    let (server, recorder) = server_with("").await;
    for resource in ["Appointment", "ServiceRequest"] {
        let reply = get(&server, &format!("/{resource}/{ID}")).await;
        assert_eq!(reply.status, 200, "{resource}");
        assert_eq!(reply.json()["id"], ID);
        for bad in ["non-uuid", "1", "..", "91607239b002470a87096b25bd50fdd1", "a%20b"] {
            let reply = get(&server, &format!("/{resource}/{bad}")).await;
            assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.id");
        }
    }
    let delete = Bars::default()
        .request("DELETE", "/Appointment/non-uuid")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = server.client().send(server.addr, delete).await;
    assert_refusal(&reply, 400, "REC_BAD_REQUEST", "value", "http.id");
    assert_eq!(recorder.calls(), 2, "only the two good reads reached the handler");
}

/// A request carrying neither `NHSD-End-User-Organisation` nor `NHSD-Requesting-Software`.
fn without_requester_headers(path: &str, drop: &[&str]) -> http::Request<Full<Bytes>> {
    let mut request = Bars::default().get(path);
    for name in drop {
        request.headers_mut().remove(*name);
    }
    request
}

const ORGANISATION: &str = "nhsd-end-user-organisation";
const SOFTWARE: &str = "nhsd-requesting-software";

#[tokio::test]
async fn requester_headers_are_optional_by_default_as_the_guide_says() {
    let (server, recorder) = server_with("").await;
    let read = without_requester_headers(&format!("/Appointment/{ID}"), &[ORGANISATION, SOFTWARE]);
    let reply = server.client().send(server.addr, read).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let message = Bars::default()
        .request("POST", "/$process-message")
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(minimal_message().to_string())))
        .map(|mut request| {
            request.headers_mut().remove(ORGANISATION);
            request.headers_mut().remove(SOFTWARE);
            request
        })
        .unwrap();
    let reply = server.client().send(server.addr, message).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(recorder.calls(), 1);
    // Present, they are still checked.
    let mut bad = Bars::default().get(&format!("/Appointment/{ID}"));
    bad.headers_mut().insert(ORGANISATION, "%%%".parse().unwrap());
    let reply = server.client().send(server.addr, bad).await;
    reply.assert_outcome(400, "REC_BAD_REQUEST", "value");
}

#[tokio::test]
async fn empty_accept_and_requester_headers_count_as_absent() {
    let (server, recorder) = server_with("").await;
    let mut read = Bars::default().get(&format!("/Appointment/{ID}"));
    for name in ["accept", ORGANISATION, SOFTWARE] {
        read.headers_mut().insert(name, "".parse().unwrap());
    }
    let reply = server.client().send(server.addr, read).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(recorder.calls(), 1);

    let (strict, _) = server_with(r#"requester_headers = "required""#).await;
    let mut read = Bars::default().get(&format!("/Appointment/{ID}"));
    read.headers_mut().insert(ORGANISATION, "".parse().unwrap());
    let reply = strict.client().send(strict.addr, read).await;
    assert_refusal(
        &reply,
        400,
        "REC_BAD_REQUEST",
        "required",
        "http.NHSD-End-User-Organisation",
    );
}

#[tokio::test]
async fn requester_headers_are_required_when_configured_except_on_metadata_and_message_definitions() {
    let (server, recorder) = server_with(r#"requester_headers = "required""#).await;
    let path = format!("/Appointment/{ID}");
    for (drop, expression) in [
        (&[ORGANISATION, SOFTWARE][..], "http.NHSD-End-User-Organisation"),
        (&[ORGANISATION][..], "http.NHSD-End-User-Organisation"),
        (&[SOFTWARE][..], "http.NHSD-Requesting-Software"),
    ] {
        let reply = server
            .client()
            .send(server.addr, without_requester_headers(&path, drop))
            .await;
        assert_refusal(&reply, 400, "REC_BAD_REQUEST", "required", expression);
    }
    assert_eq!(recorder.calls(), 0);
    let reply = get(&server, &path).await;
    assert_eq!(reply.status, 200, "both present");

    let both = [ORGANISATION, SOFTWARE];
    let metadata = server
        .client()
        .send(server.addr, without_requester_headers("/metadata", &both))
        .await;
    assert_eq!(metadata.status, 200);
    let definitions = server
        .client()
        .send(
            server.addr,
            without_requester_headers(
                "/MessageDefinition?context=https://fhir.nhs.uk/Id/dos-service-id|2000099999",
                &both,
            ),
        )
        .await;
    // Past the header check: the receiver's own search, which finds no definition here.
    definitions.assert_outcome(404, "REC_NOT_FOUND", "not-found");
    assert_eq!(recorder.calls(), 1);
}

#[tokio::test]
async fn curl_sees_the_rules_with_their_expressions() {
    let (server, _recorder) = server_with(r#"max_slot_range = "1d""#).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &cert,
        format!("{}{}", server.pki.client.pem, server.pki.subca.pem),
    )
    .unwrap();
    std::fs::write(&key, &server.pki.client.key_pem).unwrap();
    std::fs::write(&ca, &server.pki.root.pem).unwrap();
    let bars = Bars::default();
    let base = format!("https://localhost:{}", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let target = format!(
        "NHSD-Target-Identifier: {}",
        bars_receiver::fhir::encode_header_json(&bars.target)
    );
    let curl = async |path: String| {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(["--cacert", ca.to_str().unwrap(), "--cert", cert.to_str().unwrap()])
            .args(["--key", key.to_str().unwrap(), "--resolve", &resolve])
            .args(["-H", &format!("X-Request-Id: {}", uuid::Uuid::new_v4())])
            .args(["-H", &format!("X-Correlation-Id: {}", bars.correlation_id)])
            .args(["-H", &target, &format!("{base}{path}")])
            .output()
            .await
            .expect("curl must be installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        let body: Value = serde_json::from_str(body).expect("JSON body");
        (status.to_owned(), body)
    };
    let wide = "start=ge2026-03-01T09:00:00Z&start=le2026-03-08T09:00:00Z";
    let (status, body) = curl(slot_path(&["status=free", wide, SERVICE, INCLUDES])).await;
    assert_eq!(status, "422");
    let issue = &body["issue"][0];
    assert_eq!(issue["code"], "too-costly");
    assert_eq!(issue["details"]["coding"][0]["code"], "REC_UNPROCESSABLE_ENTITY");
    assert_eq!(issue["expression"], json!(["http.start"]));

    let (status, body) = curl("/Appointment/non-uuid".into()).await;
    assert_eq!(status, "400");
    let issue = &body["issue"][0];
    assert_eq!(issue["code"], "value");
    assert_eq!(issue["details"]["coding"][0]["code"], "REC_BAD_REQUEST");
    assert_eq!(issue["expression"], json!(["http.id"]));
}
