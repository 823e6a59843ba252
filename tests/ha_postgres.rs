//! Several replicas of the real binary on one PostgreSQL (`[store] kind = "postgres"`): every
//! acknowledged message stored once whichever replica took it, one 200 for an X-Request-Id
//! sent to all of them at once, nothing acknowledged lost when a replica is killed or the
//! database stops, relay deliveries shared out in conversation order and taken over from a
//! dead replica, TLS to the database, and `inbox migrate` from an SQLite inbox. Also the
//! PostgreSQL helpers themselves (`common::postgres`).

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicas;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::postgres::{PrivateServer, TestDatabase, psql};
use crate::common::upstream::{Behaviour, Recorded, Script, TestUpstream};
use crate::common::{Bars, Reply, TestClient, minimal_message, pki};
use replicas::{Cluster, PATIENCE, Replica, postgres_store, rec_code, request_id_counts};

// ---------------------------------------------------------------------------------------
// The helpers.

#[test]
fn a_test_database_is_the_tests_own_and_is_dropped_afterwards() {
    let db = TestDatabase::new();
    let name = db.name.clone();
    assert!(name.starts_with("bars_test_"), "{name}");
    db.query("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
    assert_eq!(db.query("SELECT x FROM t"), "42");
    assert_eq!(db.query("SELECT current_database()"), name);
    // A connection left open (a killed receiver's) does not keep the database alive.
    let mut open = std::process::Command::new("psql")
        .args(["-X", "-d", db.url(), "-c", "SELECT pg_sleep(600)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while db.query(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    )) != "1"
    {
        assert!(Instant::now() < deadline, "the sleeping connection never showed");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(db);
    let admin = "postgres://postgres@127.0.0.1:5432/test";
    assert_eq!(
        psql(
            admin,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")
        )
        .unwrap(),
        "0",
        "dropped"
    );
    let _ = open.kill();
    let _ = open.wait();
}

#[test]
fn a_private_server_keeps_its_port_and_data_across_a_stop_and_a_start() {
    let mut pg = PrivateServer::new();
    let url = pg.psql_url();
    pg.query("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    let port = pg.port();
    pg.stop();
    let down = psql(&url, "SELECT 1").expect_err("stopped");
    assert!(
        down.contains("refused") || down.contains("could not connect"),
        "{down}"
    );
    pg.start();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.query("SELECT x FROM t"), "7", "the same data directory");
    assert!(pg.url().contains(&format!("127.0.0.1:{port}/")));
}

#[test]
fn a_private_server_with_tls_admits_verified_tls_connections_only() {
    let pg = PrivateServer::new_with_tls();
    let tls = pg.tls().unwrap();
    assert!(tls.ca_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(pg.query("SHOW ssl"), "on");
    assert_eq!(
        pg.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        "t",
        "psql_url connects over TLS"
    );
    let plain = psql(&format!("{}?sslmode=disable", pg.url()), "SELECT 1").expect_err("plaintext refused");
    assert!(plain.contains("no pg_hba.conf entry"), "{plain}");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, pki::ca("Another CA", None).pem).unwrap();
    let wrong = psql(
        &format!("{}?sslmode=verify-full&sslrootcert={}", pg.url(), other.display()),
        "SELECT 1",
    )
    .expect_err("a certificate from another CA is refused");
    assert!(wrong.contains("certificate verify failed"), "{wrong}");
}

// ---------------------------------------------------------------------------------------
// Several replicas on one database.

/// What one attempt to deliver a message to the receivers ended with.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    /// 200.
    Acknowledged,
    /// 409 `duplicate`: an earlier attempt (whose answer was lost) was processed.
    Duplicate,
}

/// Sends one message like a sender that retries: on a refused or cut connection, a 503 or
/// a 425 it tries the next replica, with the same X-Request-Id and body, until a 200 or a
/// 409 duplicate (bounded). Any other answer panics.
async fn send_until_settled(
    cluster: &Cluster,
    addrs: &[SocketAddr],
    first: usize,
    bars: &Bars,
    body: &str,
) -> Ended {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    for attempt in 0.. {
        let addr = addrs[(first + attempt) % addrs.len()];
        match cluster.send_message(addr, bars, body).await {
            Ok(r) if r.status == 200 => return Ended::Acknowledged,
            Ok(r) if r.status == 409 => {
                r.assert_outcome(409, "REC_CONFLICT", "duplicate");
                return Ended::Duplicate;
            }
            Ok(r) if r.status == 425 => {
                r.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
                seen.push("425".to_owned());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(r) if r.status == 503 => {
                assert_eq!(rec_code(&r).as_deref(), Some("REC_SERVICE_UNAVAILABLE"), "{r:?}");
                seen.push("503".to_owned());
            }
            Ok(r) => panic!(
                "{}: unexpected {} {}",
                bars.request_id,
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => seen.push(e),
        }
        assert!(
            Instant::now() < deadline,
            "{} not settled within {PATIENCE:?}: {seen:?}",
            bars.request_id
        );
    }
    unreachable!()
}

fn config_source(config: &std::path::Path) -> [String; 2] {
    ["--config".into(), config.display().to_string()]
}

fn export(cluster: &Cluster, config: &std::path::Path) -> Vec<Value> {
    let source = config_source(config);
    cluster.export(&[&source[0], &source[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_store_every_acknowledged_message_once() {
    let db = TestDatabase::new();
    let cluster = Arc::new(Cluster::new());
    let config = cluster.config("replica", &postgres_store(db.url(), ""));
    let replicas: Vec<Replica> = (0..3).map(|_| cluster.start(&config)).collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 3, "distinct ports");

    // 16 clients, each sending 12 messages spread over the three replicas.
    let mut clients = Vec::new();
    for client in 0..16 {
        let (cluster, addrs) = (cluster.clone(), addrs.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..12 {
                let bars = Bars::default();
                let reply = cluster
                    .send_message(addrs[(client + n) % 3], &bars, &minimal_message().to_string())
                    .await
                    .unwrap();
                assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
                acknowledged.push(bars.request_id);
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 16 * 12);

    // Every replica's inbox command sees the one shared store.
    let counts = request_id_counts(&export(&cluster, &config));
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "{id} stored exactly once");
    }
    assert_eq!(counts.len(), acknowledged.len(), "nothing else stored");
    assert!(counts.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_id_at_three_replicas_at_once_is_processed_once() {
    let db = TestDatabase::new();
    let cluster = Cluster::new();
    let config = cluster.config("replica", &postgres_store(db.url(), ""));
    let replicas: Vec<Replica> = (0..3).map(|_| cluster.start(&config)).collect();
    // One h2 connection per replica, open before the rounds: the three requests of a round
    // leave together, without handshakes between them.
    let client = TestClient::new(&cluster.pki, Some(&cluster.pki.client));
    let mut connections = Vec::new();
    for r in &replicas {
        connections.push(client.h2(r.addr).await);
    }
    let mut ids = Vec::new();
    let mut too_early = 0;
    for round in 0..200 {
        let bars = Bars::default();
        let body = minimal_message().to_string();
        let start = Arc::new(tokio::sync::Barrier::new(3));
        let mut sends = Vec::new();
        for connection in &connections {
            let (mut connection, start) = (connection.clone(), start.clone());
            let request = bars.message(body.clone());
            sends.push(tokio::spawn(async move {
                start.wait().await;
                let response = connection.send_request(request).await.expect("h2 request");
                Reply::read(response).await
            }));
        }
        let mut replies = Vec::new();
        for send in sends {
            replies.push(send.await.unwrap());
        }
        let ok = replies.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "round {round}: exactly one 200: {:?}",
            replies
                .iter()
                .map(|r| (r.status, rec_code(r)))
                .collect::<Vec<_>>()
        );
        for r in replies.iter().filter(|r| r.status != 200) {
            match r.status {
                425 => {
                    r.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
                    too_early += 1;
                }
                _ => r.assert_outcome(409, "REC_CONFLICT", "duplicate"),
            }
        }
        ids.push(bars.request_id);
    }
    eprintln!("{too_early} of the 400 other answers were 425, the rest 409 duplicate");
    let counts = request_id_counts(&export(&cluster, &config));
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "{id} stored exactly once");
    }
    assert_eq!(counts.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_load_loses_no_acknowledged_message() {
    let db = TestDatabase::new();
    let cluster = Arc::new(Cluster::new());
    // A short lease: a claim left by a killed replica blocks the sender's retry (425) for
    // two seconds, then the retry is processed elsewhere.
    let config = cluster.config("replica", &postgres_store(db.url(), "claim_lease = \"2s\""));
    let mut replicas: Vec<Replica> = (0..3).map(|_| cluster.start(&config)).collect();
    let settled: Arc<Mutex<Vec<(String, Ended)>>> = Arc::default();
    for round in 0..20 {
        let victim = round % 3;
        let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for sender in 0..6 {
            let (cluster, addrs, stop, done, settled) = (
                cluster.clone(),
                addrs.clone(),
                stop.clone(),
                done.clone(),
                settled.clone(),
            );
            senders.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let bars = Bars::default();
                    let body = minimal_message().to_string();
                    let ended = send_until_settled(&cluster, &addrs, sender + n, &bars, &body).await;
                    settled.lock().unwrap().push((bars.request_id, ended));
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            }));
        }
        let wait_for = |count: usize| {
            let done = done.clone();
            async move {
                let deadline = Instant::now() + PATIENCE;
                while done.load(Ordering::SeqCst) < count {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: stuck below {count} messages"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        wait_for(6).await;
        replicas[victim].kill9();
        let at_kill = done.load(Ordering::SeqCst);
        wait_for(at_kill + 12).await;
        stop.store(true, Ordering::SeqCst);
        for sender in senders {
            sender.await.unwrap();
        }
        replicas[victim] = cluster.start(&config);
    }

    let settled = settled.lock().unwrap().clone();
    let counts = request_id_counts(&export(&cluster, &config));
    let mut sent = HashSet::new();
    for (id, ended) in &settled {
        assert!(sent.insert(id.clone()));
        assert_eq!(counts.get(id), Some(&1), "{id} ({ended:?}) stored exactly once");
    }
    assert!(counts.values().all(|&n| n == 1), "no duplicate rows");
    assert_eq!(
        counts.len(),
        settled.len(),
        "nothing stored that its sender was not finally answered for"
    );
    let duplicates = settled.iter().filter(|(_, e)| *e == Ended::Duplicate).count();
    eprintln!(
        "{} messages over 20 kills, {duplicates} settled by a 409 duplicate",
        settled.len()
    );
}

// ---------------------------------------------------------------------------------------
// Relay.

fn request_id(r: &Recorded) -> String {
    r.header("x-request-id").unwrap_or_default().to_owned()
}

fn relay_sections(url: &str, upstream: &str, timeout: &str) -> String {
    format!(
        "{}[handler]\nkind = \"relay\"\n[upstream]\nurl = \"{upstream}\"\ntimeout = \"{timeout}\"\n\
         retry_base = \"200ms\"\nretry_cap = \"1s\"\n",
        postgres_store(url, "")
    )
}

/// Polls `inbox list` until every message in `ids` is delivered (bounded).
fn wait_all_delivered(cluster: &Cluster, config: &std::path::Path, ids: &[String]) {
    let source = config_source(config);
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        let rows = cluster.list(&[&source[0], &source[1]]);
        let delivered: HashSet<String> = rows
            .iter()
            .filter(|r| r["delivery"]["state"] == "delivered")
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        if ids.iter().all(|id| delivered.contains(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all recorded delivered: {}",
            serde_json::to_string_pretty(&rows).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `accepted` (request id, correlation id) in arrival order: each conversation's requests
/// among `delivered` (request ids in the upstream's order) are exactly its own, in order.
fn assert_conversation_order(accepted: &[(String, String)], delivered: &[String]) {
    let conversations: HashSet<&String> = accepted.iter().map(|(_, c)| c).collect();
    for correlation in conversations {
        let expected: Vec<&String> = accepted
            .iter()
            .filter(|(_, c)| c == correlation)
            .map(|(r, _)| r)
            .collect();
        let got: Vec<&String> = delivered.iter().filter(|id| expected.contains(id)).collect();
        assert_eq!(got, expected, "conversation {correlation}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relay_replicas_deliver_every_message_once_in_conversation_order() {
    let db = TestDatabase::new();
    let upstream = TestUpstream::start(
        "/provider",
        Arc::new(|_: &Recorded, _| {
            Behaviour::json(200, &json!({"resourceType": "Bundle", "type": "message"}))
        }),
    )
    .await;
    let cluster = Cluster::new();
    let config = cluster.config("relay", &relay_sections(db.url(), &upstream.url, "10s"));
    let replicas = [cluster.start(&config), cluster.start(&config)];
    let conversations: Vec<String> = (0..6).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut accepted = Vec::new();
    for round in 0..6 {
        for (c, correlation) in conversations.iter().enumerate() {
            let bars = Bars {
                correlation_id: correlation.clone(),
                ..Bars::default()
            };
            let replica = &replicas[(round + c) % 2];
            let reply = cluster
                .send_message(replica.addr, &bars, &minimal_message().to_string())
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            accepted.push((bars.request_id, correlation.clone()));
        }
    }
    let ids: Vec<String> = accepted.iter().map(|(r, _)| r.clone()).collect();
    let records = upstream
        .wait_until(PATIENCE * 2, "every accepted message", |records| {
            ids.iter().all(|id| records.iter().any(|r| request_id(r) == *id))
        })
        .await;
    wait_all_delivered(&cluster, &config, &ids);
    // Settled: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = {
        let later = upstream.records();
        assert_eq!(later.len(), records.len(), "no late duplicate");
        later
    };
    let delivered: Vec<String> = records.iter().map(request_id).collect();
    for r in &records {
        assert_eq!(r.path, "/provider/$process-message");
        assert_eq!(r.header("idempotency-key"), r.header("x-request-id"));
    }
    assert_eq!(
        delivered.iter().collect::<HashSet<_>>().len(),
        delivered.len(),
        "each message delivered once when no replica fails: {delivered:?}"
    );
    assert_conversation_order(&accepted, &delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_of_a_killed_relay_replica_are_taken_over_after_their_lease() {
    let db = TestDatabase::new();
    // The upstream takes every delivery and never answers, until told otherwise.
    let hang: Script = Arc::new(|_: &Recorded, _| {
        Behaviour::Delay(
            Duration::from_secs(600),
            Box::new(Behaviour::text(200, "too late")),
        )
    });
    let upstream = TestUpstream::start("", hang).await;
    let cluster = Cluster::new();
    // Lease: timeout + retry_base, about 5 s.
    let config = cluster.config("relay", &relay_sections(db.url(), &upstream.url, "5s"));
    let mut first = cluster.start(&config);
    let conversations: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut accepted = Vec::new();
    for _ in 0..3 {
        for correlation in &conversations {
            let bars = Bars {
                correlation_id: correlation.clone(),
                ..Bars::default()
            };
            let reply = cluster
                .send_message(first.addr, &bars, &minimal_message().to_string())
                .await
                .unwrap();
            assert_eq!(reply.status, 200);
            accepted.push((bars.request_id, correlation.clone()));
        }
    }
    // The first replica holds each conversation's head, in flight; the rest wait.
    upstream
        .wait_until(PATIENCE, "three deliveries in flight", |r| r.len() >= 3)
        .await;
    let heads: Vec<String> = accepted[..3].iter().map(|(r, _)| r.clone()).collect();
    // The second replica starts while they are leased, then the first dies holding them.
    let second = cluster.start(&config);
    first.kill9();
    let in_flight_at_kill = upstream.records();
    assert!(
        in_flight_at_kill.iter().all(|r| heads.contains(&request_id(r))),
        "only conversation heads were tried: {:?}",
        in_flight_at_kill.iter().map(request_id).collect::<Vec<_>>()
    );
    upstream.set_script(Arc::new(|_: &Recorded, _| {
        Behaviour::json(200, &json!({"resourceType": "Bundle", "type": "message"}))
    }));

    let ids: Vec<String> = accepted.iter().map(|(r, _)| r.clone()).collect();
    let records = upstream
        .wait_until(
            PATIENCE * 2,
            "every accepted message after the takeover",
            |records| {
                let after = &records[in_flight_at_kill.len()..];
                ids.iter().all(|id| after.iter().any(|r| request_id(r) == *id))
            },
        )
        .await;
    wait_all_delivered(&cluster, &config, &ids);
    for r in &records {
        assert_eq!(
            r.header("idempotency-key"),
            r.header("x-request-id"),
            "a repeated delivery carries the same Idempotency-Key"
        );
    }
    let after: Vec<String> = records[in_flight_at_kill.len()..]
        .iter()
        .map(request_id)
        .collect();
    assert_conversation_order(&accepted, &after);
    assert_eq!(
        after.iter().collect::<HashSet<_>>().len(),
        after.len(),
        "the second replica delivered each once: {after:?}"
    );
    drop(second);
}

// ---------------------------------------------------------------------------------------
// Database outages.

/// One answer under load, with how long it took.
#[derive(Debug)]
struct Answer {
    request_id: String,
    reply: Result<Reply, String>,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_quickly_readiness_follows_and_nothing_acknowledged_is_lost() {
    let mut pg = PrivateServer::new();
    let cluster = Arc::new(Cluster::new());
    let (connect_timeout, statement_timeout) = (Duration::from_secs(1), Duration::from_secs(2));
    let config = cluster.config(
        "replica",
        &postgres_store(&pg.url(), "connect_timeout = \"1s\"\nstatement_timeout = \"2s\""),
    );
    let replicas = [cluster.start(&config), cluster.start(&config)];
    for r in &replicas {
        r.wait_readyz(200, "the database is up");
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (cluster, addrs, answers, stop) = (cluster.clone(), addrs.clone(), answers.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let bars = Bars::default();
                let started = Instant::now();
                let reply = cluster
                    .send_message(addrs[(sender + n) % 2], &bars, &minimal_message().to_string())
                    .await;
                answers.lock().unwrap().push(Answer {
                    request_id: bars.request_id,
                    reply,
                    took: started.elapsed(),
                });
                n += 1;
                // Not a flood: the refusals must come from the store, not the machine.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let count_from = |from: usize, ok: bool| {
        answers.lock().unwrap()[from..]
            .iter()
            .filter(|a| a.reply.as_ref().is_ok_and(|r| r.status == 200) == ok)
            .count()
    };
    let wait_for = |what: &str, from: usize, ok: bool, n: usize| {
        let deadline = Instant::now() + PATIENCE;
        while count_from(from, ok) < n {
            assert!(Instant::now() < deadline, "waiting for {n} {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("acknowledgements before the outage", 0, true, 10);

    pg.stop();
    let stopped_at = answers.lock().unwrap().len();
    wait_for("refusals while the database is down", stopped_at, false, 10);
    for r in &replicas {
        r.wait_readyz(503, "the database is down");
    }
    pg.start();
    for r in &replicas {
        r.wait_readyz(200, "the database is back, without a restart");
    }
    // Recovered: twenty acknowledgements in a row (stale pooled connections may refuse a
    // few first, as 503s).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let recent: Vec<bool> = answers.lock().unwrap()[stopped_at..]
            .iter()
            .rev()
            .take(20)
            .map(|a| a.reply.as_ref().is_ok_and(|r| r.status == 200))
            .collect();
        if recent.len() == 20 && recent.iter().all(|&ok| ok) {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {recent:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let limit = connect_timeout + statement_timeout + Duration::from_secs(3);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for a in &answers {
        let reply = a
            .reply
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", a.request_id));
        assert!(
            a.took <= limit,
            "{} waited {:?} (limit {limit:?}) for {} {}",
            a.request_id,
            a.took,
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        match reply.status {
            200 => acknowledged.push(a.request_id.clone()),
            _ => {
                assert_eq!(reply.status, 503, "{}", String::from_utf8_lossy(&reply.body));
                let body = reply.json();
                assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
                assert_eq!(
                    rec_code(reply).as_deref(),
                    Some("REC_SERVICE_UNAVAILABLE"),
                    "{body}"
                );
                assert_eq!(reply.header("x-request-id"), Some(a.request_id.as_str()));
                refused += 1;
            }
        }
    }
    assert!(refused >= 10);
    let counts = request_id_counts(&export(&cluster, &config));
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "{id} acknowledged, stored once");
    }
    eprintln!(
        "{} answers: {} acknowledged, {refused} refused 503, slowest {:?}",
        answers.len(),
        acknowledged.len(),
        answers.iter().map(|a| a.took).max().unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// TLS to the database.

fn tls_store(url: &str, ca_file: &std::path::Path) -> String {
    format!(
        "[store]\nkind = \"postgres\"\nurl = \"{url}\"\ntls = \"verify-full\"\nca_file = \"{}\"\npool_size = 4\n",
        ca_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_the_database_over_tls_verified_with_ca_file() {
    let pg = PrivateServer::new_with_tls();
    let cluster = Cluster::new();
    let config = cluster.config("tls", &tls_store(&pg.url(), &pg.tls().unwrap().ca_file));
    let replica = cluster.start(&config);
    replica.wait_readyz(200, "connected over TLS");
    let bars = Bars::default();
    let reply = cluster
        .send_message(replica.addr, &bars, &minimal_message().to_string())
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let counts = request_id_counts(&export(&cluster, &config));
    assert_eq!(counts.get(&bars.request_id), Some(&1));
    // The server admits TLS only (hostssl), and every receiver connection uses it.
    assert_eq!(
        pg.query(
            "SELECT count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
        ),
        "0"
    );
    let plain = psql(&format!("{}?sslmode=disable", pg.url()), "SELECT 1").expect_err("plaintext refused");
    assert!(plain.contains("no pg_hba.conf entry"), "{plain}");
}

#[test]
fn refuses_to_start_when_the_database_certificate_is_not_from_ca_file() {
    let pg = PrivateServer::new_with_tls();
    let cluster = Cluster::new();
    let other = cluster.dir.path().join("other-ca.pem");
    std::fs::write(&other, pki::ca("Another CA", None).pem).unwrap();
    let config = cluster.config("wrong-ca", &tls_store(&pg.url(), &other));
    let (code, text) = cluster.refused_start(&config);
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {text}");
    assert!(text.contains("store.ca_file"), "names the setting: {text}");
}

// ---------------------------------------------------------------------------------------
// From one SQLite instance to PostgreSQL.

/// Records without their position (`seq`), which the target may number afresh.
fn without_seq(records: Vec<Value>) -> Vec<Value> {
    records
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("seq");
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_migrate_copies_an_sqlite_inbox_to_postgres_and_a_second_run_changes_nothing() {
    // An SQLite relay inbox with delivered messages, a dead letter and the message held
    // behind it, and a failed request whose outcome is replayed.
    let refused = Arc::new(Mutex::new(String::new()));
    let script: Script = {
        let refused = refused.clone();
        Arc::new(move |r: &Recorded, _| {
            if request_id(r) == *refused.lock().unwrap() {
                Behaviour::json(
                    400,
                    &json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "unknown patient"}]}),
                )
            } else {
                Behaviour::json(200, &json!({"resourceType": "Bundle"}))
            }
        })
    };
    let upstream = TestUpstream::start("", script).await;
    let cluster = Cluster::new();
    let sqlite = cluster.dir.path().join("inbox.db");
    let sqlite_config = cluster.config(
        "sqlite",
        &format!(
            "[inbox]\npath = \"{}\"\n[handler]\nkind = \"relay\"\n[upstream]\nurl = \"{}\"\nretry_base = \"100ms\"\n",
            sqlite.display(),
            upstream.url
        ),
    );
    let mut single = cluster.start(&sqlite_config);
    let mut delivered = Vec::new();
    for _ in 0..5 {
        let bars = Bars::default();
        let body = minimal_message().to_string();
        let reply = cluster.send_message(single.addr, &bars, &body).await.unwrap();
        assert_eq!(reply.status, 200);
        delivered.push((bars, body));
    }
    let dead = Bars::default();
    *refused.lock().unwrap() = dead.request_id.clone();
    let held = Bars {
        correlation_id: dead.correlation_id.clone(),
        ..Bars::default()
    };
    for bars in [&dead, &held] {
        let reply = cluster
            .send_message(single.addr, bars, &minimal_message().to_string())
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let failed = Bars::default();
    let failed_body = "{\"resourceType\": \"Bundle\", \"type\": ";
    let first_failure = cluster
        .send_message(single.addr, &failed, failed_body)
        .await
        .unwrap();
    assert_eq!(
        first_failure.status,
        400,
        "{}",
        String::from_utf8_lossy(&first_failure.body)
    );
    let db_source = ["--db".to_owned(), sqlite.display().to_string()];
    let db_source = [db_source[0].as_str(), db_source[1].as_str()];
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = cluster.list(&db_source);
        let state = |b: &Bars| {
            rows.iter()
                .find(|r| r["request_id"] == b.request_id.as_str())
                .map(|r| r["delivery"]["state"].as_str().unwrap_or_default().to_owned())
        };
        if delivered
            .iter()
            .all(|(b, _)| state(b).as_deref() == Some("delivered"))
            && state(&dead).as_deref() == Some("dead")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(single.terminate().success());
    let source_export = cluster.export(&db_source);
    let source_list = cluster.list(&db_source);
    assert_eq!(source_export.len(), 7, "five delivered, one dead, one held");

    let db = TestDatabase::new();
    let pg_config = cluster.config("postgres", &postgres_store(db.url(), ""));
    let pg_source = config_source(&pg_config);
    let pg_source = [pg_source[0].as_str(), pg_source[1].as_str()];
    let migrate = |what: &str| {
        let (code, out, err) = cluster.cli(&["inbox", "--db", db_source[1], "migrate", "--to", db.url()]);
        assert_eq!(code, 0, "{what}: {out}{err}");
    };
    migrate("first run");
    let copied = (cluster.export(&pg_source), cluster.list(&pg_source));
    assert_eq!(
        without_seq(copied.0.clone()),
        without_seq(source_export.clone()),
        "the same messages and bodies, in the same order"
    );
    assert_eq!(
        without_seq(copied.1.clone()),
        without_seq(source_list.clone()),
        "the same delivery states, attempts and errors"
    );
    migrate("second run");
    assert_eq!(
        cluster.export(&pg_source),
        copied.0,
        "a second run changes nothing"
    );
    assert_eq!(cluster.list(&pg_source), copied.1, "a second run changes nothing");

    // The outcomes came along: on PostgreSQL a retry is a duplicate, a failure replayed.
    let inbox_on_pg = cluster.start(&pg_config);
    let (bars, body) = &delivered[0];
    let again = cluster.send_message(inbox_on_pg.addr, bars, body).await.unwrap();
    again.assert_outcome(409, "REC_CONFLICT", "duplicate");
    let replayed = cluster
        .send_message(inbox_on_pg.addr, &failed, failed_body)
        .await
        .unwrap();
    assert_eq!(replayed.status, first_failure.status);
    assert_eq!(rec_code(&replayed), rec_code(&first_failure));
}

// ---------------------------------------------------------------------------------------
// The Kubernetes manifests for several replicas.

#[test]
fn the_kubernetes_postgres_deployment_runs_three_replicas_without_a_volume_on_settings_the_binary_accepts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes/postgres");
    let text = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    for needle in [
        "  replicas: 3\n",
        "rollingUpdate: {maxSurge: 1, maxUnavailable: 0}",
        "httpGet: {path: /readyz, port: admin}",
        "      enableServiceLinks: false\n",
        "secretKeyRef: {name: bars-receiver-db, key: url}",
    ] {
        assert!(text.contains(needle), "deployment.yaml has {needle:?}");
    }
    assert!(!text.contains("persistentVolumeClaim"), "no data volume");
    let pdb = std::fs::read_to_string(dir.join("pdb.yaml")).unwrap();
    assert!(
        pdb.contains("  minAvailable: 2\n"),
        "one pod at a time may go: {pdb}"
    );
    // `- {name: BARS_…, value: …}` entries, and the URL the Secret gives: all settings.
    let mut env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- {name: "))
        .filter_map(|l| l.strip_suffix('}'))
        .filter_map(|l| l.split_once(", value: "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    assert!(env.len() >= 8, "found the deployment's variables: {env:?}");
    assert!(text.contains("- name: BARS_STORE__URL\n"));
    env.push((
        "BARS_STORE__URL".into(),
        "postgres://bars@127.0.0.1:1/bars".into(),
    ));
    let cluster = Cluster::new();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = crate::common::bin(cluster.dir.path())
        .arg("check")
        .envs(envs)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("environment variable"), "{text}");
    assert!(!text.contains("unknown field"), "{text}");
    assert!(
        text.contains("tls.cert_chain: /etc/bars-receiver/tls/server-chain.pem"),
        "the variables were read: {text}"
    );
}
