//! What an admitted connection is doing, as far as its timeouts are concerned: how many
//! requests are in flight, whether it has started one yet, and since when it has had none.
//! The service counts each request from the moment its head is complete to the moment its
//! response body is done (or dropped), for HTTP/1.1 and h2 alike.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Shared by a connection's task and its service.
#[derive(Debug, Clone)]
pub(super) struct Activity(watch::Sender<State>);

#[derive(Debug, Clone, Copy)]
struct State {
    in_flight: usize,
    started: u64,
    idle_since: Instant,
}

/// One request in flight, until dropped.
#[derive(Debug)]
pub(super) struct InFlight(watch::Sender<State>);

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
        Self(watch::Sender::new(State {
            in_flight: 0,
            started: 0,
            idle_since: Instant::now(),
        }))
    }

    /// Counts a request from its complete head until the guard is dropped.
    pub(super) fn begin(&self) -> InFlight {
        self.0.send_modify(|s| {
            s.in_flight += 1;
            s.started += 1;
        });
        InFlight(self.0.clone())
    }

    /// Resolves once the connection has started a request.
    pub(super) async fn first_request(&self) {
        let mut state = self.0.subscribe();
        // The sender lives in `self`, so the wait cannot end in an error.
        let _ = state.wait_for(|s| s.started > 0).await;
    }

    /// Resolves when the connection has had no request in flight for `first` since it was
    /// admitted (before any request) or for `between` since its last one ended.
    pub(super) async fn idle(&self, first: Duration, between: Duration) -> Idle {
        let mut state = self.0.subscribe();
        loop {
            let now = *state.borrow_and_update();
            if now.in_flight > 0 {
                let _ = state.changed().await;
                continue;
            }
            let (limit, why) = match now.started {
                0 => (first, Idle::BeforeFirstRequest),
                _ => (between, Idle::BetweenRequests),
            };
            tokio::select! {
                () = tokio::time::sleep_until(now.idle_since + limit) => return why,
                _ = state.changed() => {}
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
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
        let ended = Instant::now();
        let why = tokio::time::timeout(Duration::from_secs(10), activity.idle(FIRST, BETWEEN)).await;
        assert_eq!(why, Ok(Idle::BetweenRequests));
        assert!(
            ended.elapsed() >= BETWEEN,
            "counted from the end of the last request"
        );
    }

    #[tokio::test]
    async fn a_connection_without_requests_gets_the_first_request_timeout() {
        let activity = Activity::new();
        let why = tokio::time::timeout(Duration::from_secs(10), activity.idle(FIRST, BETWEEN)).await;
        assert_eq!(why, Ok(Idle::BeforeFirstRequest));
    }
}
