//! The store's contract, run against both backends: SQLite in a temporary directory, and
//! PostgreSQL in a database of its own on the server at `TEST_POSTGRES_URL` (by default
//! `postgres://postgres@127.0.0.1:5432/test`), created for the test and dropped after it.

use super::*;
use serde_json::json;
use uuid::Uuid;

mod pg;

/// A store of either kind, with what keeps it alive.
struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<pg::Database>,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("inbox.db")).unwrap();
        Self {
            store,
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres() -> Self {
        let db = pg::Database::create().await;
        let store = db.store(Duration::from_secs(30)).await;
        Self {
            store,
            _dir: None,
            pg: Some(db),
        }
    }

    /// A second handle on the same database, as another replica (or another process) sees it.
    async fn other(&self) -> Store {
        match (&self.pg, self.store.path()) {
            (Some(db), _) => db.store(Duration::from_secs(30)).await,
            (None, Some(path)) => Store::open_read_only(path).unwrap(),
            (None, None) => unreachable!(),
        }
    }
}

/// Runs one contract case against each backend.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Fixture::sqlite().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Fixture::postgres().await).await;
            }
        }
    };
}

fn message(request_id: Uuid) -> NewMessage {
    NewMessage {
        id: Uuid::new_v4().to_string(),
        received_at: timestamp(time::OffsetDateTime::now_utc()),
        request_id,
        correlation_id: Uuid::new_v4(),
        bundle_id: "b1".into(),
        event: "servicerequest-request".into(),
        reason: "new".into(),
        target: Some("https://fhir.nhs.uk/Id/dos-service-id|1".into()),
        headers: json!({"x-request-id": request_id.to_string()}),
        peer: json!({"common_name": "int.api.service.nhs.uk"}),
        body: r#"{"resourceType":"Bundle","entry":[{"n":1e2}]}"#.into(),
    }
}

fn outcome(recorded_at: &str) -> RequestOutcome {
    RequestOutcome {
        request_id: Uuid::new_v4(),
        state: OutcomeState::Done,
        status: 200,
        response: None,
        reference: Some("ref".into()),
        interaction: "process-message".into(),
        body_sha256: "ab".into(),
        recorded_at: recorded_at.into(),
    }
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

const HOUR: Duration = Duration::from_secs(3600);
const FAR_FUTURE: &str = "2999-01-01T00:00:00.000000Z";

on_both!(commits_messages_and_reads_them_back);
async fn commits_messages_and_reads_them_back(f: Fixture) {
    let m = message(Uuid::new_v4());
    let Inserted::New(reference) = f.store.insert_message(m.clone()).await.unwrap() else {
        panic!("first insert must be new");
    };
    assert_eq!(reference, m.id);
    let other = f.other().await;
    assert_eq!(other.count().await.unwrap(), 1);
    let got = other.get(&reference).await.unwrap().unwrap();
    assert_eq!(
        got.message, m,
        "every column comes back as written, the body byte for byte"
    );
    let by_request = other.get(&m.request_id.to_string()).await.unwrap().unwrap();
    assert_eq!(by_request.message.id, reference);
    let list = other.list(10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].peer_cn.as_deref(), Some("int.api.service.nhs.uk"));
    assert_eq!(list[0].delivery, None);
}

on_both!(a_second_insert_with_the_same_request_id_returns_the_first_reference);
async fn a_second_insert_with_the_same_request_id_returns_the_first_reference(f: Fixture) {
    let rid = Uuid::new_v4();
    let first = message(rid);
    f.store.insert_message(first.clone()).await.unwrap();
    let again = f.other().await;
    let again = if f.pg.is_some() { again } else { f.store.clone() };
    assert_eq!(
        again.insert_message(message(rid)).await.unwrap(),
        Inserted::AlreadyPresent(first.id)
    );
    assert_eq!(f.store.count().await.unwrap(), 1);
}

on_both!(records_and_finds_request_outcomes);
async fn records_and_finds_request_outcomes(f: Fixture) {
    let rid = Uuid::new_v4();
    assert!(f.store.find_outcome(rid).await.unwrap().is_none());
    let outcome = RequestOutcome {
        request_id: rid,
        state: OutcomeState::Failed,
        status: 400,
        response: Some("{}".into()),
        reference: None,
        interaction: "process-message".into(),
        body_sha256: "ab".into(),
        recorded_at: timestamp(time::OffsetDateTime::now_utc()),
    };
    f.store.record_outcome(outcome.clone()).await.unwrap();
    assert_eq!(f.store.find_outcome(rid).await.unwrap(), Some(outcome));
}

on_both!(a_claim_is_held_until_recorded_and_then_replays_the_outcome);
async fn a_claim_is_held_until_recorded_and_then_replays_the_outcome(f: Fixture) {
    let rid = Uuid::new_v4();
    let RequestClaim::Claimed(claim) = f.store.claim_request(rid, "ab").await.unwrap() else {
        panic!("first claim must be granted");
    };
    assert!(matches!(
        f.store.claim_request(rid, "ab").await.unwrap(),
        RequestClaim::InProgress
    ));
    let done = RequestOutcome {
        request_id: rid,
        ..outcome(&timestamp(time::OffsetDateTime::now_utc()))
    };
    claim.record(done.clone()).await.unwrap();
    match f.store.claim_request(rid, "ab").await.unwrap() {
        RequestClaim::Recorded(found) => assert_eq!(found, done),
        other => panic!("expected the recorded outcome, got {other:?}"),
    }
}

on_both!(an_accepted_message_records_its_outcome_in_the_same_commit);
async fn an_accepted_message_records_its_outcome_in_the_same_commit(f: Fixture) {
    let rid = Uuid::new_v4();
    let RequestClaim::Claimed(claim) = f.store.claim_request(rid, "ab").await.unwrap() else {
        panic!("first claim must be granted");
    };
    let settlement = Settlement::new(rid, "process-message", "ab".into());
    // A message with another X-Request-Id (a handler storing something else) records nothing.
    let unrelated = message(Uuid::new_v4());
    f.store
        .accept(unrelated.clone(), None, Some(&settlement))
        .await
        .unwrap();
    assert!(!settlement.is_recorded());
    assert_eq!(f.store.find_outcome(unrelated.request_id).await.unwrap(), None);

    let m = message(rid);
    let Inserted::New(reference) = f
        .store
        .accept(m.clone(), Some(headers()), Some(&settlement))
        .await
        .unwrap()
    else {
        panic!("first insert must be new");
    };
    assert!(settlement.is_recorded());
    claim.recorded_with_message();
    let other = f.other().await;
    let found = other
        .find_outcome(rid)
        .await
        .unwrap()
        .expect("recorded with the message");
    assert_eq!(
        (
            found.state,
            found.status,
            found.reference.as_deref(),
            found.interaction.as_str(),
            found.body_sha256.as_str()
        ),
        (
            OutcomeState::Done,
            200,
            Some(reference.as_str()),
            "process-message",
            "ab"
        )
    );
    assert!(
        other
            .delivery_status(&reference)
            .await
            .unwrap()
            .unwrap()
            .is_some(),
        "queued for delivery in the same commit"
    );
    // The claim ended with the commit: a retry finds the outcome, not a claim in progress.
    match f.store.claim_request(rid, "ab").await.unwrap() {
        RequestClaim::Recorded(outcome) => assert_eq!(outcome, found),
        other => panic!("expected the recorded outcome, got {other:?}"),
    }
    // Accepting the same X-Request-Id again (present already) records nothing new.
    let again = Settlement::new(rid, "process-message", "cd".into());
    assert_eq!(
        f.store.accept(message(rid), None, Some(&again)).await.unwrap(),
        Inserted::AlreadyPresent(reference)
    );
    assert!(!again.is_recorded());
    assert_eq!(other.find_outcome(rid).await.unwrap().unwrap().body_sha256, "ab");
}

on_both!(a_dropped_claim_is_released_for_the_retry);
async fn a_dropped_claim_is_released_for_the_retry(f: Fixture) {
    let rid = Uuid::new_v4();
    let RequestClaim::Claimed(claim) = f.store.claim_request(rid, "ab").await.unwrap() else {
        panic!("first claim must be granted");
    };
    drop(claim);
    // The shared store releases in the background: give it a moment.
    for _ in 0..50 {
        if let RequestClaim::Claimed(_) = f.store.claim_request(rid, "ab").await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the claim was never released");
}

#[tokio::test]
async fn concurrent_inserts_all_commit() {
    let f = Fixture::sqlite().await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = f.store.clone();
            tokio::spawn(async move { store.insert_message(message(Uuid::new_v4())).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Inserted::New(_)));
    }
    let ro = f.other().await;
    assert_eq!(ro.count().await.unwrap(), 200);
    let mut seen = 0;
    ro.for_each(|_| {
        seen += 1;
        Ok(())
    })
    .await
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

on_both!(prunes_outcomes_older_than_the_cutoff);
async fn prunes_outcomes_older_than_the_cutoff(f: Fixture) {
    let old = outcome(&timestamp(time::macros::datetime!(2026-01-01 00:00:00.5 UTC)));
    let new = outcome(&timestamp(time::macros::datetime!(2026-03-01 00:00 UTC)));
    assert_eq!(old.recorded_at, "2026-01-01T00:00:00.500000Z");
    f.store.record_outcome(old.clone()).await.unwrap();
    f.store.record_outcome(new.clone()).await.unwrap();
    let cutoff = time::macros::datetime!(2026-02-01 00:00 UTC);
    assert_eq!(f.store.prune_outcomes(cutoff).await.unwrap(), 1);
    assert!(f.store.find_outcome(old.request_id).await.unwrap().is_none());
    assert_eq!(f.store.find_outcome(new.request_id).await.unwrap(), Some(new));
}

on_both!(prunes_in_chunks_until_done);
async fn prunes_in_chunks_until_done(f: Fixture) {
    let old = timestamp(time::macros::datetime!(2026-01-01 00:00 UTC));
    let writes: Vec<_> = (0..1200)
        .map(|_| {
            let store = f.store.clone();
            let o = outcome(&old);
            tokio::spawn(async move { store.record_outcome(o).await })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let pruned = f
        .store
        .prune_outcomes(time::macros::datetime!(2026-02-01 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(pruned, 1200);
}

fn ids(claimed: &[(Delivery, u64)]) -> Vec<String> {
    let mut ids: Vec<String> = claimed.iter().map(|(d, _)| d.id.clone()).collect();
    ids.sort_unstable();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort_unstable();
    ids
}

on_both!(only_the_oldest_undelivered_message_of_a_conversation_is_due);
async fn only_the_oldest_undelivered_message_of_a_conversation_is_due(f: Fixture) {
    let store = &f.store;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = relayed(a);
    let a2 = relayed(a);
    let b1 = relayed(b);
    for m in [&a1, &a2, &b1] {
        store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    }
    // Not relayed: never due.
    store.insert_message(relayed(a)).await.unwrap();
    let claimed = store.claim_deliveries(10, HOUR).await.unwrap();
    assert_eq!(ids(&claimed), sorted(&[&a1.id, &b1.id]));
    let (first, attempt) = claimed.iter().find(|(d, _)| d.id == a1.id).unwrap();
    assert_eq!(*attempt, 1);
    assert_eq!(first.headers, headers());
    assert_eq!(*first.body, *a1.body);
    assert!(
        store.claim_deliveries(10, HOUR).await.unwrap().is_empty(),
        "claimed messages are leased: nothing else is due"
    );

    // A retry later holds a2 back; a dead a1 holds it back too.
    let seq = first.seq;
    store
        .finish_attempt(
            seq,
            1,
            Finish::Retry {
                next_at: FAR_FUTURE.into(),
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        store.claim_deliveries(10, HOUR).await.unwrap().is_empty(),
        "a1 waits, a2 waits behind it"
    );
    // Next due: b1 when its lease runs out, an hour from now (well before a1's retry).
    let next = store.next_delivery_due().await.unwrap().unwrap();
    assert!(
        next.as_str() < FAR_FUTURE && next > timestamp(time::OffsetDateTime::now_utc()),
        "{next}"
    );
    store
        .finish_attempt(
            seq,
            1,
            Finish::Dead {
                error: "gave up".into(),
            },
        )
        .await
        .unwrap();
    let other = f.other().await;
    let held = other.delivery_status(&a2.id).await.unwrap().unwrap().unwrap();
    assert!(held.held && held.state == DeliveryState::Pending);
    let dead = other.delivery_status(&a1.id).await.unwrap().unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (DeliveryState::Dead, 1));
    assert_eq!(dead.last_error.as_deref(), Some("gave up"));
    assert_eq!(other.delivery_status("nope").await.unwrap(), None);
    let backlog = store.delivery_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.dead), (2, 1));
    assert_eq!(backlog.oldest_pending.as_deref(), Some(a2.received_at.as_str()));

    // Retrying the dead letter makes it the head again, with a fresh count.
    assert!(store.retry_dead_letter(&a1.request_id.to_string()).await.unwrap());
    assert!(!store.retry_dead_letter(&a1.id).await.unwrap(), "no longer dead");
    let claimed = store.claim_deliveries(10, HOUR).await.unwrap();
    assert_eq!(ids(&claimed), sorted(&[&a1.id]));
    assert_eq!(claimed[0].1, 1, "a fresh count of attempts");
}

on_both!(a_stale_attempt_cannot_overwrite_a_newer_one);
async fn a_stale_attempt_cannot_overwrite_a_newer_one(f: Fixture) {
    let m = relayed(Uuid::new_v4());
    f.store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    let claimed = f.store.claim_deliveries(1, Duration::ZERO).await.unwrap();
    let (seq, first) = (claimed[0].0.seq, claimed[0].1);
    // The lease ran out at once: a second worker claims it again.
    let again = f.store.claim_deliveries(1, HOUR).await.unwrap();
    assert_eq!((again[0].0.seq, again[0].1), (seq, first + 1));
    // The first worker's late outcome changes nothing.
    f.store
        .finish_attempt(seq, first, Finish::Dead { error: "late".into() })
        .await
        .unwrap();
    let status = f.store.delivery_status(&m.id).await.unwrap().unwrap().unwrap();
    assert_eq!(status.state, DeliveryState::Pending);
    f.store
        .finish_attempt(
            seq,
            first + 1,
            Finish::Delivered {
                at: timestamp(time::OffsetDateTime::now_utc()),
            },
        )
        .await
        .unwrap();
    let status = f.store.delivery_status(&m.id).await.unwrap().unwrap().unwrap();
    assert_eq!(status.state, DeliveryState::Delivered);
}

#[tokio::test]
async fn interrupted_attempts_are_due_again_after_recovery_on_the_embedded_store() {
    let f = Fixture::sqlite().await;
    let m = relayed(Uuid::new_v4());
    f.store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    assert_eq!(f.store.claim_deliveries(1, HOUR).await.unwrap().len(), 1);
    assert!(f.store.claim_deliveries(1, HOUR).await.unwrap().is_empty());
    let now = timestamp(time::OffsetDateTime::now_utc());
    assert_eq!(f.store.recover_deliveries(now).await.unwrap(), 1);
    let due = f.store.claim_deliveries(1, HOUR).await.unwrap();
    assert_eq!((due[0].0.id.as_str(), due[0].1), (m.id.as_str(), 2));
}

#[tokio::test]
async fn a_shared_store_leaves_interrupted_attempts_to_their_lease() {
    let f = Fixture::postgres().await;
    let m = relayed(Uuid::new_v4());
    f.store.insert_for_delivery(m.clone(), headers()).await.unwrap();
    assert_eq!(f.store.claim_deliveries(1, HOUR).await.unwrap().len(), 1);
    // Another replica starting must not take a delivery that may be in flight elsewhere.
    let now = timestamp(time::OffsetDateTime::now_utc());
    assert_eq!(f.store.recover_deliveries(now).await.unwrap(), 0);
    assert!(
        f.other()
            .await
            .claim_deliveries(1, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
}

on_both!(purges_only_messages_delivered_before_the_cutoff);
async fn purges_only_messages_delivered_before_the_cutoff(f: Fixture) {
    let store = &f.store;
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
    let claimed = store.claim_deliveries(10, HOUR).await.unwrap();
    let (d, attempt) = claimed.iter().find(|(d, _)| d.id == delivered.id).unwrap();
    store
        .finish_attempt(
            d.seq,
            *attempt,
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
    let other = f.other().await;
    assert_eq!(other.count().await.unwrap(), 2);
    assert!(other.get(&delivered.id).await.unwrap().is_none());
    let list = other.list(10).await.unwrap();
    let inbox_row = list.iter().find(|r| r.id == inbox_only.id).unwrap();
    assert_eq!(inbox_row.delivery, None);
    let pending_row = list.iter().find(|r| r.id == pending.id).unwrap();
    assert_eq!(
        pending_row.delivery.as_ref().unwrap().state,
        DeliveryState::Pending
    );
}

#[tokio::test]
async fn migrates_a_version_2_sqlite_database_keeping_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::testing::MIGRATIONS[..2] {
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
    let list = ro.list(10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].delivery, None);
}

#[tokio::test]
async fn copies_an_sqlite_inbox_to_postgres_once() {
    let from = Fixture::sqlite().await;
    let conversation = Uuid::new_v4();
    let (m1, m2, plain) = (
        relayed(conversation),
        relayed(conversation),
        message(Uuid::new_v4()),
    );
    from.store
        .insert_for_delivery(m1.clone(), headers())
        .await
        .unwrap();
    from.store
        .insert_for_delivery(m2.clone(), headers())
        .await
        .unwrap();
    from.store.insert_message(plain.clone()).await.unwrap();
    let claimed = from.store.claim_deliveries(1, HOUR).await.unwrap();
    from.store
        .finish_attempt(
            claimed[0].0.seq,
            1,
            Finish::Dead {
                error: "refused: HTTP 400".into(),
            },
        )
        .await
        .unwrap();
    from.store
        .record_outcome(outcome(&timestamp(time::OffsetDateTime::now_utc())))
        .await
        .unwrap();

    let to = Fixture::postgres().await;
    let report = from.store.copy_to(&to.store).await.unwrap();
    assert_eq!((report.messages_copied, report.outcomes_copied), (3, 1));
    let again = from.store.copy_to(&to.store).await.unwrap();
    assert_eq!(
        (
            again.messages_copied,
            again.messages_present,
            again.outcomes_copied,
            again.outcomes_present
        ),
        (0, 3, 0, 1)
    );
    for id in [&m1.id, &m2.id, &plain.id] {
        let a = from.store.get(id).await.unwrap().unwrap();
        let b = to.store.get(id).await.unwrap().unwrap();
        assert_eq!(a.message, b.message);
        assert_eq!(
            from.store.delivery_status(id).await.unwrap(),
            to.store.delivery_status(id).await.unwrap()
        );
    }
    assert_eq!(
        from.store.outcomes_for_test().await,
        to.store.outcomes_for_test().await
    );
    // The dead letter still holds its conversation on the new store.
    assert!(to.store.claim_deliveries(10, HOUR).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_replicas_never_claim_the_same_request_or_delivery() {
    let f = Fixture::postgres().await;
    let replicas = [f.store.clone(), f.other().await, f.other().await];
    // The same X-Request-Id claimed by three replicas at once, many times: one wins each time.
    for _ in 0..50 {
        let rid = Uuid::new_v4();
        let attempts = replicas.iter().map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.claim_request(rid, "ab").await.unwrap() })
        });
        let mut won = Vec::new();
        for a in attempts.collect::<Vec<_>>() {
            if let RequestClaim::Claimed(c) = a.await.unwrap() {
                won.push(c);
            }
        }
        assert_eq!(won.len(), 1);
    }
    // Deliveries: 40 messages in 8 conversations, claimed by three replicas at once.
    let conversations: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let mut order = std::collections::HashMap::<Uuid, Vec<String>>::new();
    for i in 0..40 {
        let m = relayed(conversations[i % 8]);
        order.entry(m.correlation_id).or_default().push(m.id.clone());
        f.store.insert_for_delivery(m, headers()).await.unwrap();
    }
    let delivered = Arc::new(std::sync::Mutex::new(Vec::<(Uuid, String)>::new()));
    let workers = replicas.iter().map(|r| {
        let (r, delivered) = (r.clone(), delivered.clone());
        tokio::spawn(async move {
            for _ in 0..400 {
                let claimed = r.claim_deliveries(4, HOUR).await.unwrap();
                for (d, attempt) in claimed {
                    delivered.lock().unwrap().push((d.correlation_id, d.id.clone()));
                    let at = timestamp(time::OffsetDateTime::now_utc());
                    r.finish_attempt(d.seq, attempt, Finish::Delivered { at })
                        .await
                        .unwrap();
                }
                if delivered.lock().unwrap().len() == 40 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
    });
    for w in workers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let delivered = delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 40, "each message delivered exactly once");
    for (conversation, expected) in order {
        let got: Vec<String> = delivered
            .iter()
            .filter(|(c, _)| *c == conversation)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(got, expected, "conversation order kept");
    }
}

#[tokio::test]
async fn a_claim_left_by_a_dead_replica_runs_out_with_its_lease() {
    let f = Fixture::postgres().await;
    let rid = Uuid::new_v4();
    // A replica that claims and then dies: its claim is neither renewed nor released.
    let Engine::Postgres(dead) = &f
        .pg
        .as_ref()
        .unwrap()
        .store(Duration::from_secs(1))
        .await
        .inner
        .engine
    else {
        unreachable!()
    };
    let found = Backend::claim_request(dead, rid, "ab", Duration::from_secs(1))
        .await
        .unwrap();
    assert!(matches!(found, ClaimFound::Claimed { .. }));
    assert!(matches!(
        f.store.claim_request(rid, "ab").await.unwrap(),
        RequestClaim::InProgress
    ));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(matches!(
        f.store.claim_request(rid, "ab").await.unwrap(),
        RequestClaim::Claimed(_)
    ));
}

#[tokio::test]
async fn a_live_claim_is_renewed_past_its_lease() {
    let db = pg::Database::create().await;
    let short = db.store(Duration::from_secs(1)).await;
    let rid = Uuid::new_v4();
    let RequestClaim::Claimed(claim) = short.claim_request(rid, "ab").await.unwrap() else {
        panic!("first claim must be granted");
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(matches!(
        short.claim_request(rid, "ab").await.unwrap(),
        RequestClaim::InProgress
    ));
    drop(claim);
}

#[tokio::test]
async fn refuses_a_postgres_schema_newer_than_this_build() {
    let db = pg::Database::create().await;
    drop(db.store(HOUR).await);
    db.execute("UPDATE bars_schema SET version = version + 1").await;
    let err = Store::connect(&db.settings(HOUR)).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains(&db.name), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_quickly() {
    // A port nothing listens on: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let settings = StoreSettings::Postgres(PostgresSettings {
        url: format!("postgres://postgres@127.0.0.1:{port}/test")
            .parse()
            .unwrap(),
        tls: PostgresTls::InsecureDisabled,
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(2),
        claim_lease: HOUR,
    });
    let err = Store::connect(&settings).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}
