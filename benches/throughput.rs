//! Throughput figures (not a test: nothing is asserted). Run with
//! `cargo bench --bench throughput`. It prints:
//!
//! - inbox commits per second, one at a time versus 64 in flight (the group-commit ratio);
//! - `$process-message` over real mutual TLS (h2, 16 concurrent): requests per second and
//!   latency percentiles.
//!
//! Bounded in count; numbers vary with the machine and its load, so compare runs on the same
//! machine only.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bars_receiver::{Store, store::NewMessage};
use common::*;
use serde_json::json;
use uuid::Uuid;

fn message() -> NewMessage {
    NewMessage {
        id: Uuid::new_v4().to_string(),
        received_at: "2026-01-01T00:00:00.000000Z".into(),
        request_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        bundle_id: "b".into(),
        event: "servicerequest-request".into(),
        reason: "new".into(),
        target: None,
        headers: json!({}),
        peer: json!({}),
        body: minimal_message().to_string().into(),
    }
}

async fn inbox_commits(in_flight: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let started = Instant::now();
    let per_task = total / in_flight;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    store.insert_message(message()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * in_flight) as f64 / started.elapsed().as_secs_f64()
}

async fn end_to_end(concurrency: usize, total: usize) -> (f64, Vec<Duration>) {
    let server = Arc::new(TestServer::start(ServerOptions::default()).await);
    let send = server.client().h2(server.addr).await;
    let started = Instant::now();
    let per_task = total / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut send = send.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    let reply = Reply::read(
                        send.send_request(Bars::default().message(minimal_message().to_string()))
                            .await
                            .unwrap(),
                    )
                    .await;
                    assert_eq!(reply.status, 200);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let one = inbox_commits(1, 400).await;
    let many = inbox_commits(64, 2560).await;
    println!("inbox commits, 1 in flight:   {one:>8.0}/s");
    println!(
        "inbox commits, 64 in flight:  {many:>8.0}/s   (group commit: {:.1}x)",
        many / one
    );

    let (rate, latencies) = end_to_end(16, 1600).await;
    println!("process-message over mTLS h2, 16 concurrent: {rate:>6.0} req/s");
    println!(
        "  latency p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
}
