//! The BaRS API client against the mock BaRS API: every required header, the REST paths,
//! and the retry rules (same X-Request-Id; never a 4xx), over plain HTTP and over TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use bars_receiver::config::SenderSettings;
use bars_receiver::sender::{BarsClient, BarsRequest, CodeFamily, SendError, TokenError};
use common::apim::{ApiReply, MockApim, keygen, outcome, sender_toml};
use common::senders::*;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn sends_every_header_the_spec_requires() {
    let s = setup().await;
    let client = client(&s, "");
    let correlation_id = Uuid::new_v4();
    let bundle = message();
    let response = bounded(
        client.send(
            BarsRequest::process_message(target(), bundle.clone())
                .with_correlation_id(correlation_id)
                .with_use_context("a4t2|validation|servicerequest-response|new"),
        ),
    )
    .await
    .expect("sent");
    assert_eq!(response.status, 200);
    assert_eq!(response.correlation_id, correlation_id);
    assert_eq!(response.body, bundle);
    assert_eq!(response.attempts, 1);

    let requests = s.mock.state.api_requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/booking-and-referral/FHIR/R4/$process-message");
    assert_eq!(
        r.header("x-request-id"),
        Some(response.request_id.to_string().as_str())
    );
    assert_eq!(
        r.header("x-correlation-id"),
        Some(correlation_id.to_string().as_str())
    );
    assert_eq!(
        r.json_header("nhsd-target-identifier"),
        json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000072489"})
    );
    let org = r.json_header("nhsd-end-user-organisation");
    assert_eq!(org["resourceType"], "Organization");
    assert_eq!(
        org["identifier"][0]["system"],
        "https://fhir.nhs.uk/Id/ods-organization-code"
    );
    assert_eq!(org["identifier"][0]["value"], "X26");
    assert_eq!(org["name"], "Test provider");
    let software = r.json_header("nhsd-requesting-software");
    assert_eq!(software["resourceType"], "Device");
    assert_eq!(software["deviceName"]["name"], "tests");
    assert_eq!(software["version"]["value"], "9.9");
    assert_eq!(r.header("accept"), Some("application/fhir+json; version=1.4.0"));
    assert_eq!(r.header("content-type"), Some("application/fhir+json"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.mock.state.issued()[0]).as_str())
    );
    assert_eq!(
        r.header("use-context"),
        Some("a4t2|validation|servicerequest-response|new")
    );
    assert_eq!(r.json(), bundle);

    // A new conversation when none is given; a new X-Request-Id for every send.
    let again = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap();
    assert_ne!(again.correlation_id, correlation_id);
    assert_ne!(again.request_id, response.request_id);
}

#[tokio::test]
async fn rest_interactions_reach_their_paths() {
    use bars_receiver::ResourceType;
    let s = setup().await;
    let client = client(&s, "");
    bounded(async {
        client
            .send(BarsRequest::read(target(), ResourceType::Appointment, "abc-1"))
            .await
            .unwrap();
        client
            .send(BarsRequest::search(
                target(),
                ResourceType::ServiceRequest,
                vec![(
                    "patient:identifier".into(),
                    "https://fhir.nhs.uk/Id/nhs-number|9912003888".into(),
                )],
            ))
            .await
            .unwrap();
        client
            .send(BarsRequest::patch(
                target(),
                ResourceType::Appointment,
                "abc-1",
                json!([{"op": "replace", "path": "/status", "value": "cancelled"}]),
            ))
            .await
            .unwrap();
        client
            .send(BarsRequest::delete(target(), ResourceType::ServiceRequest, "x"))
            .await
            .unwrap();
    })
    .await;
    let seen: Vec<(String, String)> = s
        .mock
        .state
        .api_requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let base = "/booking-and-referral/FHIR/R4";
    assert_eq!(
        seen,
        vec![
            ("GET".into(), format!("{base}/Appointment/abc-1")),
            (
                "GET".into(),
                format!(
                    "{base}/ServiceRequest?patient%3Aidentifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9912003888"
                )
            ),
            ("PATCH".into(), format!("{base}/Appointment/abc-1")),
            ("DELETE".into(), format!("{base}/ServiceRequest/x")),
        ]
    );
    let patch = &s.mock.state.api_requests()[2];
    assert_eq!(patch.header("content-type"), Some("application/json-patch+json"));
}

#[tokio::test]
async fn a_4xx_is_never_retried_and_keeps_its_code_and_diagnostics() {
    let s = setup().await;
    let client = client(&s, "max_attempts = 5");
    // Not even without the echoed ids.
    s.mock.state.script([ApiReply::Answer {
        status: 422,
        body: outcome(
            "REC_UNPROCESSABLE_ENTITY",
            "not-supported",
            "This service takes bookings only",
        ),
        echo_ids: false,
    }]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    let refused = err.outcome().expect("an OperationOutcome");
    assert_eq!(refused.status, 422);
    assert_eq!(refused.code.as_deref(), Some("REC_UNPROCESSABLE_ENTITY"));
    assert_eq!(refused.family(), CodeFamily::Receiver);
    assert_eq!(refused.issue.as_deref(), Some("not-supported"));
    assert_eq!(
        refused.diagnostics.as_deref(),
        Some("This service takes bookings only")
    );
    assert_eq!(s.mock.state.api_requests().len(), 1);

    s.mock.state.script([ApiReply::Answer {
        status: 400,
        body: outcome("SEND_BAD_REQUEST", "invalid", "NHSD-Target-Identifier missing"),
        echo_ids: true,
    }]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert_eq!(err.outcome().unwrap().family(), CodeFamily::Sender);
    assert_eq!(s.mock.state.api_requests().len(), 2);
}

#[tokio::test]
async fn answers_missing_the_ids_are_retried_with_the_same_request_id() {
    let s = setup().await;
    let client = client(&s, "max_attempts = 4");
    s.mock.state.script([
        ApiReply::Answer {
            status: 200,
            body: json!({"resourceType": "Bundle"}),
            echo_ids: false,
        },
        ApiReply::Answer {
            status: 502,
            body: json!({"message": "bad gateway"}),
            echo_ids: true,
        },
        ApiReply::Echo,
    ]);
    let correlation_id = Uuid::new_v4();
    let response = bounded(
        client.send(BarsRequest::process_message(target(), message()).with_correlation_id(correlation_id)),
    )
    .await
    .expect("third attempt succeeds");
    assert_eq!(response.attempts, 3);
    let requests = s.mock.state.api_requests();
    assert_eq!(requests.len(), 3);
    let rid = response.request_id.to_string();
    let cid = correlation_id.to_string();
    for r in &requests {
        assert_eq!(r.header("x-request-id"), Some(rid.as_str()));
        assert_eq!(r.header("x-correlation-id"), Some(cid.as_str()));
    }

    // Bounded: an API that never echoes them is reported after max_attempts.
    s.mock.state.script((0..4).map(|_| ApiReply::Answer {
        status: 200,
        body: json!({}),
        echo_ids: false,
    }));
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::MissingIds {
                attempts: 4,
                status: 200
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn transport_failures_are_retried_then_reported() {
    let s = setup().await;
    let client = client(&s, "max_attempts = 3");
    s.mock.state.script([ApiReply::Drop, ApiReply::Echo]);
    let response = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap();
    assert_eq!(response.attempts, 2);
    let requests = s.mock.state.api_requests();
    assert_eq!(
        requests[0].header("x-request-id"),
        requests[1].header("x-request-id")
    );

    s.mock
        .state
        .script([ApiReply::Drop, ApiReply::Drop, ApiReply::Drop]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Transport { attempts: 3, .. }), "{err:?}");

    // Nothing listening at all.
    let settings = SenderSettings::from_toml(
        &sender_toml(&s.mock, &s.key, "max_attempts = 2")
            .replace(&s.mock.base_url(), "http://127.0.0.1:1/FHIR/R4"),
        "t",
        Vec::new(),
    )
    .unwrap();
    let err = bounded(
        BarsClient::new(&settings)
            .unwrap()
            .send(BarsRequest::metadata(None)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SendError::Transport { attempts: 2, .. }), "{err:?}");
}

#[tokio::test]
async fn a_retry_answered_duplicate_means_the_lost_first_attempt_got_through() {
    let s = setup().await;
    let client = client(&s, "max_attempts = 3");
    let duplicate = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "duplicate", "details": {"coding": [{
            "system": "https://fhir.nhs.uk/Codesystem/http-error-codes", "code": "REC_CONFLICT"}]}}]
    });
    s.mock.state.script([
        ApiReply::Drop,
        ApiReply::Answer {
            status: 409,
            body: duplicate.clone(),
            echo_ids: true,
        },
    ]);
    let response = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap();
    assert!(response.already_received);
    assert_eq!((response.status, response.attempts), (409, 2));

    // On a first attempt the same 409 is what it says: a refusal.
    s.mock.state.script([ApiReply::Answer {
        status: 409,
        body: duplicate,
        echo_ids: true,
    }]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn a_5xx_with_an_operation_outcome_is_returned_not_retried() {
    let s = setup().await;
    let client = client(&s, "");
    s.mock.state.script([ApiReply::Answer {
        status: 500,
        body: outcome("REC_SERVER_ERROR", "exception", "Receiver failed"),
        echo_ids: true,
    }]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert_eq!(err.outcome().unwrap().code.as_deref(), Some("REC_SERVER_ERROR"));
    assert_eq!(s.mock.state.api_requests().len(), 1);
}

#[tokio::test]
async fn sandbox_mode_sends_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockApim::start(API_KEY, KID, "").await;
    *mock.state.require_token.lock().unwrap() = false;
    let text = format!(
        "environment = \"int\"\n[sender]\nmode = \"sandbox\"\nbase_url = \"{}\"\nods_code = \"X26\"\nretry_backoff = \"10ms\"\n",
        mock.base_url()
    );
    let _ = dir;
    let client = BarsClient::new(&SenderSettings::from_toml(&text, "t", Vec::new()).unwrap()).unwrap();
    assert!(client.signer().is_none());
    bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap();
    let requests = mock.state.api_requests();
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(mock.state.token_requests(), 0);
}

#[tokio::test]
async fn over_tls_the_client_trusts_only_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), KID);
    let pki = common::TestPki::new();
    let server_config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(pki.server.chain.clone(), pki.server.key_der())
    .unwrap();
    let mock = MockApim::start_with_tls(
        API_KEY,
        KID,
        &key.public_key_pem,
        Some(std::sync::Arc::new(server_config)),
    )
    .await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.root.pem).unwrap();

    let trusted = SenderSettings::from_toml(
        &sender_toml(&mock, &key, &format!("ca_file = \"{}\"", ca.display())),
        "t",
        Vec::new(),
    )
    .unwrap();
    let response = bounded(
        BarsClient::new(&trusted)
            .unwrap()
            .send(BarsRequest::process_message(target(), message())),
    )
    .await
    .expect("sent over TLS");
    assert_eq!(response.status, 200);

    // The public web roots do not include a test CA: the token request fails.
    let public_roots =
        SenderSettings::from_toml(&sender_toml(&mock, &key, "max_attempts = 1"), "t", Vec::new()).unwrap();
    let err = bounded(
        BarsClient::new(&public_roots)
            .unwrap()
            .send(BarsRequest::process_message(target(), message())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SendError::Token(TokenError::Transport { .. })),
        "{err:?}"
    );
}
