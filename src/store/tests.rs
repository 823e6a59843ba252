use super::*;
use serde_json::json;
use uuid::Uuid;

fn message(request_id: Uuid) -> NewMessage {
    NewMessage {
        id: Uuid::new_v4().to_string(),
        received_at: "2026-01-01T00:00:00Z".into(),
        request_id,
        correlation_id: Uuid::new_v4(),
        bundle_id: "b1".into(),
        event: "servicerequest-request".into(),
        reason: "new".into(),
        target: Some("https://fhir.nhs.uk/Id/dos-service-id|1".into()),
        headers: json!({"x-request-id": request_id.to_string()}),
        peer: json!({"common_name": "int.api.service.nhs.uk"}),
        body: r#"{"resourceType":"Bundle"}"#.into(),
    }
}

#[tokio::test]
async fn commits_messages_and_reads_them_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/inbox.db");
    let store = Store::open(&path).unwrap();
    let m = message(Uuid::new_v4());
    let Inserted::New(reference) = store.insert_message(m.clone()).await.unwrap() else {
        panic!("first insert must be new");
    };
    assert_eq!(reference, m.id);
    drop(store);

    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.count().unwrap(), 1);
    let got = ro.get(&reference).unwrap().unwrap();
    assert_eq!(got.message, m);
    let by_request = ro.get(&m.request_id.to_string()).unwrap().unwrap();
    assert_eq!(by_request.message.id, reference);
    let list = ro.list(10).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].peer_cn.as_deref(), Some("int.api.service.nhs.uk"));
}

#[tokio::test]
async fn a_second_insert_with_the_same_request_id_returns_the_first_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let rid = Uuid::new_v4();
    let first = message(rid);
    store.insert_message(first.clone()).await.unwrap();
    let again = store.insert_message(message(rid)).await.unwrap();
    assert_eq!(again, Inserted::AlreadyPresent(first.id));
}

#[tokio::test]
async fn records_and_finds_request_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let rid = Uuid::new_v4();
    assert!(store.find_outcome(rid).await.unwrap().is_none());
    let outcome = RequestOutcome {
        request_id: rid,
        state: OutcomeState::Failed,
        status: 400,
        response: Some("{}".into()),
        reference: None,
        interaction: "process-message".into(),
        body_sha256: "ab".into(),
        recorded_at: "2026-01-01T00:00:00Z".into(),
    };
    store.record_outcome(outcome.clone()).await.unwrap();
    assert_eq!(store.find_outcome(rid).await.unwrap(), Some(outcome));
}

#[tokio::test]
async fn concurrent_inserts_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_message(message(Uuid::new_v4())).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Inserted::New(_)));
    }
    let ro = Store::open_read_only(store.path()).unwrap();
    assert_eq!(ro.count().unwrap(), 200);
    let mut seen = 0;
    ro.for_each(|_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 200);
}

#[cfg(unix)]
#[tokio::test]
async fn creates_the_database_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/inbox.db");
    let _store = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn read_only_open_of_a_missing_database_names_the_path() {
    let err = Store::open_read_only(std::path::Path::new("/nonexistent/inbox.db")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/inbox.db"));
}

#[tokio::test]
async fn uses_wal_with_full_synchronous_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let store = Store::open(&path).unwrap();
    store.ping().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn prunes_outcomes_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let outcome = |recorded_at: &str| RequestOutcome {
        request_id: Uuid::new_v4(),
        state: OutcomeState::Done,
        status: 200,
        response: None,
        reference: None,
        interaction: "process-message".into(),
        body_sha256: String::new(),
        recorded_at: recorded_at.into(),
    };
    let old = outcome(&timestamp(time::macros::datetime!(2026-01-01 00:00:00.5 UTC)));
    let new = outcome(&timestamp(time::macros::datetime!(2026-03-01 00:00 UTC)));
    assert_eq!(old.recorded_at, "2026-01-01T00:00:00.500000Z");
    store.record_outcome(old.clone()).await.unwrap();
    store.record_outcome(new.clone()).await.unwrap();
    let cutoff = time::macros::datetime!(2026-02-01 00:00 UTC);
    assert_eq!(store.prune_outcomes(cutoff).await.unwrap(), 1);
    assert!(store.find_outcome(old.request_id).await.unwrap().is_none());
    assert!(store.find_outcome(new.request_id).await.unwrap().is_some());
}

#[tokio::test]
async fn prunes_in_chunks_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let old = timestamp(time::macros::datetime!(2026-01-01 00:00 UTC));
    for _ in 0..1200 {
        store
            .record_outcome(RequestOutcome {
                request_id: Uuid::new_v4(),
                state: OutcomeState::Done,
                status: 200,
                response: None,
                reference: None,
                interaction: "process-message".into(),
                body_sha256: String::new(),
                recorded_at: old.clone(),
            })
            .await
            .unwrap();
    }
    let pruned = store
        .prune_outcomes(time::macros::datetime!(2026-02-01 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(pruned, 1200);
}

fn relayed(correlation_id: Uuid) -> NewMessage {
    NewMessage {
        correlation_id,
        ..message(Uuid::new_v4())
    }
}

fn headers() -> Vec<(String, String)> {
    vec![("x-request-id".into(), "r".into())]
}

const FAR_FUTURE: &str = "2999-01-01T00:00:00.000000Z";

#[tokio::test]
async fn only_the_oldest_undelivered_message_of_a_conversation_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = relayed(a);
    let a2 = relayed(a);
    let b1 = relayed(b);
    for m in [&a1, &a2, &b1] {
        store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    }
    // Not relayed: never due.
    store.insert_message(relayed(a)).await.unwrap();
    let due = store.due_deliveries(FAR_FUTURE.into(), 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [a1.id.as_str(), b1.id.as_str()]);
    assert_eq!(due[0].headers, headers());
    assert_eq!(*due[0].body, *a1.body);

    // A retry later holds a2 back; a dead a1 holds it back too.
    let seq = due[0].seq;
    assert_eq!(
        store
            .start_attempt(seq, "t0".into(), FAR_FUTURE.into())
            .await
            .unwrap(),
        1
    );
    store
        .finish_attempt(
            seq,
            Finish::Retry {
                next_at: FAR_FUTURE.into(),
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();
    let due = store
        .due_deliveries("2998-01-01T00:00:00.000000Z".into(), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "only b1: a1 waits, a2 waits behind it");
    store
        .finish_attempt(
            seq,
            Finish::Dead {
                error: "gave up".into(),
            },
        )
        .await
        .unwrap();
    let due = store.due_deliveries(FAR_FUTURE.into(), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [b1.id.as_str()]
    );
    let ro = Store::open_read_only(store.path()).unwrap();
    let held = ro.delivery_status(&a2.id).unwrap().unwrap().unwrap();
    assert!(held.held && held.state == DeliveryState::Pending);
    let dead = ro.delivery_status(&a1.id).unwrap().unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (DeliveryState::Dead, 1));
    assert_eq!(dead.last_error.as_deref(), Some("gave up"));
    assert_eq!(ro.delivery_status("nope").unwrap(), None);

    // Retrying the dead letter makes it the head again, with a fresh count.
    assert!(store.retry_dead_letter(&a1.request_id.to_string()).await.unwrap());
    assert!(!store.retry_dead_letter(&a1.id).await.unwrap(), "no longer dead");
    let due = store.due_deliveries(FAR_FUTURE.into(), 10).await.unwrap();
    let mut ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = [a1.id.as_str(), b1.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let status = store.delivery_status(&a1.id).await.unwrap().unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (DeliveryState::Pending, 0));
}

#[tokio::test]
async fn interrupted_attempts_are_due_again_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let m = relayed(Uuid::new_v4());
    store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    let seq = store.due_deliveries(FAR_FUTURE.into(), 1).await.unwrap()[0].seq;
    store
        .start_attempt(seq, "t0".into(), FAR_FUTURE.into())
        .await
        .unwrap();
    assert!(
        store
            .due_deliveries("2998-01-01T00:00:00.000000Z".into(), 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .recover_deliveries("2000-01-01T00:00:00.000000Z".into())
            .await
            .unwrap(),
        1
    );
    let due = store
        .due_deliveries("2000-01-01T00:00:00.000000Z".into(), 1)
        .await
        .unwrap();
    assert_eq!(due[0].id, m.id);
}

#[tokio::test]
async fn purges_only_messages_delivered_before_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("inbox.db")).unwrap();
    let delivered = relayed(Uuid::new_v4());
    let pending = relayed(Uuid::new_v4());
    let inbox_only = relayed(Uuid::new_v4());
    store
        .insert_for_delivery(delivered.clone(), headers())
        .await
        .unwrap();
    store
        .insert_for_delivery(pending.clone(), headers())
        .await
        .unwrap();
    store.insert_message(inbox_only.clone()).await.unwrap();
    let due = store.due_deliveries(FAR_FUTURE.into(), 10).await.unwrap();
    let seq = due.iter().find(|d| d.id == delivered.id).unwrap().seq;
    store
        .finish_attempt(
            seq,
            Finish::Delivered {
                at: "2026-01-01T00:00:00.000000Z".into(),
            },
        )
        .await
        .unwrap();
    let before = time::macros::datetime!(2025-12-31 00:00 UTC);
    assert_eq!(store.purge_delivered(before).await.unwrap(), 0);
    let after = time::macros::datetime!(2026-01-02 00:00 UTC);
    assert_eq!(store.purge_delivered(after).await.unwrap(), 1);
    let ro = Store::open_read_only(store.path()).unwrap();
    assert_eq!(ro.count().unwrap(), 2);
    assert!(ro.get(&delivered.id).unwrap().is_none());
    let list = ro.list(10).unwrap();
    let inbox_row = list.iter().find(|r| r.id == inbox_only.id).unwrap();
    assert_eq!(inbox_row.delivery, None);
    let pending_row = list.iter().find(|r| r.id == pending.id).unwrap();
    assert_eq!(
        pending_row.delivery.as_ref().unwrap().state,
        DeliveryState::Pending
    );
}

#[tokio::test]
async fn migrates_a_version_2_database_keeping_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO messages (id, received_at, request_id, correlation_id, bundle_id, event, reason, headers, peer, body)
             VALUES ('m1', 't', ?1, ?2, 'b', 'e', 'r', '{}', '{}', '{}')",
            rusqlite::params![Uuid::new_v4().to_string(), Uuid::new_v4().to_string()],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    store.ping().await.unwrap();
    let ro = Store::open_read_only(&path).unwrap();
    let list = ro.list(10).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].delivery, None);
}
