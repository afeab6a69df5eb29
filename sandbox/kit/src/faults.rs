//! Fault injection: counters a test arms and the fake consumes, one request at a time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Answer the next `count` calls with `status` (a 5xx by default), in the system's error shape.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    /// How many calls.
    pub count: u32,
    /// The HTTP status (500 unless given).
    #[serde(default = "default_fail_status")]
    pub status: u16,
}

fn default_fail_status() -> u16 {
    500
}

/// Hold the next `count` answers back for `ms` milliseconds.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Slow {
    /// How many calls.
    pub count: u32,
    /// Delay of each.
    pub ms: u64,
}

/// Reject some items of the next `count` bulk writes: the items at `items` (0-based positions
/// in the request), each with the system's per-item error.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    /// How many bulk writes.
    pub count: u32,
    /// Positions to reject (position 0 unless given).
    #[serde(default = "default_partial_items")]
    pub items: Vec<usize>,
}

fn default_partial_items() -> Vec<usize> {
    vec![0]
}

/// What to go wrong next, as posted to `/_sandbox/faults`. Every field is optional; counters add
/// to what is already armed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Answer the next N calls with the system's own throttle answer.
    #[serde(default)]
    pub throttle: u32,
    /// Answer the next calls with a server error.
    #[serde(default)]
    pub fail: Option<Fail>,
    /// Answer the next calls slowly.
    #[serde(default)]
    pub slow: Option<Slow>,
    /// Drop the connection of the next N calls without a complete answer.
    #[serde(default)]
    pub reset: u32,
    /// Expire every token and session issued so far.
    #[serde(default)]
    pub expire_tokens: bool,
    /// Invalidate every CSRF token issued so far (the session survives).
    #[serde(default)]
    pub invalidate_csrf: bool,
    /// Sign the next N outgoing webhook deliveries wrongly, or reject the next N incoming
    /// signatures (whichever the system does).
    #[serde(default)]
    pub bad_signature: u32,
    /// Reject some items of the next bulk writes.
    #[serde(default)]
    pub partial: Option<Partial>,
    /// Move the sandbox clock forward by this many milliseconds.
    #[serde(default)]
    pub advance_clock_ms: i64,
}

#[derive(Default, Debug)]
struct Armed {
    throttle: u32,
    fail: Option<Fail>,
    slow: Option<Slow>,
    reset: u32,
    bad_signature: u32,
    partial: Option<Partial>,
}

/// The faults armed for one system. Each `take_*` consumes one occurrence.
#[derive(Default, Debug)]
pub struct Faults {
    armed: Mutex<Armed>,
    token_epoch: AtomicU64,
    csrf_epoch: AtomicU64,
}

/// What the fault layer does to one request, decided before the handler runs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestFaults {
    pub delay_ms: u64,
    pub reset: bool,
    pub fail: Option<u16>,
    pub throttle: bool,
}

impl Faults {
    fn armed(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arms everything in `plan` (the clock part is applied by the caller, which owns the clock).
    pub fn arm(&self, plan: &FaultPlan) {
        let mut a = self.armed();
        a.throttle += plan.throttle;
        a.reset += plan.reset;
        a.bad_signature += plan.bad_signature;
        if let Some(f) = plan.fail {
            a.fail = Some(Fail { count: a.fail.map_or(0, |old| old.count) + f.count, status: f.status });
        }
        if let Some(s) = plan.slow {
            a.slow = Some(Slow { count: a.slow.map_or(0, |old| old.count) + s.count, ms: s.ms });
        }
        if let Some(p) = &plan.partial {
            a.partial = Some(p.clone());
        }
        drop(a);
        if plan.expire_tokens {
            self.expire_tokens();
        }
        if plan.invalidate_csrf {
            self.invalidate_csrf();
        }
    }

    /// Disarms every pending fault (issued tokens stay as they are).
    pub fn clear(&self) {
        *self.armed() = Armed::default();
    }

    /// Throttle the next `n` calls.
    pub fn throttle_next(&self, n: u32) {
        self.armed().throttle += n;
    }

    /// Answer the next `n` calls with `status`.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.arm(&FaultPlan { fail: Some(Fail { count: n, status }), ..FaultPlan::default() });
    }

    /// Delay the next `n` answers by `ms`.
    pub fn slow_next(&self, n: u32, ms: u64) {
        self.arm(&FaultPlan { slow: Some(Slow { count: n, ms }), ..FaultPlan::default() });
    }

    /// Reset the connection of the next `n` calls.
    pub fn reset_next(&self, n: u32) {
        self.armed().reset += n;
    }

    /// Wrong signatures for the next `n` deliveries or checks.
    pub fn bad_signature_next(&self, n: u32) {
        self.armed().bad_signature += n;
    }

    /// Reject the items at `items` in the next `n` bulk writes.
    pub fn partial_next(&self, n: u32, items: Vec<usize>) {
        self.armed().partial = Some(Partial { count: n, items });
    }

    /// Expires every token and session issued so far.
    pub fn expire_tokens(&self) {
        self.token_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Invalidates every CSRF token issued so far.
    pub fn invalidate_csrf(&self) {
        self.csrf_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The current token epoch: tokens issued in an older epoch are expired.
    pub fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    /// The current CSRF epoch: CSRF tokens issued in an older epoch are invalid.
    pub fn csrf_epoch(&self) -> u64 {
        self.csrf_epoch.load(Ordering::SeqCst)
    }

    /// Consumes one armed bad signature.
    pub fn take_bad_signature(&self) -> bool {
        let mut a = self.armed();
        if a.bad_signature > 0 {
            a.bad_signature -= 1;
            true
        } else {
            false
        }
    }

    /// Consumes one armed partial failure: the positions to reject in this bulk write.
    pub fn take_partial(&self) -> Option<Vec<usize>> {
        let mut a = self.armed();
        let p = a.partial.as_mut()?;
        let items = p.items.clone();
        p.count = p.count.saturating_sub(1);
        if p.count == 0 {
            a.partial = None;
        }
        Some(items)
    }

    /// Decides the generic faults of one incoming request, consuming them. Order: a reset wins,
    /// then a server error, then a throttle; a delay applies to whatever answer follows.
    pub(crate) fn take_request(&self) -> RequestFaults {
        let mut a = self.armed();
        let mut out = RequestFaults::default();
        if let Some(s) = a.slow.as_mut() {
            out.delay_ms = s.ms;
            s.count = s.count.saturating_sub(1);
            if s.count == 0 {
                a.slow = None;
            }
        }
        if a.reset > 0 {
            a.reset -= 1;
            out.reset = true;
            return out;
        }
        if let Some(f) = a.fail.as_mut() {
            out.fail = Some(f.status);
            f.count = f.count.saturating_sub(1);
            if f.count == 0 {
                a.fail = None;
            }
            return out;
        }
        if a.throttle > 0 {
            a.throttle -= 1;
            out.throttle = true;
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_consumed_in_order() {
        let f = Faults::default();
        f.arm(
            &serde_json::from_str(r#"{"throttle": 1, "fail": {"count": 1, "status": 503}, "reset": 1}"#)
                .unwrap(),
        );
        assert!(f.take_request().reset);
        assert_eq!(f.take_request().fail, Some(503));
        assert!(f.take_request().throttle);
        assert_eq!(f.take_request(), RequestFaults::default());
    }

    #[test]
    fn partial_failures_run_out() {
        let f = Faults::default();
        f.partial_next(2, vec![1, 3]);
        assert_eq!(f.take_partial(), Some(vec![1, 3]));
        assert_eq!(f.take_partial(), Some(vec![1, 3]));
        assert_eq!(f.take_partial(), None);
    }

    #[test]
    fn unknown_fault_fields_are_refused() {
        let err = serde_json::from_str::<FaultPlan>(r#"{"throtle": 1}"#).unwrap_err();
        assert!(err.to_string().contains("throtle"), "{err}");
    }

    #[test]
    fn expiry_moves_the_epoch() {
        let f = Faults::default();
        let e = f.token_epoch();
        f.arm(&FaultPlan { expire_tokens: true, ..FaultPlan::default() });
        assert_eq!(f.token_epoch(), e + 1);
        assert_eq!(f.csrf_epoch(), 0);
    }
}
