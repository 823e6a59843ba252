//! The delivery loop: finds the due head of each conversation, counts and leases an attempt
//! durably, delivers up to `max_in_flight` conversations at once, and records the outcome.
//! It wakes when a message is queued, when an attempt ends, when the next retry is due, and
//! at least every second (so that `inbox retry` from another process is noticed).

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use super::attempt::{Verdict, attempt};
use super::backoff;
use crate::config::UpstreamSettings;
use crate::store::{Delivery, Finish, Store, timestamp};
use crate::upstream::Upstream;

/// Longest sleep between looks at the store.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Shortest, so that a due message that cannot start yet never makes the loop spin.
const MIN_WAIT: Duration = Duration::from_millis(20);
/// After a store error, before trying again.
const ERROR_WAIT: Duration = Duration::from_secs(1);

/// Retry and concurrency settings of the worker.
#[derive(Debug, Clone)]
pub(crate) struct RelayPolicy {
    pub(crate) retry_base: Duration,
    pub(crate) retry_cap: Duration,
    pub(crate) max_attempts: u64,
    pub(crate) max_in_flight: usize,
    /// One exchange's limit, for leases and the stop grace.
    pub(crate) timeout: Duration,
}

impl RelayPolicy {
    pub(crate) fn from_settings(settings: &UpstreamSettings) -> Self {
        Self {
            retry_base: settings.retry_base,
            retry_cap: settings.retry_cap,
            max_attempts: u64::from(settings.max_attempts),
            max_in_flight: settings.max_in_flight.max(1),
            timeout: settings.timeout,
        }
    }
}

/// A running worker.
pub(crate) struct RelayWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RelayWorker {
    /// Starts delivering from `store` to `upstream`.
    pub(crate) fn spawn(store: Store, upstream: Upstream, policy: RelayPolicy) -> Self {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(upstream = %upstream.url(), "relay worker started");
        let task = tokio::spawn(run(store, upstream, policy, stopped));
        Self { stop, task }
    }

    /// Stops starting attempts and lets those in flight finish for up to `grace`; the rest
    /// are cut short. An attempt cut short stays pending and is repeated after the next
    /// start.
    pub(crate) async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(())) => tracing::info!("relay worker stopped"),
            Ok(Err(e)) => tracing::error!(error = %e, "relay worker ended abnormally"),
            Err(_) => {
                self.task.abort();
                tracing::warn!(
                    "relay attempts still in flight at stop were cut short; they will be repeated after the next start"
                );
            }
        }
    }
}

struct Loop {
    store: Store,
    upstream: Upstream,
    policy: RelayPolicy,
    tasks: JoinSet<()>,
    /// Conversations with an attempt in flight, by task.
    busy: HashMap<tokio::task::Id, Uuid>,
}

async fn run(store: Store, upstream: Upstream, policy: RelayPolicy, mut stop: watch::Receiver<bool>) {
    match store.recover_deliveries(now()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(messages = n, "resuming deliveries interrupted by the last stop"),
        Err(e) => tracing::error!(error = %e, "could not resume interrupted deliveries"),
    }
    let queued = store.queued();
    let mut state = Loop {
        store,
        upstream,
        policy,
        tasks: JoinSet::new(),
        busy: HashMap::new(),
    };
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match state.dispatch().await {
            Ok(()) => state.next_wait().await,
            Err(e) => {
                tracing::error!(error = %e, "relay worker cannot read the store");
                ERROR_WAIT
            }
        };
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = queued.notified() => {}
            Some(done) = state.tasks.join_next_with_id(), if !state.tasks.is_empty() => state.finished(done),
            () = tokio::time::sleep(wait) => {}
        }
        while let Some(done) = state.tasks.try_join_next_with_id() {
            state.finished(done);
        }
    }
    // Let the attempts in flight record their outcome rather than repeat them after the
    // restart ([`RelayWorker::stop`] bounds the wait).
    while let Some(done) = state.tasks.join_next_with_id().await {
        state.finished(done);
    }
}

impl Loop {
    /// Starts attempts for the due conversation heads, up to the concurrency limit.
    async fn dispatch(&mut self) -> Result<(), crate::store::StoreError> {
        let capacity = self.policy.max_in_flight.saturating_sub(self.tasks.len());
        if capacity == 0 {
            return Ok(());
        }
        let limit = u32::try_from(capacity).unwrap_or(u32::MAX);
        // Each claimed message is counted as an attempt and leased until the attempt can
        // have ended: no other worker (here or on another replica) sees it due meanwhile.
        // A crash here is recovered at the next start (embedded store) or when the lease
        // runs out (shared store).
        let lease = self.policy.timeout + self.policy.retry_base;
        let claimed = self.store.claim_deliveries(limit, lease).await?;
        for (delivery, number) in claimed {
            if self.busy.values().any(|c| *c == delivery.correlation_id) {
                // Cannot happen (a conversation's head is leased while it is in flight);
                // the lease brings it back if it ever does.
                tracing::warn!(message = %delivery.id, "claimed a message of a conversation already in flight");
                continue;
            }
            let correlation_id = delivery.correlation_id;
            let handle = self.tasks.spawn(deliver(
                self.store.clone(),
                self.upstream.clone(),
                self.policy.clone(),
                delivery,
                number,
            ));
            self.busy.insert(handle.id(), correlation_id);
        }
        Ok(())
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                // The attempt stays leased and is retried when the lease runs out.
                tracing::error!(error = %e, "a delivery attempt panicked");
                e.id()
            }
        };
        self.busy.remove(&id);
    }

    /// How long to sleep before looking again.
    async fn next_wait(&self) -> Duration {
        if self.tasks.len() >= self.policy.max_in_flight {
            return MAX_WAIT;
        }
        match self.store.next_delivery_due().await {
            Ok(Some(at)) => OffsetDateTime::parse(&at, &Rfc3339)
                .map(|at| {
                    let until = at - now_utc();
                    Duration::try_from(until).unwrap_or(Duration::ZERO)
                })
                .unwrap_or(MAX_WAIT)
                .clamp(MIN_WAIT, MAX_WAIT),
            Ok(None) => MAX_WAIT,
            Err(e) => {
                tracing::error!(error = %e, "relay worker cannot read the store");
                ERROR_WAIT
            }
        }
    }
}

/// One attempt on `delivery`, recorded durably.
async fn deliver(store: Store, upstream: Upstream, policy: RelayPolicy, delivery: Delivery, number: u64) {
    let verdict = attempt(&upstream, &delivery).await;
    let finish = match verdict {
        Verdict::Delivered => {
            tracing::info!(message = %delivery.id, request_id = %delivery.request_id, attempt = number, "relayed message delivered");
            Finish::Delivered { at: now() }
        }
        Verdict::Retry(why) if number >= policy.max_attempts => {
            tracing::error!(message = %delivery.id, request_id = %delivery.request_id, attempt = number, error = %why, "relayed message is a dead letter: attempts exhausted");
            Finish::Dead {
                error: format!("gave up after {number} attempt(s); last: {why}"),
            }
        }
        Verdict::Retry(why) => {
            let delay = backoff::delay(number, policy.retry_base, policy.retry_cap);
            tracing::warn!(message = %delivery.id, request_id = %delivery.request_id, attempt = number, retry_in_ms = delay.as_millis() as u64, error = %why, "relayed message not delivered; will retry");
            Finish::Retry {
                next_at: timestamp(now_utc() + delay),
                error: why,
            }
        }
        Verdict::Refused(why) => {
            tracing::error!(message = %delivery.id, request_id = %delivery.request_id, attempt = number, error = %why, "relayed message refused by the upstream; it is a dead letter");
            Finish::Dead {
                error: format!("refused: {why}"),
            }
        }
    };
    if let Err(e) = store.finish_attempt(delivery.seq, number, finish).await {
        tracing::error!(error = %e, message = %delivery.id, "could not record a delivery attempt; it will be repeated");
    }
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn now() -> String {
    timestamp(now_utc())
}
