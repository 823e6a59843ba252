//! Several replicas of the real binary on one PostgreSQL (`[store] kind = "postgres"`): every
//! acknowledged message stored once whichever replica took it, one 200 for an X-Request-Id
//! sent to all of them at once, nothing acknowledged lost when a replica is killed; the
//! Kubernetes manifest for it. In the files below: relay deliveries across replicas, the
//! database stopped and reached over TLS, `inbox migrate` from SQLite, and the PostgreSQL
//! helpers themselves (`common::postgres`).

#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod database;
mod helpers;
mod migrate;
mod relay;
mod replicas;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::postgres::TestDatabase;
use crate::common::{Bars, Reply, TestClient, minimal_message};
use replicas::{Cluster, PATIENCE, Replica, postgres_store, rec_code, request_id_counts};

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
    let counts = request_id_counts(&cluster.export_config(&config));
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
    let counts = request_id_counts(&cluster.export_config(&config));
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
    let counts = request_id_counts(&cluster.export_config(&config));
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

/// Polls `sql` on `db` until it prints `expected` (bounded).
fn wait_sql(db: &TestDatabase, sql: &str, expected: &str, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = db.query(sql);
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {sql} gave {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn clone_ids(bars: &Bars) -> Bars {
    Bars {
        request_id: bars.request_id.clone(),
        correlation_id: bars.correlation_id.clone(),
        target: bars.target.clone(),
    }
}

/// The replica processing a request is killed while its message waits to be written (a
/// lock held from psql on the schema's `messages` table holds the INSERT back, after the
/// claim in `requests` has committed). Another replica answers the sender's retry 425 while
/// the dead replica's claim lasts, then processes it once the lease has passed: 200, or 409
/// duplicate when the orphaned INSERT committed after all. Stored once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_on_a_killed_replica_is_processed_elsewhere_once_its_claim_lease_passes() {
    let db = TestDatabase::new();
    let cluster = Arc::new(Cluster::new());
    let config = cluster.config(
        "replica",
        &postgres_store(db.url(), "claim_lease = \"2s\"\nstatement_timeout = \"30s\""),
    );
    let mut doomed = cluster.start(&config);
    let survivor = cluster.start(&config);
    let warm_up = Bars::default();
    let reply = cluster
        .send_message(doomed.addr, &warm_up, &minimal_message().to_string())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    // Writers of `messages` wait; readers do not.
    let mut lock = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", db.url(), "-c"])
        .arg("BEGIN; LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(600);")
        .env("PGAPPNAME", "bars_test_lock")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_sql(
        &db,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 'messages' AND l.mode = 'ShareRowExclusiveLock' AND l.granted",
        "1",
        "the lock is held",
    );
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let in_flight = {
        let (cluster, bars, body, addr) = (cluster.clone(), clone_ids(&bars), body.clone(), doomed.addr);
        tokio::spawn(async move { cluster.send_message(addr, &bars, &body).await })
    };
    wait_sql(
        &db,
        &format!(
            "SELECT state FROM requests WHERE request_id = '{}'",
            bars.request_id
        ),
        "processing",
        "the first replica claimed the request",
    );
    wait_sql(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bars-receiver' AND wait_event_type = 'Lock'",
        "1",
        "its INSERT waits for the lock",
    );
    let early = cluster.send_message(survivor.addr, &bars, &body).await.unwrap();
    early.assert_outcome(425, "REC_TOO_EARLY", "duplicate");

    doomed.kill9();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed replica never answered"
    );
    db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bars_test_lock'",
    );
    let _ = lock.wait();

    let deadline = Instant::now() + PATIENCE;
    let mut answers = Vec::new();
    let settled = loop {
        let reply = cluster.send_message(survivor.addr, &bars, &body).await.unwrap();
        answers.push(reply.status);
        match reply.status {
            425 => reply.assert_outcome(425, "REC_TOO_EARLY", "duplicate"),
            200 => break Ended::Acknowledged,
            409 => {
                reply.assert_outcome(409, "REC_CONFLICT", "duplicate");
                break Ended::Duplicate;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&reply.body)),
        }
        assert!(Instant::now() < deadline, "the claim never ran out: {answers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("retries after the kill: {answers:?} ({settled:?})");
    let counts = request_id_counts(&cluster.export_config(&config));
    assert_eq!(counts.get(&bars.request_id), Some(&1), "stored exactly once");
    let again = cluster.send_message(survivor.addr, &bars, &body).await.unwrap();
    again.assert_outcome(409, "REC_CONFLICT", "duplicate");
}

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
    let text = crate::common::output_text(&out);
    assert!(!text.contains("environment variable"), "{text}");
    assert!(!text.contains("unknown field"), "{text}");
    assert!(
        text.contains("tls.cert_chain: /etc/bars-receiver/tls/server-chain.pem"),
        "the variables were read: {text}"
    );
}
