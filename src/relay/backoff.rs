//! Retry delays: exponential from `base`, capped, with "equal jitter" (half the delay fixed,
//! half random) so that retries after an upstream outage spread out but never come at once.

use std::time::Duration;

/// The delay after failed attempt number `attempt` (from 1).
pub(super) fn delay(attempt: u64, base: Duration, cap: Duration) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1).min(31)).unwrap_or(31);
    let full = base.saturating_mul(1u32 << doublings).min(cap);
    let half = full / 2;
    half + half.mul_f64(unit_random())
}

/// A uniform value in `[0, 1)`. Not secret: any source would do; this is the one in the tree.
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap_with_jitter() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        for (attempt, full) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (40, 60), (u64::MAX, 60)] {
            for _ in 0..50 {
                let d = delay(attempt, base, cap);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let base = Duration::from_secs(10);
        let delays: std::collections::HashSet<_> = (0..20).map(|_| delay(1, base, base)).collect();
        assert!(delays.len() > 1);
    }
}
