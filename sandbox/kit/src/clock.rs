//! The sandbox's notion of time: the wall clock plus an offset tests can advance.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds plus an adjustable offset, shared by every fake of one sandbox.
/// Advancing it expires tokens and sessions the way waiting would, without waiting.
#[derive(Clone, Default, Debug)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock reading the wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, offset included.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        wall + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Seconds since the Unix epoch, offset included.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves time forward (or back, with a negative value) by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy() {
        let a = Clock::new();
        let b = a.clone();
        let before = b.now_ms();
        a.advance_ms(7_200_000);
        assert!(b.now_ms() >= before + 7_200_000);
    }
}
