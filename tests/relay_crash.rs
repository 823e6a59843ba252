//! The real binary with `kind = relay` (`serve --dev` plus `BARS_` overrides), killed with
//! SIGKILL while deliveries are in flight and others wait behind them, then restarted: every
//! message it acknowledged reaches the upstream at least once, each conversation in arrival
//! order, and nothing is lost.

#![cfg(all(feature = "cli", feature = "dev-tools"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bars_receiver::{Store, store::DeliveryState};
use common::upstream::{Behaviour, Recorded, Script, TestUpstream};
use common::{BIN, bin};
use serde_json::json;

/// `serve --dev` relaying to `upstream`; returns the child and the curl it printed.
fn serve_relay(dir: &Path, upstream: &str) -> (Child, String) {
    let mut child = bin(dir)
        .args(["serve", "--dev"])
        .env("BARS_LISTEN__ADDRESS", "127.0.0.1:0")
        .env("BARS_LOG__FORMAT", "json")
        .env("BARS_HANDLER__KIND", "relay")
        .env("BARS_UPSTREAM__URL", upstream)
        .env("BARS_UPSTREAM__TIMEOUT", "120s")
        .env("BARS_UPSTREAM__RETRY_BASE", "100ms")
        .env("BARS_UPSTREAM__RETRY_CAP", "500ms")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve --dev");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut curl = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("curl ") || (!curl.is_empty() && !sent) {
                curl.push_str(line.trim_end_matches('\\'));
                curl.push(' ');
                if line.contains("process-message'") && !sent {
                    let _ = tx.send(curl.clone());
                    sent = true;
                }
            }
        }
    });
    let curl = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve --dev prints a curl command");
    (child, curl)
}

/// The printed curl with its two ids replaced; returns the HTTP status.
fn post(dir: &Path, curl: &str, request_id: &str, correlation_id: &str) -> String {
    let old_request = &curl.split("X-Request-Id: ").nth(1).unwrap()[..36];
    let old_correlation = &curl.split("X-Correlation-Id: ").nth(1).unwrap()[..36];
    let command = curl
        .replacen(old_request, request_id, 1)
        .replacen(old_correlation, correlation_id, 1);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -sS -o /dev/null -w '%{{http_code}}'"))
        .current_dir(dir)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn request_id(r: &Recorded) -> String {
    r.header("x-request-id").unwrap_or_default().to_owned()
}

fn delivery_states(db: &Path, ids: &[String]) -> Vec<DeliveryState> {
    let store = Store::open_read_only(db).unwrap();
    let ids = ids.to_vec();
    common::blocking(async move {
        let mut states = Vec::new();
        for id in &ids {
            states.push(store.delivery_status(id).await.unwrap().unwrap().unwrap().state);
        }
        states
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_deliveries_loses_no_accepted_message() {
    // Phase 1: the upstream takes every delivery and never answers.
    let hang: Script = Arc::new(|_: &Recorded, _| {
        Behaviour::Delay(
            Duration::from_secs(600),
            Box::new(Behaviour::text(200, "too late")),
        )
    });
    let upstream = TestUpstream::start("/sys", hang).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let url = upstream.url.clone();
    let (mut child, curl) = tokio::task::spawn_blocking({
        let d = d.clone();
        move || serve_relay(&d, &url)
    })
    .await
    .unwrap();

    // Three conversations of four messages, interleaved.
    let conversations: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut accepted: Vec<(String, String)> = Vec::new();
    for round in 0..4 {
        for correlation in &conversations {
            let request = uuid::Uuid::new_v4().to_string();
            let (d, curl, r, c) = (d.clone(), curl.clone(), request.clone(), correlation.clone());
            let code = tokio::task::spawn_blocking(move || post(&d, &curl, &r, &c))
                .await
                .unwrap();
            assert_eq!(code, "200", "message {round} of {correlation} accepted");
            accepted.push((request, correlation.clone()));
        }
    }
    // Each conversation's head is in flight at the (silent) upstream; the rest wait.
    upstream
        .wait_until(Duration::from_secs(60), "three deliveries in flight", |r| {
            r.len() >= 3
        })
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let in_flight_at_kill = upstream.records().len();
    assert_eq!(
        in_flight_at_kill, 3,
        "one in flight per conversation, the others held back"
    );

    let db = d.join("data/inbox.db");
    let ids: Vec<String> = accepted.iter().map(|(r, _)| r.clone()).collect();
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(
        store.count().await.unwrap(),
        12,
        "every acknowledged message is in the inbox"
    );
    drop(store);
    assert!(
        delivery_states(&db, &ids)
            .iter()
            .all(|s| *s == DeliveryState::Pending),
        "nothing was delivered before the kill"
    );

    // Phase 2: the upstream answers; the receiver restarts on the same inbox.
    upstream.set_script(Arc::new(|_: &Recorded, _| {
        Behaviour::json(200, &json!({"resourceType": "Bundle", "type": "message"}))
    }));
    let url = upstream.url.clone();
    let (mut child, _) = tokio::task::spawn_blocking({
        let d = d.clone();
        move || serve_relay(&d, &url)
    })
    .await
    .unwrap();
    let records = upstream
        .wait_until(Duration::from_secs(120), "every accepted message", |records| {
            ids.iter().all(|id| records.iter().any(|r| request_id(r) == *id))
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !delivery_states(&db, &ids)
        .iter()
        .all(|s| *s == DeliveryState::Delivered)
    {
        assert!(Instant::now() < deadline, "deliveries not all recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After the restart each conversation was delivered in arrival order.
    let after: Vec<String> = records[in_flight_at_kill..].iter().map(request_id).collect();
    for correlation in &conversations {
        let expected: Vec<&String> = accepted
            .iter()
            .filter(|(_, c)| c == correlation)
            .map(|(r, _)| r)
            .collect();
        let got: Vec<&String> = after.iter().filter(|id| expected.contains(id)).collect();
        assert_eq!(got, expected, "conversation {correlation}");
    }
    for r in &records {
        assert_eq!(r.path, "/sys/$process-message");
        assert_eq!(r.header("idempotency-key"), r.header("x-request-id"));
        assert!(r.header("x-forwarded-client-cert").is_some());
    }

    let out = Command::new(BIN)
        .current_dir(&d)
        .args(["inbox", "--db", "data/inbox.db", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert_eq!(list.matches("delivered/").count(), 12, "{list}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM is a clean stop: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
