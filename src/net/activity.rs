//! What an admitted connection is doing, as far as its timeouts are concerned: how many
//! requests are in flight, whether it has started one yet, and since when it has had none.
//! The service counts each request from the moment its head is complete to the moment its
//! response body is done (or dropped), for HTTP/1.1 and h2 alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shared by a connection's task and its service. A request only touches atomics: the idle
/// timer reads them when it runs out (a request since then moved the deadline later), and
/// waits for a wake-up only while a request is in flight.
#[derive(Debug, Clone)]
pub(super) struct Activity(Arc<State>);

#[derive(Debug)]
struct State {
    /// When the connection was admitted; the origin of `idle_since`.
    admitted: Instant,
    in_flight: AtomicUsize,
    started: AtomicBool,
    /// When the last request ended, in nanoseconds after `admitted`.
    idle_since: AtomicU64,
    /// Woken when the first request starts and whenever the last in flight ends.
    changed: Notify,
}

/// One request in flight, until dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<State>);

/// Why a connection's idle timer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// It never started a request within the first-request timeout.
    BeforeFirstRequest,
    /// It served requests, then had none in flight for the idle timeout.
    BetweenRequests,
}

impl Activity {
    /// A connection admitted now, with nothing in flight.
    pub(super) fn new() -> Self {
        Self(Arc::new(State {
            admitted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            changed: Notify::new(),
        }))
    }

    /// Counts a request from its complete head until the guard is dropped.
    pub(super) fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.0.started.swap(true, Ordering::AcqRel) {
            self.0.changed.notify_waiters();
        }
        InFlight(self.0.clone())
    }

    /// Resolves once the connection has started a request.
    pub(super) async fn first_request(&self) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so that a start in between still wakes it.
            changed.as_mut().enable();
            if self.0.started.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }

    /// Resolves when the connection has had no request in flight for `first` since it was
    /// admitted (before any request) or for `between` since its last one ended.
    pub(super) async fn idle(&self, first: Duration, between: Duration) -> Idle {
        let state = &self.0;
        loop {
            let changed = state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if state.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            // Read after `in_flight`: the request that ended last wrote its end first.
            let (limit, why) = match state.started.load(Ordering::Acquire) {
                false => (first, Idle::BeforeFirstRequest),
                true => (between, Idle::BetweenRequests),
            };
            let since = Duration::from_nanos(state.idle_since.load(Ordering::Acquire));
            let deadline = state.admitted + since + limit;
            if Instant::now() >= deadline {
                return why;
            }
            match why {
                // The first request changes which timeout applies (the idle one may be
                // shorter): wake for it.
                Idle::BeforeFirstRequest => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = changed => {}
                    }
                }
                // A request since only moves the deadline later: looked at when it is reached.
                Idle::BetweenRequests => tokio::time::sleep_until(deadline).await,
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        // Written before the count falls, so that whoever sees no request in flight sees
        // when the last one ended (h2 streams may end together: the latest end is kept).
        let ended = u64::try_from(state.admitted.elapsed().as_nanos()).unwrap_or(u64::MAX);
        state.idle_since.fetch_max(ended, Ordering::AcqRel);
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(50);
    const BETWEEN: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn times_out_only_with_nothing_in_flight() {
        let activity = Activity::new();
        let request = activity.begin();
        let idle = tokio::time::timeout(BETWEEN * 4, activity.idle(FIRST, BETWEEN));
        assert!(idle.await.is_err(), "a request in flight is never idle");
        drop(request);
        idle_between_requests_from_now(&activity).await;
    }

    /// The last request (or stream) just ended: `activity` goes idle between requests, no
    /// sooner than the between-requests timeout from now.
    async fn idle_between_requests_from_now(activity: &Activity) {
        let ended = Instant::now();
        let why = tokio::time::timeout(Duration::from_secs(10), activity.idle(FIRST, BETWEEN)).await;
        assert_eq!(why, Ok(Idle::BetweenRequests));
        assert!(
            ended.elapsed() >= BETWEEN,
            "counted from the end of the last request"
        );
    }

    #[tokio::test]
    async fn streams_ending_together_count_from_the_last_end_and_a_start_wakes_first_request() {
        let activity = Activity::new();
        let waiting = tokio::spawn({
            let activity = activity.clone();
            async move { activity.first_request().await }
        });
        tokio::time::sleep(FIRST / 5).await;
        let (a, b) = (activity.begin(), activity.begin());
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the first request wakes the waiter")
            .unwrap();
        // Longer than the first-request timeout with both in flight: never idle meanwhile.
        tokio::time::sleep(FIRST * 2).await;
        drop(a);
        tokio::time::sleep(BETWEEN / 2).await;
        drop(b);
        idle_between_requests_from_now(&activity).await;
    }

    #[tokio::test]
    async fn a_request_during_the_timer_moves_the_deadline() {
        let activity = Activity::new();
        drop(activity.begin());
        let watching = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(FIRST, BETWEEN).await }
        });
        tokio::time::sleep(BETWEEN * 3 / 4).await;
        let request = activity.begin();
        tokio::time::sleep(BETWEEN / 2).await;
        assert!(!watching.is_finished(), "not idle while a request is in flight");
        drop(request);
        let ended = Instant::now();
        let why = tokio::time::timeout(Duration::from_secs(10), watching)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(why, Idle::BetweenRequests);
        assert!(
            ended.elapsed() >= BETWEEN,
            "counted from the end of the later request"
        );
    }

    #[tokio::test]
    async fn an_idle_timeout_shorter_than_the_first_request_one_applies_after_the_first_request() {
        let (first, between) = (Duration::from_secs(300), Duration::from_millis(100));
        let activity = Activity::new();
        let watching = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(first, between).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(activity.begin());
        let why = tokio::time::timeout(Duration::from_secs(10), watching).await;
        assert_eq!(
            why.expect("closed after the idle timeout, not the first-request one")
                .unwrap(),
            Idle::BetweenRequests
        );
    }

    #[tokio::test]
    async fn a_connection_without_requests_gets_the_first_request_timeout() {
        let activity = Activity::new();
        let why = tokio::time::timeout(Duration::from_secs(10), activity.idle(FIRST, BETWEEN)).await;
        assert_eq!(why, Ok(Idle::BeforeFirstRequest));
    }
}
