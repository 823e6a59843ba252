//! Shutdown: in-flight requests finish within the grace period, new connections are refused,
//! and a handler that panics becomes a 500 without taking the server down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bars_receiver::{FhirResponse, HandlerResult, Handlers, MessageBundle, MessagingHandler, RequestContext};
use common::*;

struct Slow(Duration);
impl MessagingHandler for Slow {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        tokio::time::sleep(self.0).await;
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

struct Panics;
impl MessagingHandler for Panics {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        if message.id.starts_with("b0000000") {
            panic!("handler bug");
        }
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let server = TestServer::start_with(ServerOptions::default(), |_| {
        Handlers::new(Arc::new(Slow(Duration::from_millis(1500))))
    })
    .await;
    let addr = server.addr;
    let client = server.client();
    let in_flight = tokio::spawn(async move {
        client
            .send(addr, Bars::default().message(minimal_message().to_string()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let late_client = server.client();
    server.shutdown().await;
    let reply = in_flight.await.unwrap();
    assert_eq!(
        reply.status, 200,
        "the in-flight request completed during the drain"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "shutdown waited for it"
    );
    assert!(
        late_client.tls(addr, None).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_carries_on() {
    let server = TestServer::start_with(ServerOptions::default(), |_| Handlers::new(Arc::new(Panics))).await;
    let mut bad = minimal_message();
    bad["id"] = serde_json::json!("b0000000-0000-4000-8000-000000000001");
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(bad.to_string()))
        .await;
    reply.assert_outcome(500, "REC_SERVER_ERROR", "exception");
    assert_eq!(reply.header("x-request-id"), Some(bars.request_id.as_str()));
    assert!(
        !String::from_utf8_lossy(&reply.body).contains("handler bug"),
        "no internal detail leaks"
    );
    let ok = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    assert_eq!(ok.status, 200);
}

/// Fails with a 500 the first time it sees a message, then accepts it.
#[derive(Default)]
struct FlakyDownstream(std::sync::Mutex<std::collections::HashSet<String>>);
impl MessagingHandler for FlakyDownstream {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        if self.0.lock().unwrap().insert(message.id.clone()) {
            return Err(bars_receiver::RecError::server_error(
                "The downstream system did not answer.",
            ));
        }
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

#[tokio::test]
async fn a_server_error_is_not_replayed_so_the_retry_is_processed() {
    let server = TestServer::start_with(ServerOptions::default(), |_| {
        Handlers::new(Arc::new(FlakyDownstream::default()))
    })
    .await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    first.assert_outcome(500, "REC_SERVER_ERROR", "exception");
    let retry = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    assert_eq!(
        retry.status, 200,
        "a 5xx is the receiver's fault: the retry is processed again"
    );
    let again = server.client().send(server.addr, bars.message(body)).await;
    again.assert_outcome(409, "REC_CONFLICT", "duplicate");
}

/// Counts how many messages it holds at once.
#[derive(Default)]
struct Concurrency {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}
impl MessagingHandler for Concurrency {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        use std::sync::atomic::Ordering;
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

impl bars_receiver::handler::CreateHandler for Concurrency {
    async fn create(&self, _ctx: &RequestContext, resource: serde_json::Value) -> HandlerResult {
        use std::sync::atomic::Ordering;
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(FhirResponse::created(resource, "Appointment/1"))
    }
}

/// How many of `requests` ran their handler at once, all sent together; each must succeed.
async fn most_at_once(
    server: &TestServer,
    handler: &Concurrency,
    requests: Vec<http::Request<http_body_util::Full<bytes::Bytes>>>,
) -> usize {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let (client, addr) = (server.client(), server.addr);
            tokio::spawn(async move { client.send(addr, request).await })
        })
        .collect();
    for t in tasks {
        let reply = t.await.unwrap();
        assert!(
            reply.status < 300,
            "waiting for room is not a refusal: {}",
            reply.status
        );
    }
    handler.most.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn the_body_budget_counts_what_parsing_holds_not_only_the_bytes() {
    // 43 KiB bodies: by their bytes alone 27 would fit at once under 1200 KiB, four under 200.
    let options = |budget: &str| ServerOptions {
        max_body: "64KiB",
        http_extra: format!("max_inflight_body = \"{budget}\""),
        ..ServerOptions::default()
    };
    let note = serde_json::json!([{"text": "x".repeat(40 * 1024)}]);

    // A message costs its body, its text, the Value its checks parse and the answered text
    // (about 520 KiB): two at a time under 1200 KiB.
    let handler = Arc::new(Concurrency::default());
    let shared = handler.clone();
    let server = TestServer::start_with(options("1200KiB"), move |_| Handlers::new(shared)).await;
    let mut big = minimal_message();
    big["entry"][1]["resource"]["note"] = note.clone();
    let messages = (0..4).map(|_| Bars::default().message(big.to_string())).collect();
    assert_eq!(most_at_once(&server, &handler, messages).await, 2);

    // A resource is also parsed into a Value, several times its size: one at a time under
    // 200 KiB.
    let handler = Arc::new(Concurrency::default());
    let (shared, creates) = (handler.clone(), handler.clone());
    let server = TestServer::start_with(options("200KiB"), move |_| {
        Handlers::new(shared).with_appointments(bars_receiver::ResourceHandlers::new().create(creates))
    })
    .await;
    let appointment =
        serde_json::json!({"resourceType": "Appointment", "status": "booked", "comment": note[0]["text"]});
    let creates = (0..2)
        .map(|_| {
            Bars::default()
                .request("POST", "/Appointment")
                .header("content-type", "application/fhir+json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    appointment.to_string(),
                )))
                .unwrap()
        })
        .collect();
    assert_eq!(most_at_once(&server, &handler, creates).await, 1);
}

#[tokio::test]
async fn bodies_in_memory_are_bounded_and_excess_requests_wait_their_turn() {
    let handler = Arc::new(Concurrency::default());
    let shared = handler.clone();
    // Room for one 40 KiB message at a time.
    let options = ServerOptions {
        max_body: "64KiB",
        http_extra: "max_inflight_body = \"64KiB\"".into(),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(options, move |_| Handlers::new(shared)).await;
    let mut big = minimal_message();
    big["entry"][1]["resource"]["note"] = serde_json::json!([{"text": "x".repeat(40 * 1024)}]);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (client, addr, body) = (server.client(), server.addr, big.to_string());
            tokio::spawn(async move { client.send(addr, Bars::default().message(body)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200, "waiting for room is not a refusal");
    }
    assert_eq!(
        handler.most.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one body in memory at a time"
    );
}
