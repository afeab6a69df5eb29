//! Outbound rate limits per connection: a GCRA token bucket every HTTP request of the
//! connection's calls passes through, shared by every connection with the same connector and
//! config (so two flows talking to one ERP account share its quota), and paused when the
//! system answers that it is throttling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// A rate: `per_second` requests on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    /// Average requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed back to back (at least 1).
    pub burst: u32,
}

/// A shared limiter. Waiting is fair in arrival order: each request reserves the next free
/// slot and sleeps until it, so no request is starved by later ones.
#[derive(Debug)]
pub struct RateLimiter {
    spec: RateSpec,
    interval: Duration,
    tolerance: Duration,
    /// GCRA's theoretical arrival time of the next request.
    tat: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter for `spec` (a rate ≤ 0 is treated as one request per hour).
    pub fn new(spec: RateSpec) -> Self {
        let per_second = if spec.per_second > 0.0 { spec.per_second } else { 1.0 / 3600.0 };
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let tolerance = interval * spec.burst.max(1).saturating_sub(1);
        RateLimiter { spec, interval, tolerance, tat: Mutex::new(Instant::now()) }
    }

    /// The rate it enforces.
    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let at = {
            let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
            let base = (*tat).max(now);
            let at = base.checked_sub(self.tolerance).map_or(now, |t| t.max(now));
            *tat = base + self.interval;
            at
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }

    /// The system said it is throttling: no request before `wait` from now, then one per
    /// interval (no burst right after a throttle answer).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        *tat = (*tat).max(until + self.tolerance);
    }
}

/// Limiters by connection identity, so equal connections share one.
#[derive(Default)]
pub(crate) struct RateLimiters {
    by_key: Mutex<HashMap<String, Weak<RateLimiter>>>,
}

impl RateLimiters {
    /// The limiter for `key`, created with `spec` if there is none. While one exists, a
    /// different `spec` for the same connection is ignored with a warning (the first wins).
    pub fn get(&self, key: String, spec: RateSpec) -> Arc<RateLimiter> {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
            if existing.spec() != spec {
                tracing::warn!(kept = ?existing.spec(), ignored = ?spec, "two rate limits for one connection; the first one applies");
            }
            return existing;
        }
        let limiter = Arc::new(RateLimiter::new(spec));
        map.insert(key, Arc::downgrade(&limiter));
        limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_after_the_burst() {
        let l = RateLimiter::new(RateSpec { per_second: 5.0, burst: 2 });
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..10 {
            l.acquire().await;
            at.push(start.elapsed());
        }
        // Two at once, then one every 200 ms.
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[1], Duration::ZERO);
        for w in at[1..].windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(200), "{at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_the_rate() {
        let l = Arc::new(RateLimiter::new(RateSpec { per_second: 10.0, burst: 1 }));
        let start = Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap_or(start) - start);
        }
        times.sort();
        assert_eq!(*times.last().unwrap_or(&Duration::ZERO), Duration::from_millis(1900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_answer_pauses_everyone() {
        let l = RateLimiter::new(RateSpec { per_second: 100.0, burst: 10 });
        l.pause(Duration::from_secs(3));
        let start = Instant::now();
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(3010), "no burst right after a pause");
    }

    #[test]
    fn equal_connections_share_a_limiter() {
        let r = RateLimiters::default();
        let a = r.get("k".into(), RateSpec { per_second: 5.0, burst: 1 });
        let b = r.get("k".into(), RateSpec { per_second: 5.0, burst: 1 });
        assert!(Arc::ptr_eq(&a, &b));
        let second = r.get("k".into(), RateSpec { per_second: 2.0, burst: 1 });
        assert!(Arc::ptr_eq(&a, &second), "the first limit applies");
        let other = r.get("other".into(), RateSpec { per_second: 5.0, burst: 1 });
        assert!(!Arc::ptr_eq(&a, &other));
    }
}
