//! The database as a dependency: stopped and restarted under load (503s answered within the
//! configured limits, `/readyz` following, recovery without a restart, nothing acknowledged
//! lost), and reached over TLS verified against `store.ca_file`.

use std::net::SocketAddr;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::pki;
use crate::common::postgres::{PrivateServer, psql};
use crate::common::{Bars, Reply, minimal_message};

use super::replicas::{Cluster, PATIENCE, postgres_store, rec_code, request_id_counts};

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
    let counts = request_id_counts(&cluster.export_config(&config));
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
    let counts = request_id_counts(&cluster.export_config(&config));
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
