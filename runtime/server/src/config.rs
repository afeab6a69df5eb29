//! What `qiao serve` is told: where flows and state live, where to listen, and its limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder of flow files (`*.yaml`, `*.yml`).
    pub flows_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The state directory (`secrets.yaml` is read from here on every flow load).
    pub state_dir: PathBuf,
    /// Limits and timings.
    pub limits: Limits,
}

/// Limits and timings, each with a default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest webhook or API request body (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest time a request may take, body read included (default 30 s); then 503.
    pub request_timeout: Duration,
    /// Deliveries stored but not yet taken by a webhook flow's consumer (default 1024);
    /// beyond it webhooks answer 429.
    pub intake_capacity: usize,
    /// `Retry-After` seconds sent with 429 and 503 (default 1).
    pub retry_after_secs: u64,
    /// How long a stopping flow (shutdown, reload, disable) may drain before it is stopped
    /// with the rest of its records kept for the next start (default 30 s).
    pub drain_timeout: Duration,
    /// How often the flows folder is checked for changes; `None` turns watching off
    /// (default 2 s).
    pub reload_every: Option<Duration>,
    /// How long webhook delivery ids are remembered for deduplication (default 7 days).
    pub delivery_retention: Duration,
    /// The wait before a failed flow restarts (default 1 s); it doubles with each failure in
    /// a row, up to [`MAX_RESTART_BACKOFF`].
    pub restart_backoff: Duration,
}

/// The longest wait before a failed flow restarts. A flow that ran this long before failing
/// starts its backoff over.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            intake_capacity: 1024,
            retry_after_secs: 1,
            drain_timeout: Duration::from_secs(30),
            reload_every: Some(Duration::from_secs(2)),
            delivery_retention: Duration::from_secs(7 * 24 * 3600),
            restart_backoff: Duration::from_secs(1),
        }
    }
}
