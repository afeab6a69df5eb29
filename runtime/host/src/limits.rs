//! Per-connector sandbox limits: one place, every limit named and defaulted.

use std::time::Duration;

use serde::Deserialize;

/// The limits one call of a connector runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory a call may grow to.
    pub memory_bytes: u64,
    /// Guest CPU time per call, measured in epoch ticks while guest code runs.
    pub cpu_time: Duration,
    /// Wall-clock time per call, host calls (HTTP) included.
    pub call_timeout: Duration,
    /// Longest single outbound HTTP request; a connector may ask for less.
    pub http_timeout: Duration,
    /// Largest outbound HTTP response body.
    pub http_max_response_bytes: u64,
    /// Outbound HTTP requests per call.
    pub http_max_requests: u32,
    /// Log lines per call; further lines are dropped with one warning.
    pub log_lines: u32,
    /// Longest log line kept, in bytes.
    pub log_line_bytes: usize,
    /// Longest `kv` key, in bytes.
    pub kv_key_bytes: usize,
    /// Largest `kv` value, in bytes.
    pub kv_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(5),
            call_timeout: Duration::from_secs(60),
            http_timeout: Duration::from_secs(30),
            http_max_response_bytes: 16 << 20,
            http_max_requests: 1000,
            log_lines: 1000,
            log_line_bytes: 8 << 10,
            kv_key_bytes: 512,
            kv_value_bytes: 64 << 10,
        }
    }
}

/// An admin's per-connector changes to the default [`Limits`]; unset fields keep the default.
/// Durations are given in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`Limits::memory_bytes`].
    pub memory_bytes: Option<u64>,
    /// See [`Limits::cpu_time`].
    pub cpu_time_ms: Option<u64>,
    /// See [`Limits::call_timeout`].
    pub call_timeout_ms: Option<u64>,
    /// See [`Limits::http_timeout`].
    pub http_timeout_ms: Option<u64>,
    /// See [`Limits::http_max_response_bytes`].
    pub http_max_response_bytes: Option<u64>,
    /// See [`Limits::http_max_requests`].
    pub http_max_requests: Option<u32>,
    /// See [`Limits::log_lines`].
    pub log_lines: Option<u32>,
}

impl Limits {
    /// These limits with `o`'s fields applied.
    pub fn with(&self, o: &LimitsOverride) -> Limits {
        let ms = Duration::from_millis;
        Limits {
            memory_bytes: o.memory_bytes.unwrap_or(self.memory_bytes),
            cpu_time: o.cpu_time_ms.map(ms).unwrap_or(self.cpu_time),
            call_timeout: o.call_timeout_ms.map(ms).unwrap_or(self.call_timeout),
            http_timeout: o.http_timeout_ms.map(ms).unwrap_or(self.http_timeout),
            http_max_response_bytes: o.http_max_response_bytes.unwrap_or(self.http_max_response_bytes),
            http_max_requests: o.http_max_requests.unwrap_or(self.http_max_requests),
            log_lines: o.log_lines.unwrap_or(self.log_lines),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_changes_only_given_fields() {
        let base = Limits::default();
        let o = LimitsOverride { memory_bytes: Some(8 << 20), cpu_time_ms: Some(250), ..Default::default() };
        let l = base.with(&o);
        assert_eq!(l.memory_bytes, 8 << 20);
        assert_eq!(l.cpu_time, Duration::from_millis(250));
        assert_eq!(l.call_timeout, base.call_timeout);
    }

    #[test]
    fn override_rejects_unknown_fields() {
        let r: Result<LimitsOverride, _> = serde_json::from_str(r#"{"memory": 1}"#);
        assert!(r.is_err());
    }
}
