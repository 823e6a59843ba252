//! The API-M side of the sender against the mock token endpoint: the client assertion
//! verified independently and checked claim by claim, refusals in API-M's own words, and the
//! token cache (one fetch for concurrent sends, refresh before expiry, drop after a 401).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use bars_receiver::config::SenderSettings;
use bars_receiver::sender::{BarsClient, BarsRequest, CodeFamily, SendError, TokenError};
use common::apim::{ApiReply, MockApim, TokenReply, keygen, other_key, outcome, sender_toml};
use common::senders::*;
use serde_json::json;

#[tokio::test]
async fn the_token_endpoint_verifies_the_assertion_independently_and_every_claim_holds() {
    let s = setup().await;
    let client = client(&s, "");
    bounded(async {
        let first = client.tokens().fetch().await.expect("token");
        let second = client.tokens().fetch().await.expect("token");
        assert_eq!(s.mock.state.assertion_errors(), Vec::<String>::new());
        assert_eq!(s.mock.state.token_requests(), 2);
        assert_eq!(
            s.mock.state.jtis.lock().unwrap().len(),
            2,
            "a fresh jti per assertion"
        );
        assert_eq!(
            first.expires_in,
            Duration::from_secs(599),
            "expires_in sent as a string"
        );
        assert!(first.issued_at.is_some());
        assert_ne!(first.token, second.token);
        if which_openssl() {
            assert_eq!(
                s.mock
                    .state
                    .openssl_verified
                    .load(std::sync::atomic::Ordering::SeqCst),
                2,
                "openssl verified both signatures"
            );
        } else {
            eprintln!("openssl not installed: signatures verified with aws-lc-rs's raw verifier only");
        }
    })
    .await;
}

fn which_openssl() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn an_unregistered_key_id_is_refused_in_api_m_s_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "Unknown-INT-9");
    let registered = keygen(dir.path(), KID);
    let mock = MockApim::start(API_KEY, KID, &registered.public_key_pem).await;
    let settings = SenderSettings::from_toml(&sender_toml(&mock, &key, ""), "t", Vec::new()).unwrap();
    let client = BarsClient::new(&settings).unwrap();
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    let SendError::Token(TokenError::Refused {
        status,
        description,
        message_id,
        ..
    }) = &err
    else {
        panic!("expected a token refusal, got {err:?}");
    };
    assert_eq!(*status, 401);
    assert_eq!(
        description.as_deref(),
        Some("Invalid 'kid' header in JWT - no matching public key")
    );
    assert!(message_id.as_deref().is_some_and(|m| m.starts_with("rrt-")));
    assert!(
        err.to_string()
            .contains("Invalid 'kid' header in JWT - no matching public key"),
        "{err}"
    );
    assert!(
        mock.state.api_requests().is_empty(),
        "nothing sent without a token"
    );
}

#[tokio::test]
async fn a_key_other_than_the_registered_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = other_key(dir.path(), KID);
    let other_dir = tempfile::tempdir().unwrap();
    let registered = keygen(other_dir.path(), KID);
    let mock = MockApim::start(API_KEY, KID, &registered.public_key_pem).await;
    let settings = SenderSettings::from_toml(&sender_toml(&mock, &key, ""), "t", Vec::new()).unwrap();
    let client = BarsClient::new(&settings).unwrap();
    let err = bounded(client.tokens().fetch()).await.unwrap_err();
    assert!(
        err.to_string().contains("Unable to verify JWT signature"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_sends_share_one_token_fetch() {
    let s = setup().await;
    // Slow enough that the sends pile up behind the one fetch; the count holds either way.
    *s.mock.state.token_delay.lock().unwrap() = Duration::from_millis(300);
    let client = client(&s, "");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .send(BarsRequest::process_message(target(), message()))
                .await
        });
    }
    bounded(async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap().expect("sent");
        }
    })
    .await;
    assert_eq!(s.mock.state.token_requests(), 1);
    assert_eq!(client.tokens().fetches(), 1);
    let bearer = format!("Bearer {}", s.mock.state.issued()[0]);
    let requests = s.mock.state.api_requests();
    assert_eq!(requests.len(), 8);
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str()))
    );
}

#[tokio::test]
async fn concurrent_sends_share_one_refused_token_fetch() {
    let s = setup().await;
    // Long enough for the waiters to queue behind the first fetch even on a loaded machine.
    *s.mock.state.token_delay.lock().unwrap() = Duration::from_millis(1500);
    s.mock.state.set_token_reply(TokenReply::Refuse {
        status: 401,
        body: json!({"error": "invalid_request", "error_description": "Invalid 'kid' header in JWT - no matching public key", "message_id": "rrt-1"}),
    });
    let client = client(&s, "");
    let mut tasks = tokio::task::JoinSet::new();
    // The first send holds the refresh; the others queue behind it before it fails.
    let first = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(BarsRequest::process_message(target(), message()))
                .await
        })
    };
    while s.mock.state.token_requests() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..4 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .send(BarsRequest::process_message(target(), message()))
                .await
        });
    }
    let mut errors = vec![bounded(first).await.unwrap().unwrap_err()];
    bounded(async {
        while let Some(result) = tasks.join_next().await {
            errors.push(result.unwrap().unwrap_err());
        }
    })
    .await;
    for err in &errors {
        assert!(err.to_string().contains("no matching public key"), "{err}");
    }
    // The waiters queued while the first fetch was in flight (its 1.5 s delay) share its
    // failure; a waiter that only reached the lock after it would fetch again, so the count
    // is bounded rather than exact on a loaded machine.
    assert!(
        s.mock.state.token_requests() < errors.len(),
        "{} fetches",
        s.mock.state.token_requests()
    );
    assert!(s.mock.state.api_requests().is_empty());
}

#[tokio::test]
async fn an_expiring_token_is_refreshed() {
    let s = setup().await;
    // A number this time; refreshed halfway through such a short life.
    s.mock
        .state
        .set_token_reply(TokenReply::Grant { expires_in: json!(1) });
    let client = client(&s, "");
    bounded(async {
        client
            .send(BarsRequest::process_message(target(), message()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client
            .send(BarsRequest::process_message(target(), message()))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(s.mock.state.token_requests(), 2);
    let issued = s.mock.state.issued();
    let requests = s.mock.state.api_requests();
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {}", issued[1]).as_str()),
        "the second send uses the new token"
    );
}

#[tokio::test]
async fn a_token_refused_by_the_api_is_dropped_from_the_cache() {
    let s = setup().await;
    let client = client(&s, "");
    s.mock.state.script([ApiReply::Answer {
        status: 401,
        body: outcome("PROXY_UNAUTHORIZED", "security", "Invalid access token"),
        echo_ids: true,
    }]);
    let err = bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap_err();
    assert_eq!(err.outcome().unwrap().family(), CodeFamily::Proxy);
    assert_eq!(s.mock.state.api_requests().len(), 1, "a 401 is not retried");
    bounded(client.send(BarsRequest::process_message(target(), message())))
        .await
        .unwrap();
    assert_eq!(s.mock.state.token_requests(), 2, "a new token after the 401");
}
