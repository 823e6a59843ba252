//! The dev proxy's API-M token endpoint: a good client assertion gets a token shaped like
//! API-M's, and each way API-M refuses one is refused the same way (status, `error`,
//! `error_description`, a `message_id`). Assertions are signed in the test, independently of
//! the crate's signer; the crate's own client is checked against the endpoint too.

#![cfg(feature = "dev-tools")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;

use bars_receiver::config::SenderSettings;
use bars_receiver::sender::BarsClient;
use common::TestPki;
use common::devproxy::{KID, ProxyOptions, TestProxy, now};
use serde_json::json;

/// Bounds a test: nothing here comes near it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}

async fn proxy() -> TestProxy {
    TestProxy::start(Arc::new(TestPki::new()), ProxyOptions::default()).await
}

/// Asserts an API-M refusal and returns its body.
#[track_caller]
fn assert_refused(reply: &common::Reply, status: u16, error: &str, description: &str) {
    assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
    assert!(
        body["message_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
}

#[tokio::test]
async fn issues_an_api_m_shaped_token_for_a_good_assertion() {
    bounded(async {
        let proxy = proxy().await;
        let assertion = proxy.sign(KID, &proxy.claims(), false);
        let before_ms = u128::from(now()) * 1000;
        let reply = proxy.post_token(&TestProxy::form(&assertion)).await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = reply.json();
        assert!(
            body["access_token"].as_str().is_some_and(|t| t.len() >= 32),
            "{body}"
        );
        assert_eq!(body["expires_in"], json!("599"), "a string, as API-M sends it");
        assert_eq!(body["token_type"], "Bearer");
        let issued_at: u128 = body["issued_at"].as_str().unwrap().parse().unwrap();
        assert!(
            issued_at >= before_ms && issued_at < before_ms + 600_000,
            "{issued_at}"
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_crate_s_own_sender_gets_a_token() {
    bounded(async {
        let proxy = proxy().await;
        let toml = format!(
            r#"environment = "dev"
[sender]
mode = "signed-jwt"
api_key = "{api_key}"
private_key = "{key}"
kid = "{KID}"
token_url = "{token_url}"
base_url = "{base_url}"
ca_file = "{ca}"
ods_code = "X26"
"#,
            api_key = common::devproxy::API_KEY,
            key = proxy.key.private_key.display(),
            token_url = proxy.token_url(),
            base_url = proxy.base_url(),
            ca = proxy.ca_file().display(),
        );
        let settings = SenderSettings::from_toml(&toml, "test", Vec::new()).unwrap();
        let client = BarsClient::new(&settings).unwrap();
        let token = client.tokens().fetch().await.expect("token from the dev proxy");
        assert_eq!(token.expires_in, std::time::Duration::from_secs(599));
        assert_eq!(token.token_type, "Bearer");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_an_unknown_kid() {
    bounded(async {
        let proxy = proxy().await;
        let assertion = proxy.sign("Unregistered-INT-9", &proxy.claims(), false);
        let reply = proxy.post_token(&TestProxy::form(&assertion)).await;
        assert_refused(
            &reply,
            401,
            "invalid_request",
            "Invalid 'kid' header in client_assertion JWT - no matching public key",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_bad_signature() {
    bounded(async {
        let proxy = proxy().await;
        // The registered kid, signed with another key.
        let assertion = proxy.sign(KID, &proxy.claims(), true);
        let reply = proxy.post_token(&TestProxy::form(&assertion)).await;
        assert_refused(
            &reply,
            401,
            "public_key error",
            "JWT signature verification failed",
        );

        // A good assertion whose claims were altered after signing.
        let good = proxy.sign(KID, &proxy.claims(), false);
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut claims = proxy.claims();
        claims["exp"] = json!(now() + 299);
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string(),
        );
        let reply = proxy.post_token(&TestProxy::form(&parts.join("."))).await;
        assert_refused(
            &reply,
            401,
            "public_key error",
            "JWT signature verification failed",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_wrong_audience() {
    bounded(async {
        let proxy = proxy().await;
        let mut claims = proxy.claims();
        claims["aud"] = json!("https://int.api.service.nhs.uk/oauth2/token");
        let reply = proxy
            .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
            .await;
        assert_refused(
            &reply,
            401,
            "invalid_request",
            "Missing or invalid 'aud' claim in client_assertion JWT",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_an_exp_more_than_five_minutes_ahead() {
    bounded(async {
        let proxy = proxy().await;
        let mut claims = proxy.claims();
        claims["exp"] = json!(now() + 360);
        let reply = proxy
            .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
            .await;
        assert_refused(
            &reply,
            400,
            "invalid_request",
            "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_an_exp_that_has_passed() {
    bounded(async {
        let proxy = proxy().await;
        let mut claims = proxy.claims();
        claims["exp"] = json!(now() - 20);
        let reply = proxy
            .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
            .await;
        assert_refused(
            &reply,
            400,
            "invalid_request",
            "Invalid 'exp' claim in client_assertion JWT - JWT has expired",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_reused_jti() {
    bounded(async {
        let proxy = proxy().await;
        let assertion = proxy.sign(KID, &proxy.claims(), false);
        let first = proxy.post_token(&TestProxy::form(&assertion)).await;
        assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
        let again = proxy.post_token(&TestProxy::form(&assertion)).await;
        assert_refused(
            &again,
            400,
            "invalid_request",
            "Non-unique 'jti' claim in client_assertion JWT",
        );
        // The same jti in a freshly signed assertion is refused too.
        let mut claims = proxy.claims();
        claims["jti"] = bars_receiver::sender::decode_parts(&assertion).1["jti"].clone();
        let resigned = proxy
            .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
            .await;
        assert_eq!(resigned.status, 400);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_wrong_grant_type() {
    bounded(async {
        let proxy = proxy().await;
        let mut form = TestProxy::form(&proxy.sign(KID, &proxy.claims(), false));
        form[0].1 = "authorization_code".into();
        assert_refused(
            &proxy.post_token(&form).await,
            400,
            "unsupported_grant_type",
            "grant_type is invalid",
        );
        form.remove(0);
        assert_refused(
            &proxy.post_token(&form).await,
            400,
            "invalid_request",
            "grant_type is missing",
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_wrong_client_assertion_type() {
    bounded(async {
    let proxy = proxy().await;
    let mut form = TestProxy::form(&proxy.sign(KID, &proxy.claims(), false));
    form[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    let description = "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'";
    assert_refused(
        &proxy.post_token(&form).await,
        400,
        "invalid_request",
        description,
    );
    form.remove(1);
    assert_refused(
        &proxy.post_token(&form).await,
        400,
        "invalid_request",
        description,
    );
    proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_unknown_applications_and_malformed_assertions() {
    bounded(async {
        let proxy = proxy().await;
        let mut claims = proxy.claims();
        claims["iss"] = json!("someone-else");
        claims["sub"] = json!("someone-else");
        assert_refused(
            &proxy
                .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
                .await,
            401,
            "invalid_request",
            "Invalid 'iss'/'sub' claims in client_assertion JWT",
        );
        claims["sub"] = json!(common::devproxy::API_KEY);
        assert_refused(
            &proxy
                .post_token(&TestProxy::form(&proxy.sign(KID, &claims, false)))
                .await,
            400,
            "invalid_request",
            "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT",
        );
        assert_refused(
            &proxy.post_token(&TestProxy::form("not.a-jwt")).await,
            400,
            "invalid_request",
            "Malformed JWT in client_assertion",
        );
        proxy.shutdown().await;
    })
    .await;
}
