//! The optional global rate limit: a token bucket refilled at the configured rate, holding
//! at most one second's worth of requests. Beyond it requests get 429 `REC_TOO_MANY_REQUESTS`.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket, or no limit.
#[derive(Debug)]
pub(crate) struct RateLimit(Option<Mutex<Bucket>>);

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// `per_second` requests a second; `None` = unlimited.
    pub(crate) fn new(per_second: Option<u32>) -> Self {
        Self(per_second.map(|rate| {
            let per_second = f64::from(rate);
            Mutex::new(Bucket {
                per_second,
                tokens: per_second,
                refilled: Instant::now(),
            })
        }))
    }

    /// Takes a token if one is available.
    pub(crate) fn admit(&self) -> bool {
        let Some(bucket) = &self.0 else {
            return true;
        };
        let mut b = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * b.per_second).min(b.per_second);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_of_one_second_then_refuses() {
        let limit = RateLimit::new(Some(5));
        assert_eq!((0..10).filter(|_| limit.admit()).count(), 5);
        std::thread::sleep(std::time::Duration::from_millis(450));
        assert!(limit.admit(), "refilled at 5 a second");
        assert!(RateLimit::new(None).admit());
    }
}
