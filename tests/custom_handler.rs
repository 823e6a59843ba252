//! The `examples/custom_handler.rs` handlers, served by the real server and called through
//! real TLS: every registered route works, the CapabilityStatement lists exactly them, and
//! unregistered ones answer 501.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
#[path = "../examples/custom_handler.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod example;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::json;

fn booking() -> serde_json::Value {
    crate::common::minimal_booking()
}

#[tokio::test]
async fn serves_every_registered_interaction_and_advertises_only_those() {
    let server = TestServer::start_with(ServerOptions::default(), |_| example::handlers()).await;
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
    let codes: Vec<&str> = appointment["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["read", "search-type", "create", "delete"]);

    // A booking message.
    let reply = client
        .send(server.addr, Bars::default().message(booking().to_string()))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // A referral is refused by the handler with its own REC_ error.
    let reply = client
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    reply.assert_outcome(422, "REC_UNPROCESSABLE_ENTITY", "not-supported");

    // Search by patient finds the booked appointment; read it; cancel it.
    let search = client
        .send(
            server.addr,
            Bars::default().get(
                "/Appointment?patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888",
            ),
        )
        .await;
    assert_eq!(search.status, 200);
    let id = search.json()["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = client
        .send(server.addr, Bars::default().get(&format!("/Appointment/{id}")))
        .await;
    assert_eq!(read.json()["status"], "booked");
    let delete = Bars::default()
        .request("DELETE", &format!("/Appointment/{id}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        client.send(server.addr, delete).await.json()["status"],
        "cancelled"
    );
    let missing = client
        .send(
            server.addr,
            Bars::default().get("/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await;
    missing.assert_outcome(404, "REC_NOT_FOUND", "not-found");

    // Create answers 201 with Location.
    let create = Bars::default()
        .request("POST", "/Appointment")
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(
            json!({"resourceType": "Appointment", "status": "proposed"}).to_string(),
        )))
        .unwrap();
    let created = client.send(server.addr, create).await;
    assert_eq!(created.status, 201);
    assert!(created.header("location").unwrap().starts_with("Appointment/"));

    // Slots; a range wider than receiver.max_slot_range (31 days by default) is refused.
    let slots = client
        .send(
            server.addr,
            Bars::default().get(concat!(
                "/Slot?status=free&start=ge2026-03-01T09:00:00%2B00:00&start=le2026-03-02T09:00:00Z",
                "&Schedule.actor:HealthcareService=2000099999",
                "&_include=Slot:schedule&_include=Schedule:actor:HealthcareService"
            )),
        )
        .await;
    assert_eq!(slots.status, 200, "{:?}", slots.body);
    assert_eq!(slots.json()["total"], 2);
    let wide = client
        .send(
            server.addr,
            Bars::default().get(concat!(
                "/Slot?status=free&start=ge2026-03-01T09:00:00Z&start=le2026-06-01T09:00:00Z",
                "&Schedule.actor:HealthcareService=2000099999",
                "&_include=Slot:schedule&_include=Schedule:actor:HealthcareService"
            )),
        )
        .await;
    wide.assert_outcome(422, "REC_UNPROCESSABLE_ENTITY", "too-costly");
    let incomplete = client
        .send(server.addr, Bars::default().get("/Slot?status=free"))
        .await;
    incomplete.assert_outcome(400, "REC_BAD_REQUEST", "required");

    // Not registered: update, patch, and the whole ServiceRequest type.
    let put = Bars::default()
        .request("PUT", &format!("/Appointment/{id}"))
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(
            json!({"resourceType": "Appointment"}).to_string(),
        )))
        .unwrap();
    client
        .send(server.addr, put)
        .await
        .assert_outcome(501, "REC_NOT_IMPLEMENTED", "not-supported");
    client
        .send(
            server.addr,
            Bars::default().get("/ServiceRequest/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await
        .assert_outcome(501, "REC_NOT_IMPLEMENTED", "not-supported");
    // Answered by the receiver from its configuration (none here), never by a handler.
    client
        .send(server.addr, Bars::default().get("/MessageDefinition?context=x"))
        .await
        .assert_outcome(404, "REC_NOT_FOUND", "not-found");
}

#[tokio::test]
async fn the_handler_sees_the_verified_peer_and_decoded_headers() {
    use bars_receiver::{
        FhirResponse, HandlerResult, Handlers, MessageBundle, MessagingHandler, RequestContext,
    };
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<RequestContext>>);
    impl MessagingHandler for Recorder {
        async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
            self.0.lock().unwrap().push(ctx.clone());
            Ok(FhirResponse::ok(message.into_raw()))
        }
    }
    struct Shared(Arc<Recorder>);
    impl MessagingHandler for Shared {
        async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
            self.0.process_message(ctx, message).await
        }
    }

    let recorder = Arc::new(Recorder::default());
    let r = recorder.clone();
    let server = TestServer::start_with(ServerOptions::default(), move |_| {
        Handlers::new(Arc::new(Shared(r)))
    })
    .await;
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    assert_eq!(reply.status, 200);
    let seen = recorder.0.lock().unwrap();
    let ctx = &seen[0];
    assert_eq!(ctx.request_id.to_string(), bars.request_id);
    assert_eq!(ctx.correlation_id.to_string(), bars.correlation_id);
    assert_eq!(ctx.target.as_ref().unwrap().value, "111111111");
    assert_eq!(
        ctx.end_user_organisation.as_ref().unwrap().ods_code.as_deref(),
        Some("A1001")
    );
    assert_eq!(
        ctx.requesting_software.as_ref().unwrap().name.as_deref(),
        Some("tests")
    );
    assert_eq!(ctx.peer.common_name.as_deref(), Some("int.api.service.nhs.uk"));
    assert!(ctx.peer.dns_names.is_empty());
    assert_eq!(ctx.peer.sha256_fingerprint.len(), 64);
    assert_eq!(ctx.peer.source_ip.to_string(), "127.0.0.1");
    assert!(ctx.peer.not_after > time::OffsetDateTime::now_utc());
}

#[tokio::test]
async fn an_x_request_id_reused_for_another_interaction_is_a_conflict_not_a_replay() {
    let server = TestServer::start_with(ServerOptions::default(), |_| example::handlers()).await;
    let client = server.client();
    let bars = Bars::default();
    let body = json!({"resourceType": "Appointment", "status": "proposed"}).to_string();
    // As a message the body is refused, and the refusal recorded for retries...
    let first = client.send(server.addr, bars.message(body.clone())).await;
    assert_eq!(first.status, 400, "{:?}", first.body);
    // ...but the same id and bytes sent to create an Appointment are another request: a
    // reused id, not a retry to be answered with the message's refusal.
    let create = bars
        .request("POST", "/Appointment")
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let reused = client.send(server.addr, create).await;
    reused.assert_outcome(409, "REC_CONFLICT", "conflict");
}
