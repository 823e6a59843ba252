//! `bars-receiver inbox migrate --to postgres://…`: an SQLite relay inbox (delivered
//! messages, a dead letter and the message held behind it, a failed request's outcome)
//! copied to PostgreSQL, identical afterwards, and a second run changes nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::postgres::TestDatabase;
use crate::common::upstream::{Behaviour, Recorded, Script, TestUpstream};
use crate::common::{Bars, minimal_message};

use super::replicas::{Cluster, PATIENCE, postgres_store, rec_code, upstream_request_id as request_id};

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
    let pg_config_text = pg_config.display().to_string();
    let pg_source = ["--config", pg_config_text.as_str()];
    let migrate = |what: &str| {
        let (code, out, err) = cluster.cli(&[
            "inbox",
            "--db",
            db_source[1],
            "migrate",
            "--to",
            db.url(),
            "--insecure-plaintext",
        ]);
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
