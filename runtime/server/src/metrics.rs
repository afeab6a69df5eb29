//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered by our own
//! `/metrics` route. The engine records runs, records and connector calls; the server adds
//! webhook requests by status, and at each scrape the queue depth of every webhook flow and
//! the dead-letter count per flow.
//!
//! Names: `qiao_runs_total{flow,status}`, `qiao_records_total{flow,step,outcome}`,
//! `qiao_records_in_total{flow}`, `qiao_connector_call_seconds{flow,connection,operation}`
//! (histogram), `qiao_connector_errors_total{flow,connection,operation,class}`,
//! `qiao_webhook_requests_total{flow,status}`, `qiao_intake_queue_depth{flow}`,
//! `qiao_dead_letters{flow}`; the state store's group commits: `qiao_store_commits_total`,
//! `qiao_store_commit_writes` (writes per commit) and `qiao_store_commit_seconds`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle; installs the recorder on first use. `None` if another
/// recorder was installed first (then `/metrics` is empty).
pub(crate) fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets =
                [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("qiao_store_commit_writes".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            start_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// Drains recorded histogram samples into their buckets every few seconds. The recorder keeps
/// every sample until then, so without it memory grows with the request count between
/// scrapes (and without bound when nothing scrapes `/metrics`). A thread, not a task: the
/// recorder is process-wide and outlives any one runtime.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("qiao-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "metrics upkeep thread cannot start; histograms drain only when scraped");
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

pub(crate) async fn render(State(app): State<Arc<AppState>>) -> Response {
    for (flow, depth) in app.flows.queue_depths() {
        metrics::gauge!("qiao_intake_queue_depth", "flow" => flow).set(depth as f64);
    }
    let mut dead: BTreeMap<String, usize> = app.flows.list().into_iter().map(|f| (f.id, 0)).collect();
    if let Ok(all) = app.store.list_dead_letters(None) {
        for (_, dl) in all {
            *dead.entry(dl.flow).or_default() += 1;
        }
    }
    for (flow, n) in dead {
        metrics::gauge!("qiao_dead_letters", "flow" => flow).set(n as f64);
    }
    let text = handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
