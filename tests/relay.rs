//! `[handler] kind = "relay"` end to end: messages acknowledged once durable, then delivered
//! by the worker to an in-process upstream with the BaRS headers and the X-Request-Id as
//! idempotency key; retries with backoff, dead letters, `inbox retry` and `inbox purge`
//! through the real binary, arrival order within a conversation while other conversations
//! proceed, and the other routes forwarded synchronously.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bars_receiver::{Store, store::DeliveryState, store::DeliveryStatus};
use common::upstream::{Behaviour, Recorded, Script, TestUpstream, echo};
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn relay_options(url: &str, extra: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            "[handler]\nkind = \"relay\"\n[upstream]\nurl = \"{url}\"\nretry_base = \"50ms\"\nretry_cap = \"200ms\"\n{extra}\n"
        ),
        ..ServerOptions::default()
    }
}

fn status(server: &TestServer, id: &str) -> Option<DeliveryStatus> {
    let store = Store::open_read_only(&server.inbox_path).unwrap();
    let id = id.to_owned();
    common::blocking(async move { store.delivery_status(&id).await })
        .unwrap()
        .expect("message stored")
}

/// Polls the inbox until the message `id` is in `state`.
async fn wait_state(server: &TestServer, id: &str, state: DeliveryState) -> DeliveryStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status(server, id).expect("relayed");
        if now.state == state {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{id} still {now:?}, expected {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(feature = "cli")]
fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bars-receiver"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = crate::common::output_text(&out);
    (out.status.code().unwrap_or(-1), text)
}

fn request_id(r: &Recorded) -> String {
    r.header("x-request-id").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn acknowledges_then_delivers_with_bars_headers_and_idempotency_key() {
    let upstream = TestUpstream::start("/provider", echo()).await;
    let server = TestServer::start_configured(relay_options(
        &upstream.url,
        "interactions = [\"appointment-read\"]",
    ))
    .await;
    let bars = Bars::default();
    let body = serde_json::to_string_pretty(&minimal_message()).unwrap();
    let reply = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["type"], "message", "the 200 echoes the bundle");

    let delivered = wait_state(&server, &bars.request_id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 1);
    let r = &upstream.records()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/provider/$process-message")
    );
    assert_eq!(
        r.body_text(),
        String::from_utf8_lossy(&reply.body),
        "the body as answered: with the receiver ids"
    );
    assert_eq!(r.header("content-type"), Some("application/fhir+json"));
    assert_eq!(r.header("x-request-id"), Some(bars.request_id.as_str()));
    assert_eq!(r.header("idempotency-key"), Some(bars.request_id.as_str()));
    assert_eq!(r.header("x-correlation-id"), Some(bars.correlation_id.as_str()));
    assert_eq!(
        r.header("nhsd-target-identifier"),
        Some(bars_receiver::fhir::encode_header_json(&bars.target).as_str())
    );
    assert_eq!(r.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.header_all("x-forwarded-proto"), ["https"]);
    assert!(r.header("x-forwarded-client-cert").unwrap().starts_with("Hash="));

    // De-duplication stays in front: the retry is a 409 and is not delivered again.
    let again = server.client().send(server.addr, bars.message(body)).await;
    again.assert_outcome(409, "REC_CONFLICT", "duplicate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.records().len(), 1);

    // The other interactions the upstream implements are forwarded synchronously.
    let read = server
        .client()
        .send(
            server.addr,
            Bars::default().get("/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"),
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(
        upstream.records().last().unwrap().path,
        "/provider/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049"
    );
}

#[tokio::test]
async fn retries_with_backoff_until_delivered() {
    let flaky: Script = Arc::new(|_: &Recorded, index| {
        if index < 2 {
            Behaviour::text(503, "maintenance")
        } else {
            Behaviour::json(200, &json!({"resourceType": "Bundle"}))
        }
    });
    let upstream = TestUpstream::start("", flaky).await;
    let server = TestServer::start_configured(relay_options(&upstream.url, "")).await;
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    assert_eq!(reply.status, 200, "accepted although the upstream is down");
    let delivered = wait_state(&server, &bars.request_id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 3);
    let records = upstream.records();
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| request_id(r) == bars.request_id),
        "same idempotency key"
    );
}

#[cfg(feature = "cli")]
#[tokio::test]
async fn dead_letters_after_max_attempts_then_inbox_retry_and_purge() {
    let upstream = TestUpstream::start("", Arc::new(|_: &Recorded, _| Behaviour::text(503, "down"))).await;
    let options = ServerOptions {
        admin: true,
        ..relay_options(&upstream.url, "max_attempts = 3")
    };
    let server = TestServer::start_configured(options).await;
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    assert_eq!(reply.status, 200);
    let dead = wait_state(&server, &bars.request_id, DeliveryState::Dead).await;
    assert_eq!(dead.attempts, 3);
    // The dead letter is visible to monitoring, not only in the logs.
    let metrics = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://{}/metrics", server.admin.unwrap()),
        ])
        .output()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("bars_receiver_deliveries{kind=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bars_receiver_deliveries{kind=\"pending\"} 0"),
        "{metrics}"
    );
    let error = dead.last_error.unwrap();
    assert!(
        error.contains("gave up after 3") && error.contains("HTTP 503"),
        "{error}"
    );
    assert_eq!(upstream.records().len(), 3);

    let db = server.inbox_path.display().to_string();
    let (code, list) = cli(&["inbox", "--db", &db, "list"]);
    assert_eq!(code, 0, "{list}");
    assert!(list.contains("dead/3"), "{list}");
    assert!(list.contains("last error: gave up after 3"), "{list}");

    // Still down: nothing more is tried on its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.records().len(), 3);

    upstream.set_script(echo());
    let (code, out) = cli(&["inbox", "--db", &db, "retry", &bars.request_id]);
    assert_eq!(code, 0, "{out}");
    let delivered = wait_state(&server, &bars.request_id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 1, "a fresh count of attempts");
    assert_eq!(upstream.records().len(), 4);
    let (code, list) = cli(&["inbox", "--db", &db, "list"]);
    assert_eq!(code, 0);
    assert!(list.contains("delivered/1"), "{list}");

    let (code, out) = cli(&["inbox", "--db", &db, "retry", &bars.request_id]);
    assert_eq!(code, 1, "only dead letters are retried: {out}");
    assert!(out.contains("delivered"), "{out}");
    let (code, out) = cli(&["inbox", "--db", &db, "retry", "no-such-message"]);
    assert_eq!(code, 1, "{out}");

    let (code, out) = cli(&["inbox", "--db", &db, "purge", "--delivered-before", "2000-01-01"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("purged 0"), "{out}");
    let (code, out) = cli(&[
        "inbox",
        "--db",
        &db,
        "purge",
        "--delivered-before",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("purged 1"), "{out}");
    assert_eq!(server.inbox_count(), 0);
    let (code, out) = cli(&["inbox", "--db", &db, "purge", "--delivered-before", "soon"]);
    assert_eq!(code, 64, "{out}");
}

#[cfg(feature = "cli")]
#[tokio::test]
async fn a_refusal_is_a_dead_letter_at_once_and_holds_its_conversation() {
    let refuse = Arc::new(std::sync::Mutex::new(String::new()));
    let refused = refuse.clone();
    let script: Script = Arc::new(move |r: &Recorded, _| {
        if request_id(r) == *refused.lock().unwrap() {
            Behaviour::json(
                400,
                &json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "unknown patient"}]}),
            )
        } else {
            Behaviour::json(200, &json!({"resourceType": "Bundle"}))
        }
    });
    let upstream = TestUpstream::start("", script).await;
    let server = TestServer::start_configured(relay_options(&upstream.url, "")).await;
    let a1 = Bars::default();
    *refuse.lock().unwrap() = a1.request_id.clone();
    let a2 = Bars {
        correlation_id: a1.correlation_id.clone(),
        ..Bars::default()
    };
    let b1 = Bars::default();
    for bars in [&a1, &a2, &b1] {
        let reply = server
            .client()
            .send(server.addr, bars.message(minimal_message().to_string()))
            .await;
        assert_eq!(reply.status, 200);
    }
    let dead = wait_state(&server, &a1.request_id, DeliveryState::Dead).await;
    assert_eq!(dead.attempts, 1, "a refusal is not retried");
    assert!(dead.last_error.unwrap().contains("HTTP 400: unknown patient"));
    wait_state(&server, &b1.request_id, DeliveryState::Delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = status(&server, &a2.request_id).unwrap();
    assert!(held.held && held.state == DeliveryState::Pending, "{held:?}");
    assert!(
        upstream.records().iter().all(|r| request_id(r) != a2.request_id),
        "a2 never overtakes a1"
    );

    *refuse.lock().unwrap() = String::new();
    let db = server.inbox_path.display().to_string();
    let (code, out) = cli(&["inbox", "--db", &db, "retry", &a1.request_id]);
    assert_eq!(code, 0, "{out}");
    wait_state(&server, &a2.request_id, DeliveryState::Delivered).await;
    let order: Vec<String> = upstream
        .records()
        .iter()
        .map(request_id)
        .filter(|id| *id == a1.request_id || *id == a2.request_id)
        .collect();
    assert_eq!(
        order,
        [
            a1.request_id.clone(),
            a1.request_id.clone(),
            a2.request_id.clone()
        ]
    );
}

#[tokio::test]
async fn delivers_in_arrival_order_within_a_conversation_while_others_proceed() {
    // The head of conversation A fails until conversation B has been delivered: A can only
    // get through if B was not stuck behind it.
    let b_seen = Arc::new(AtomicBool::new(false));
    let a_head = Arc::new(std::sync::Mutex::new(String::new()));
    let b_id = Arc::new(std::sync::Mutex::new(String::new()));
    let script: Script = {
        let (b_seen, a_head, b_id) = (b_seen.clone(), a_head.clone(), b_id.clone());
        Arc::new(move |r: &Recorded, _| {
            let id = request_id(r);
            if id == *b_id.lock().unwrap() {
                b_seen.store(true, Ordering::SeqCst);
            }
            if id == *a_head.lock().unwrap() && !b_seen.load(Ordering::SeqCst) {
                return Behaviour::text(503, "busy");
            }
            Behaviour::json(200, &json!({"resourceType": "Bundle"}))
        })
    };
    let upstream = TestUpstream::start("", script).await;
    let server = TestServer::start_configured(relay_options(&upstream.url, "")).await;
    let first = Bars::default();
    *a_head.lock().unwrap() = first.request_id.clone();
    let mut conversation_a = vec![first.request_id.clone()];
    let send = |bars: Bars| {
        let client = server.client();
        let addr = server.addr;
        async move {
            let reply = client
                .send(addr, bars.message(minimal_message().to_string()))
                .await;
            assert_eq!(reply.status, 200);
        }
    };
    send(Bars {
        request_id: first.request_id.clone(),
        correlation_id: first.correlation_id.clone(),
        ..Bars::default()
    })
    .await;
    for _ in 0..4 {
        let next = Bars {
            correlation_id: first.correlation_id.clone(),
            ..Bars::default()
        };
        conversation_a.push(next.request_id.clone());
        send(next).await;
    }
    // Let A's head fail at least once before B arrives.
    upstream
        .wait_until(WAIT, "a first failed attempt", |r| !r.is_empty())
        .await;
    let b = Bars::default();
    *b_id.lock().unwrap() = b.request_id.clone();
    let b_request = b.request_id.clone();
    send(b).await;

    wait_state(&server, conversation_a.last().unwrap(), DeliveryState::Delivered).await;
    let records = upstream.records();
    let ids: Vec<String> = records.iter().map(request_id).collect();
    let mut delivered_a: Vec<String> = ids
        .iter()
        .filter(|id| conversation_a.contains(id))
        .cloned()
        .collect();
    delivered_a.dedup();
    assert_eq!(delivered_a, conversation_a, "conversation A in arrival order");
    let b_at = ids.iter().position(|id| *id == b_request).unwrap();
    let a_head_last = ids.iter().rposition(|id| *id == conversation_a[0]).unwrap();
    assert!(
        b_at < a_head_last,
        "B was delivered while A's head was still failing: {ids:?}"
    );
    for id in &conversation_a {
        assert_eq!(status(&server, id).unwrap().state, DeliveryState::Delivered);
    }
}

#[tokio::test]
async fn a_server_given_its_own_handlers_runs_no_relay_worker_whatever_the_configuration_says() {
    let upstream = TestUpstream::start("/provider", echo()).await;
    // The configuration names relay, but the integrator passes handlers of its own: a relay
    // messaging handler without the delivery worker that `RelayHandler::handlers` carries.
    let server = TestServer::start_with(relay_options(&upstream.url, ""), |store| {
        bars_receiver::Handlers::new(bars_receiver::handler::RelayHandler::new(store))
    })
    .await;
    let bars = Bars::default();
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        upstream.records().is_empty(),
        "nothing delivers without the worker"
    );
    let owed = status(&server, &bars.request_id).expect("committed for delivery");
    assert_eq!((owed.state, owed.attempts), (DeliveryState::Pending, 0));
}
