//! Backoff for retries: exponential, capped, with jitter, never shorter than a retry-after.

use std::time::Duration;

use qiao_flow::RetryPolicy;

/// The wait before attempt `attempt + 1` (the first retry follows attempt 1): `backoff ·
/// 2^(attempt-1)`, capped at `max_backoff`, then "equal jitter" (half fixed, half random) so
/// records failing together do not retry together; at least `retry_after` when the remote
/// system asked for it.
pub fn backoff(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base: Duration = policy.backoff.into();
    let max: Duration = policy.max_backoff.into();
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let half = exp / 2;
    let jittered = half + half.mul_f64(fastrand::f64());
    match retry_after {
        Some(ra) if ra > jittered => ra,
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_flow::Duration as FlowDuration;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            backoff: FlowDuration::from_millis(100),
            max_backoff: FlowDuration::from_millis(1000),
        }
    }

    #[test]
    fn grows_exponentially_with_jitter_and_cap() {
        for _ in 0..100 {
            let d1 = backoff(&policy(), 1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = backoff(&policy(), 3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d9 = backoff(&policy(), 9, None);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000), "{d9:?}");
        }
    }

    #[test]
    fn honours_retry_after() {
        assert_eq!(backoff(&policy(), 1, Some(Duration::from_secs(3))), Duration::from_secs(3));
    }
}
