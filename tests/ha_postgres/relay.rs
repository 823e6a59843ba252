//! `[handler] kind = "relay"` on replicas sharing PostgreSQL: deliveries shared out, each
//! conversation in arrival order, and the deliveries a killed replica held taken over by
//! another once their lease (upstream timeout + retry_base) has passed, repeated with the
//! same Idempotency-Key.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::postgres::TestDatabase;
use crate::common::upstream::{Behaviour, Recorded, Script, TestUpstream};
use crate::common::{Bars, minimal_message};

use super::replicas::{Cluster, PATIENCE, postgres_store, upstream_request_id as request_id};

fn relay_sections(url: &str, upstream: &str, timeout: &str) -> String {
    format!(
        "{}[handler]\nkind = \"relay\"\n[upstream]\nurl = \"{upstream}\"\ntimeout = \"{timeout}\"\n\
         retry_base = \"200ms\"\nretry_cap = \"1s\"\n",
        postgres_store(url, "")
    )
}

/// Polls `inbox list` until every message in `ids` is delivered (bounded).
fn wait_all_delivered(cluster: &Cluster, config: &Path, ids: &[String]) {
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        let rows = cluster.list_config(config);
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
