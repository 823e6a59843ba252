//! Durable `$process-message` throughput on each store (not a test: nothing is asserted).
//! Run with `cargo bench --bench replicas`; it needs PostgreSQL at `TEST_POSTGRES_URL` (by
//! default `postgres://postgres@127.0.0.1:5432/test`), where it makes a database of its own.
//!
//! 64 concurrent senders, each on its own mutual-TLS h2 connection, post the NHS example
//! bundle (18.7 KB) with a fresh `X-Request-Id` each, spread over the replicas; every 200 is
//! an acknowledged, committed message. It prints acknowledged messages per second, p50 and
//! p99 for one SQLite instance, one replica on PostgreSQL and three replicas on one
//! PostgreSQL database, and each figure as a ratio to SQLite's. The replicas run in this
//! process (each with its own store and connection pool), so they share its two cores with
//! the load and with PostgreSQL: compare ratios from one run, on one machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::TestDatabase;
use common::*;

const SENDERS: usize = 64;
const PER_SENDER: usize = 40;

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(servers: &[TestServer], body: Arc<String>) -> Figures {
    let mut connections = Vec::with_capacity(SENDERS);
    for i in 0..SENDERS {
        let server = &servers[i % servers.len()];
        connections.push(server.client().h2(server.addr).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut send| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(PER_SENDER);
                for _ in 0..PER_SENDER {
                    let t = Instant::now();
                    let reply = Reply::read(
                        send.send_request(Bars::default().message(body.to_string()))
                            .await
                            .unwrap(),
                    )
                    .await;
                    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
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
    let at = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    Figures {
        rate,
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn postgres(url: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            "[store]\nkind = \"postgres\"\nurl = \"{url}\"\ntls = \"insecure-disabled\"\npool_size = 32\n"
        ),
        ..ServerOptions::default()
    }
}

async fn servers(n: usize, options: &ServerOptions) -> Vec<TestServer> {
    let pki = Arc::new(TestPki::new());
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(TestServer::start_configured_with_pki(pki.clone(), options.clone()).await);
    }
    servers
}

fn line(name: &str, f: &Figures, baseline: f64) {
    println!(
        "{name:<32} {:>7.0} acks/s   p50 {:>7.1} ms   p99 {:>7.1} ms   {:>5.2}x SQLite",
        f.rate,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.rate / baseline
    );
}

#[tokio::main]
async fn main() {
    let body = Arc::new(
        std::fs::read_to_string(fixtures().join("examples1.4.0/process_message/POST-body.json")).unwrap(),
    );
    println!(
        "durable $process-message, {SENDERS} senders x {PER_SENDER}, {} bytes each",
        body.len()
    );
    let sqlite = run(&servers(1, &ServerOptions::default()).await, body.clone()).await;
    line("SQLite, one instance", &sqlite, sqlite.rate);

    let db = TestDatabase::new();
    let one = run(&servers(1, &postgres(db.url())).await, body.clone()).await;
    line("PostgreSQL, one replica", &one, sqlite.rate);
    let three = run(&servers(3, &postgres(db.url())).await, body.clone()).await;
    line("PostgreSQL, three replicas", &three, sqlite.rate);
}
