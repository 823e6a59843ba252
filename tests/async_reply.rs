//! `examples/async_reply.rs` end to end: a validation request arrives over mutual TLS, is
//! accepted at once, and the validation response goes back through the (mock) BaRS API to
//! the sender's source.endpoint, in the same conversation, answering the original Bundle.id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
#[path = "../examples/async_reply.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod example;

use std::time::Duration;

use bars_receiver::sender::BarsClient;
use bars_receiver::{MessageBundle, MessageEvent, config::SenderSettings};
use common::apim::{MockApim, keygen, sender_toml};
use common::*;
use serde_json::Value;

async fn wait_for_replies(mock: &MockApim, count: usize) -> Vec<common::apim::Recorded> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = mock.state.api_requests();
        if seen.len() >= count {
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reply within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_validation_request_is_accepted_then_answered_in_the_same_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "Example-INT-1");
    let mock = MockApim::start("reply-app", "Example-INT-1", &key.public_key_pem).await;
    let settings = SenderSettings::from_toml(&sender_toml(&mock, &key, ""), "t", Vec::new()).unwrap();
    let client = BarsClient::new(&settings).unwrap();
    let server = TestServer::start_with(ServerOptions::default(), |_| example::handlers(client)).await;

    let request = minimal_message();
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(request.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["id"], request["id"], "accepted at once, echoed");

    let sent = wait_for_replies(&mock, 1).await;
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.method, "POST");
    assert!(r.path.ends_with("/$process-message"), "{}", r.path);
    assert_eq!(
        r.header("x-correlation-id"),
        Some(bars.correlation_id.as_str()),
        "same conversation"
    );
    let reply_request_id = r.header("x-request-id").unwrap();
    assert_ne!(reply_request_id, bars.request_id, "a new message");
    assert!(uuid::Uuid::try_parse(reply_request_id).is_ok());
    // Addressed to the original MessageHeader.source.endpoint.
    let target = r.json_header("nhsd-target-identifier");
    assert_eq!(target["system"], "https://fhir.nhs.uk/Id/dos-service-id");
    assert_eq!(target["value"], "222222222");
    assert!(
        r.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer token-"))
    );

    let body: Value = r.json();
    let response = MessageBundle::parse(body.clone()).expect("a valid BaRS message");
    assert_eq!(response.event, MessageEvent::ServiceRequestResponse);
    let answered = response.response.expect("MessageHeader.response");
    assert_eq!(answered.identifier, request["id"].as_str().unwrap());
    assert_eq!(answered.code.as_deref(), Some("ok"));
    assert_eq!(response.focus_type, "Encounter");
    assert_eq!(
        response.destination_endpoints,
        ["https://fhir.nhs.uk/Id/dos-service-id|222222222"]
    );
    assert_eq!(
        response.source_endpoint.as_deref(),
        Some("https://fhir.nhs.uk/Id/dos-service-id|111111111"),
        "replies from the service that was addressed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_without_a_source_endpoint_is_refused_and_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "Example-INT-1");
    let mock = MockApim::start("reply-app", "Example-INT-1", &key.public_key_pem).await;
    let settings = SenderSettings::from_toml(&sender_toml(&mock, &key, ""), "t", Vec::new()).unwrap();
    let client = BarsClient::new(&settings).unwrap();
    let server = TestServer::start_with(ServerOptions::default(), |_| example::handlers(client)).await;

    let mut request = minimal_message();
    request["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("source");
    let reply = server
        .client()
        .send(server.addr, Bars::default().message(request.to_string()))
        .await;
    reply.assert_outcome(400, "REC_BAD_REQUEST", "required");
    assert!(
        reply.json()["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("source.endpoint")
    );
    // A message that was accepted is answered; the refused one was not queued, so the first
    // (and only) reply answers the accepted one.
    let later = minimal_message();
    let accepted = server
        .client()
        .send(server.addr, Bars::default().message(later.to_string()))
        .await;
    assert_eq!(accepted.status, 200);
    let sent = wait_for_replies(&mock, 1).await;
    let answered = MessageBundle::parse(sent[0].json()).unwrap().response.unwrap();
    assert_eq!(answered.identifier, later["id"].as_str().unwrap());
    server.shutdown().await;
}
