//! The dev proxy's BaRS API: every refusal the proxy makes itself (token, ids, target,
//! catalogue, unknown endpoint), its own CapabilityStatement, faithful forwarding over real
//! mutual TLS from the configured source address, and the national proxy's rewrites of
//! receiver answers (503, 500 without an OperationOutcome, 504 and no answer, failed mTLS).

#![cfg(feature = "dev-tools")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::apim::outcome;
use common::devproxy::{ProxyOptions, TestProxy, assert_proxy_outcome};
use common::upstream::{Behaviour, Script, TestUpstream};
use common::{Bars, ServerOptions, TestPki, TestServer, minimal_message};
use http_body_util::Full;
use serde_json::json;

const SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|111111111";

/// A proxy whose catalogue sends the test service (the one `Bars` addresses) to `url`.
async fn proxy_to(pki: &Arc<TestPki>, url: &str, options: ProxyOptions) -> TestProxy {
    let options = ProxyOptions {
        catalogue: vec![(SERVICE.to_owned(), url.to_owned())],
        ..options
    };
    TestProxy::start(pki.clone(), options).await
}

/// A TLS receiver stand-in answering as `script` says (it records whether a client
/// certificate was shown).
async fn upstream(pki: &TestPki, script: Script) -> (TestUpstream, String) {
    let upstream = TestUpstream::start_tls("/bars/R4", pki, script).await;
    let url = format!("https://localhost:{}/bars/R4", upstream.addr.port());
    (upstream, url)
}

fn always(behaviour: Behaviour) -> Script {
    Arc::new(move |_, _| behaviour.clone())
}

fn bearer(request: http::request::Builder, token: &str) -> http::request::Builder {
    request.header("authorization", format!("Bearer {token}"))
}

fn message(bars: &Bars, token: &str) -> http::Request<Full<Bytes>> {
    bearer(bars.request("POST", "/$process-message"), token)
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(minimal_message().to_string())))
        .unwrap()
}

fn get(request: http::request::Builder) -> http::Request<Full<Bytes>> {
    request.body(Full::new(Bytes::new())).unwrap()
}

/// Bounds a test: nothing here comes near it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn refuses_requests_without_a_valid_token() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(&pki, common::upstream::echo()).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let bars = Bars::default();

        let reply = proxy.api(bars.message(minimal_message().to_string())).await;
        let why = assert_proxy_outcome(&reply, 401, "SEND_UNAUTHORIZED", "unknown");
        assert!(why.contains("No Access token"), "{why}");
        assert_eq!(
            reply.header("x-request-id"),
            Some(bars.request_id.as_str()),
            "ids echoed"
        );

        let reply = proxy.api(message(&bars, "not-a-token-this-proxy-issued")).await;
        let why = assert_proxy_outcome(&reply, 401, "SEND_UNAUTHORIZED", "security");
        assert!(why.contains("access token was invalid"), "{why}");

        // The same request with a token issued by the proxy goes through.
        let token = proxy.access_token().await;
        assert_eq!(proxy.api(message(&bars, &token)).await.status, 200);
        assert_eq!(
            upstream.records().len(),
            1,
            "only the authorised request was forwarded"
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_requests_missing_a_bars_id() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(&pki, common::upstream::echo()).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        for missing in ["x-request-id", "x-correlation-id"] {
            let mut request = message(&Bars::default(), &token);
            request.headers_mut().remove(missing);
            let reply = proxy.api(request).await;
            let why = assert_proxy_outcome(&reply, 400, "BAD_REQUEST", "invalid");
            assert!(why.contains("X-Request-Id or the X-Correlation-Id"), "{why}");
        }
        // A request without a target (other than /metadata) is refused the same way.
        let mut request = message(&Bars::default(), &token);
        request.headers_mut().remove("nhsd-target-identifier");
        assert_proxy_outcome(&proxy.api(request).await, 400, "BAD_REQUEST", "invalid");
        assert!(upstream.records().is_empty(), "nothing was forwarded");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_an_undecodable_target_identifier_with_proxy_bad_request() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(&pki, common::upstream::echo()).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;

        let mut request = message(&Bars::default(), &token);
        request
            .headers_mut()
            .insert("nhsd-target-identifier", "%%not-base64%%".parse().unwrap());
        let why = assert_proxy_outcome(&proxy.api(request).await, 400, "PROXY_BAD_REQUEST", "400");
        assert_eq!(
            why,
            "The base64 decoding of the NHSD-Target-Identifier header failed."
        );

        for target in [
            json!({"system": "https://fhir.nhs.uk/Id/dos-service-id"}),
            json!({"value": "111111111"}),
            json!({"system": "", "value": "111111111"}),
        ] {
            let bars = Bars {
                target,
                ..Bars::default()
            };
            let why = assert_proxy_outcome(
                &proxy.api(message(&bars, &token)).await,
                400,
                "PROXY_BAD_REQUEST",
                "structure",
            );
            assert_eq!(why, "Invalid schema for NHSD-Target-Identifier header");
        }
        assert!(upstream.records().is_empty());
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn refuses_a_target_missing_from_the_catalogue_with_proxy_not_found() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(&pki, common::upstream::echo()).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let bars = Bars {
            target: json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "999"}),
            ..Bars::default()
        };
        let reply = proxy.api(message(&bars, &token)).await;
        let why = assert_proxy_outcome(&reply, 404, "PROXY_NOT_FOUND", "not-found");
        assert!(why.contains("Endpoint Catalogue"), "{why}");
        assert_eq!(
            reply.header("x-correlation-id"),
            Some(bars.correlation_id.as_str())
        );

        // Not a BaRS endpoint at all: the proxy's own 404, before any token check.
        let reply = proxy.api(get(Bars::default().request("GET", "/Patient"))).await;
        assert_proxy_outcome(&reply, 404, "NOT_FOUND", "not-found");
        assert!(upstream.records().is_empty());
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_metadata_itself_without_a_target_and_forwards_it_with_one() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let receiver = TestServer::start_with_pki(
            pki.clone(),
            ServerOptions::default(),
            bars_receiver::default_handlers,
        )
        .await;
        let url = format!("https://localhost:{}", receiver.addr.port());
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;

        let request = get(bearer(
            http::Request::get("/metadata").header("host", "localhost"),
            &token,
        ));
        let reply = proxy.api(request).await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        let own = reply.json();
        assert_eq!(own["resourceType"], "CapabilityStatement");
        assert_eq!(own["software"]["name"], "BaRS API (dev-proxy)");
        assert_eq!(own["url"], proxy.base_url().replace("localhost", "127.0.0.1"));
        assert_eq!(
            own["rest"][0]["security"]["service"][0]["coding"][0]["code"],
            "OAuth"
        );
        assert_eq!(receiver.inbox_count(), 0);

        // Without a token, even /metadata is refused.
        let reply = proxy
            .api(get(http::Request::get("/metadata").header("host", "localhost")))
            .await;
        assert_eq!(reply.status, 401);

        // With a target, /metadata is the receiver's.
        let reply = proxy
            .api(get(bearer(Bars::default().request("GET", "/metadata"), &token)))
            .await;
        assert_eq!(reply.status, 200);
        let theirs = reply.json();
        assert_eq!(theirs["resourceType"], "CapabilityStatement");
        assert_eq!(theirs["software"]["name"], "bars-receiver");
        proxy.shutdown().await;
        receiver.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn forwards_method_path_query_headers_and_body_over_mutual_tls() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(&pki, common::upstream::echo()).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let bars = Bars::default();

        let body = minimal_message().to_string();
        let request = bearer(
            bars.request("PUT", "/Appointment/abc-123?_format=json&x=1%202"),
            &token,
        )
        .header("content-type", "application/fhir+json")
        .header("use-context", "a4t2|validation")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
        let reply = proxy.api(request).await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["method"], "PUT", "the receiver's answer comes back");

        let got = upstream.records();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, "/bars/R4/Appointment/abc-123", "base URL + path suffix");
        assert_eq!(r.query.as_deref(), Some("_format=json&x=1%202"));
        assert_eq!(r.body_text(), body, "the body unchanged");
        assert!(r.client_cert, "the proxy's client certificate was presented");
        assert_eq!(r.header("x-request-id"), Some(bars.request_id.as_str()));
        assert_eq!(r.header("x-correlation-id"), Some(bars.correlation_id.as_str()));
        assert_eq!(
            r.header("nhsd-target-identifier"),
            Some(bars_receiver::fhir::encode_header_json(&bars.target).as_str())
        );
        for name in [
            "nhsd-end-user-organisation",
            "nhsd-requesting-software",
            "accept",
            "content-type",
        ] {
            assert!(r.header(name).is_some(), "{name} forwarded");
        }
        assert_eq!(r.header("use-context"), Some("a4t2|validation"));
        assert_eq!(
            r.header("authorization"),
            None,
            "the sender's token stays with the proxy"
        );
        assert_eq!(
            r.header("accept-encoding"),
            None,
            "the proxy reads answers itself"
        );

        // $process-message, percent-encoded as some senders write it, arrives as sent.
        let request = bearer(bars.request("POST", "/%24process-message"), &token)
            .header("content-type", "application/fhir+json")
            .header("x-request-id", uuid::Uuid::new_v4().to_string())
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        assert_eq!(proxy.api(request).await.status, 200);
        assert_eq!(upstream.records()[1].path, "/bars/R4/%24process-message");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn passes_other_receiver_errors_on_unchanged() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let refusal = outcome(
            "REC_UNPROCESSABLE_ENTITY",
            "not-supported",
            "Version 2 is not supported",
        );
        let (_upstream, url) = upstream(&pki, always(Behaviour::json(422, &refusal))).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        assert_eq!(reply.status, 422);
        assert_eq!(reply.json(), refusal);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn replaces_a_503_body_with_the_generic_one() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let own = outcome(
            "REC_SERVICE_UNAVAILABLE",
            "transient",
            "Database maintenance until 02:00",
        );
        let (_upstream, url) = upstream(&pki, always(Behaviour::json(503, &own))).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let bars = Bars::default();
        let reply = proxy.api(message(&bars, &token)).await;
        let why = assert_proxy_outcome(&reply, 503, "REC_SERVICE_UNAVAILABLE", "transient");
        assert!(
            why.starts_with("The response from the receiver was a 503, with no detail"),
            "{why}"
        );
        assert!(!String::from_utf8_lossy(&reply.body).contains("maintenance"));
        assert_eq!(reply.header("x-request-id"), Some(bars.request_id.as_str()));
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn replaces_a_500_without_an_operation_outcome() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (upstream, url) = upstream(
            &pki,
            always(Behaviour::text(
                500,
                "<html>Stack trace: NullPointerException</html>",
            )),
        )
        .await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        let why = assert_proxy_outcome(&reply, 500, "REC_SERVER_ERROR", "exception");
        assert_eq!(why, "unhandled exception.");
        assert!(!String::from_utf8_lossy(&reply.body).contains("NullPointer"));

        // A 500 that is an OperationOutcome reaches the sender unchanged.
        let own = outcome("REC_SERVER_ERROR", "no-store", "The message could not be stored");
        upstream.set_script(always(Behaviour::json(500, &own)));
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.json(), own);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn turns_a_504_into_408_rec_timeout() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        let (_upstream, url) = upstream(&pki, always(Behaviour::text(504, "Gateway Timeout"))).await;
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        let why = assert_proxy_outcome(&reply, 408, "REC_TIMEOUT", "timeout");
        assert_eq!(why, "The connection to the Receiver timed out.");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_408_when_the_receiver_does_not_answer_in_time() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        // The receiver would answer after 100 s; the proxy (timeout 2 s here, 32 s by
        // default) gives up first.
        let late = Behaviour::Delay(
            Duration::from_secs(100),
            Box::new(Behaviour::json(200, &json!({}))),
        );
        let (upstream, url) = upstream(&pki, always(late)).await;
        let options = ProxyOptions {
            timeout: "2s",
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&pki, &url, options).await;
        let token = proxy.access_token().await;
        let bars = Bars::default();
        let started = std::time::Instant::now();
        let reply = proxy.api(message(&bars, &token)).await;
        assert_proxy_outcome(&reply, 408, "REC_TIMEOUT", "timeout");
        assert_eq!(
            reply.header("x-correlation-id"),
            Some(bars.correlation_id.as_str())
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the proxy did not wait for the answer"
        );
        upstream
            .wait_until(Duration::from_secs(30), "the request at the receiver", |r| {
                r.len() == 1
            })
            .await;
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_403_tls_ma_failure_when_the_receiver_refuses_the_proxy_certificate() {
    bounded(async {
        // The proxy presents a certificate from a CA the receiver does not trust: the
        // receiver refuses it with an alert, which under TLS 1.3 arrives after the proxy's
        // side of the handshake is done, on its first read.
        let pki = Arc::new(TestPki::new());
        let receiver = TestServer::start_with_pki(
            pki.clone(),
            ServerOptions::default(),
            bars_receiver::default_handlers,
        )
        .await;
        let url = format!("https://localhost:{}", receiver.addr.port());
        let options = ProxyOptions {
            client: Some(common::pki::foreign_client()),
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&pki, &url, options).await;
        let token = proxy.access_token().await;
        // Several times: the verdict must not depend on timing.
        for _ in 0..5 {
            let reply = proxy.api(message(&Bars::default(), &token)).await;
            let why = assert_proxy_outcome(&reply, 403, "REC_FORBIDDEN", "forbidden");
            assert_eq!(why, "TLS-MA failure.");
        }
        assert_eq!(receiver.inbox_count(), 0);
        // The receiver counts a refusal once its handshake has ended, which may be just
        // after the proxy has read the alert.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while receiver
            .stats
            .refused(bars_receiver::tls::RefusalReason::UnknownCa)
            < 5
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver refused unknown CAs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.shutdown().await;
        receiver.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_403_tls_ma_failure_when_the_proxy_cannot_verify_the_receiver() {
    bounded(async {
        // The receiver's server certificate is from a PKI the proxy does not trust.
        let receiver = TestServer::start(ServerOptions::default()).await;
        let url = format!("https://localhost:{}", receiver.addr.port());
        let proxy = proxy_to(&Arc::new(TestPki::new()), &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        let why = assert_proxy_outcome(&reply, 403, "REC_FORBIDDEN", "forbidden");
        assert_eq!(why, "TLS-MA failure.");
        assert_eq!(receiver.inbox_count(), 0);
        proxy.shutdown().await;
        receiver.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_403_tls_ma_failure_when_the_receiver_pins_another_client_name() {
    bounded(async {
        // The receiver trusts the proxy's CA but pins another client name.
        let pki = Arc::new(TestPki::new());
        let options = ServerOptions {
            allowed_client_names: vec!["someone-else.nhs.uk".into()],
            ..ServerOptions::default()
        };
        let receiver =
            TestServer::start_with_pki(pki.clone(), options, bars_receiver::default_handlers).await;
        let url = format!("https://localhost:{}", receiver.addr.port());
        let proxy = proxy_to(&pki, &url, ProxyOptions::default()).await;
        let token = proxy.access_token().await;
        for _ in 0..5 {
            let reply = proxy.api(message(&Bars::default(), &token)).await;
            let why = assert_proxy_outcome(&reply, 403, "REC_FORBIDDEN", "forbidden");
            assert_eq!(why, "TLS-MA failure.");
        }
        assert_eq!(receiver.inbox_count(), 0);
        proxy.shutdown().await;
        receiver.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn answers_503_when_the_receiver_cannot_be_reached() {
    bounded(async {
        let pki = Arc::new(TestPki::new());
        // A port nobody listens on any more.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let proxy = proxy_to(
            &pki,
            &format!("https://127.0.0.1:{port}"),
            ProxyOptions::default(),
        )
        .await;
        let token = proxy.access_token().await;
        let reply = proxy.api(message(&Bars::default(), &token)).await;
        assert_proxy_outcome(&reply, 503, "REC_SERVICE_UNAVAILABLE", "transient");
        proxy.shutdown().await;
    })
    .await;
}

/// A receiver whose allowlist has only `allowed`, behind a proxy forwarding from `source`.
async fn through_allowlist(allowed: &str, source: &str) -> (u16, TestServer, common::Reply) {
    let pki = Arc::new(TestPki::new());
    let options = ServerOptions {
        sources: Some(vec![format!("{allowed}/32")]),
        ..ServerOptions::default()
    };
    let receiver = TestServer::start_with_pki(pki.clone(), options, bars_receiver::default_handlers).await;
    let url = format!("https://localhost:{}", receiver.addr.port());
    let proxy = proxy_to(
        &pki,
        &url,
        ProxyOptions {
            source: Some(source.parse::<IpAddr>().unwrap()),
            ..ProxyOptions::default()
        },
    )
    .await;
    let token = proxy.access_token().await;
    let reply = proxy.api(message(&Bars::default(), &token)).await;
    proxy.shutdown().await;
    (reply.status, receiver, reply)
}

#[tokio::test]
async fn forwards_from_the_configured_source_address() {
    bounded(async {
        let (status, receiver, reply) = through_allowlist("127.0.0.2", "127.0.0.2").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(receiver.inbox_count(), 1);
        let store = bars_receiver::Store::open_read_only(&receiver.inbox_path).unwrap();
        let listed = store.list(10).await.unwrap();
        let record = store.get(&listed[0].id).await.unwrap().unwrap();
        assert_eq!(
            record.message.peer["source_ip"], "127.0.0.2",
            "the allowlist saw the proxy's address"
        );
        assert_eq!(record.message.peer["common_name"], "int.api.service.nhs.uk");
        receiver.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_receiver_refuses_the_proxy_from_another_source_address() {
    bounded(async {
        let (status, receiver, reply) = through_allowlist("127.0.0.2", "127.0.0.3").await;
        // The receiver closes the connection before any TLS: the proxy's handshake fails.
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&reply.body));
        assert_proxy_outcome(&reply, 403, "REC_FORBIDDEN", "forbidden");
        assert_eq!(receiver.inbox_count(), 0);
        assert_eq!(
            receiver
                .stats
                .refused(bars_receiver::tls::RefusalReason::SourceNotAllowed),
            1,
            "the receiver refused the connection at its allowlist"
        );
        receiver.shutdown().await;
    })
    .await;
}
