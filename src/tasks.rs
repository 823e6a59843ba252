//! Work that must end before the process does: a count of running tasks that the shutdown
//! drain waits on. A state-changing handler outlives its request (see `http/pipeline.rs`),
//! so it outlives its connection too, and the drain of connections alone would not wait
//! for it.

use std::sync::Arc;

use tokio::sync::watch;

/// Counts the tasks holding a [`TaskToken`].
#[derive(Debug, Clone)]
pub(crate) struct TaskTracker(Arc<watch::Sender<usize>>);

/// Held by a tracked task until it ends.
#[derive(Debug)]
pub(crate) struct TaskToken(Arc<watch::Sender<usize>>);

impl TaskTracker {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Counts one more running task until the token is dropped.
    pub(crate) fn token(&self) -> TaskToken {
        self.0.send_modify(|n| *n += 1);
        TaskToken(self.0.clone())
    }

    /// How many tracked tasks are running.
    pub(crate) fn running(&self) -> usize {
        *self.0.borrow()
    }

    /// Resolves once no tracked task is running.
    pub(crate) async fn idle(&self) {
        let mut running = self.0.subscribe();
        // The sender lives in `self`, so the wait cannot end in an error.
        let _ = running.wait_for(|n| *n == 0).await;
    }
}

impl Drop for TaskToken {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_token() {
        let tracker = TaskTracker::new();
        let a = tracker.token();
        let b = tracker.token();
        assert_eq!(tracker.running(), 2);
        drop(a);
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one task still runs");
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("idle once the last token is dropped")
            .expect("join");
        assert_eq!(tracker.running(), 0);
    }
}
