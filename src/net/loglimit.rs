//! Keeps refused-connection logging bounded: a scanner hammering the port must not flood the
//! logs. Counters still count every refusal; only the log lines are sampled.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Log lines allowed per window.
const PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

/// A fixed-window limiter for log lines.
#[derive(Debug)]
pub(crate) struct LogLimit(Mutex<Window>);

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        Self(Mutex::new(Window {
            started: Instant::now(),
            logged: 0,
            suppressed: 0,
        }))
    }
}

impl LogLimit {
    /// `Some(n)` when this line may be logged, `n` being how many were suppressed since the
    /// last one that was; `None` when it must be dropped.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut w = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.started.elapsed() >= WINDOW {
            w.started = Instant::now();
            w.logged = 0;
        }
        if w.logged < PER_WINDOW {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_then_counts_what_it_drops() {
        let limit = LogLimit::default();
        for _ in 0..PER_WINDOW {
            assert_eq!(limit.admit(), Some(0));
        }
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        std::thread::sleep(WINDOW);
        assert_eq!(limit.admit(), Some(2));
    }
}
