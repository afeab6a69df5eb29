//! Every request a fake answered, in order: for counting calls, spotting duplicate writes and
//! measuring the spacing of calls.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// One answered request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// Sandbox-clock milliseconds when the request arrived.
    pub at_ms: i64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// The status answered (0 when the connection was reset).
    pub status: u16,
    /// The fault the kit injected, if any: "throttle", "fail", "reset", "slow".
    pub fault: Option<&'static str>,
}

/// A bounded record of answered requests (the oldest are dropped past the capacity).
#[derive(Debug)]
pub struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    capacity: usize,
}

impl Default for Journal {
    fn default() -> Self {
        Self { entries: Mutex::default(), capacity: 100_000 }
    }
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<JournalEntry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one entry.
    pub fn push(&self, entry: JournalEntry) {
        let mut e = self.lock();
        if e.len() == self.capacity {
            e.pop_front();
        }
        e.push_back(entry);
    }

    /// Everything recorded, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.lock().iter().cloned().collect()
    }

    /// Entries whose method is `method` and whose path ends with `path_suffix`.
    pub fn matching(&self, method: &str, path_suffix: &str) -> Vec<JournalEntry> {
        self.lock().iter().filter(|e| e.method == method && e.path.ends_with(path_suffix)).cloned().collect()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
