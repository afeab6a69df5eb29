//! Metric handles of one runner, registered on first use and kept, so the per-record path
//! increments a counter instead of building label strings and looking the metric up.
//!
//! `qiao_records_total{flow,step,outcome}` per step and outcome,
//! `qiao_connector_call_seconds{flow,connection,operation}` per action (and `on_failure`);
//! the rarer `qiao_connector_errors_total` is recorded through the macro where it happens.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};
use qiao_flow::{ActionPlan, FlowPlan, StepKind};
use qiao_store::RecordStatus;

const STATUSES: usize = 6;

pub(crate) struct Meters {
    flow: String,
    /// `[step + 1][status]`; index 0 is "no step" (the record ran to the end).
    records: Vec<[OnceLock<Counter>; STATUSES]>,
    step_ids: Vec<String>,
}

impl Meters {
    pub(crate) fn new(plan: &FlowPlan) -> Meters {
        Meters {
            flow: plan.id.to_string(),
            records: (0..=plan.steps.len()).map(|_| Default::default()).collect(),
            step_ids: plan.steps.iter().map(|s| s.id.to_string()).collect(),
        }
    }

    /// Counts a record that reached `status` at step `step` (none: after the last step).
    pub(crate) fn record(&self, step: Option<usize>, status: RecordStatus) {
        let slot = step.map_or(0, |i| i + 1);
        let Some(cells) = self.records.get(slot) else { return };
        let counter = cells[status_index(status)].get_or_init(|| {
            let step = step.and_then(|i| self.step_ids.get(i)).cloned().unwrap_or_default();
            metrics::counter!("qiao_records_total", "flow" => self.flow.clone(), "step" => step,
                "outcome" => status_name(status))
        });
        counter.increment(1);
    }
}

/// The latency histogram of one action's calls, and the labels of its error counter.
pub(crate) struct CallMeter {
    pub flow: String,
    pub connection: String,
    pub operation: String,
    latency: OnceLock<Histogram>,
}

impl CallMeter {
    pub(crate) fn new(flow: &str, action: &ActionPlan) -> CallMeter {
        CallMeter {
            flow: flow.to_string(),
            connection: action.connection.to_string(),
            operation: action.operation.clone(),
            latency: OnceLock::new(),
        }
    }

    pub(crate) fn latency(&self, seconds: f64) {
        self.latency
            .get_or_init(|| {
                metrics::histogram!("qiao_connector_call_seconds", "flow" => self.flow.clone(),
                    "connection" => self.connection.clone(), "operation" => self.operation.clone())
            })
            .record(seconds);
    }
}

/// One [`CallMeter`] per step (`None` for steps without an action) and one for `on_failure`.
pub(crate) fn call_meters(plan: &FlowPlan) -> (Vec<Option<CallMeter>>, Option<CallMeter>) {
    let flow = plan.id.as_str();
    let steps = plan
        .steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Action(a) => Some(CallMeter::new(flow, a)),
            _ => None,
        })
        .collect();
    (steps, plan.on_failure.as_ref().map(|a| CallMeter::new(flow, a)))
}

fn status_index(status: RecordStatus) -> usize {
    match status {
        RecordStatus::Pending => 0,
        RecordStatus::Done => 1,
        RecordStatus::Filtered => 2,
        RecordStatus::Split => 3,
        RecordStatus::DeadLettered => 4,
        RecordStatus::Skipped => 5,
    }
}

fn status_name(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Pending => "pending",
        RecordStatus::Done => "done",
        RecordStatus::Filtered => "filtered",
        RecordStatus::Split => "split",
        RecordStatus::DeadLettered => "dead-lettered",
        RecordStatus::Skipped => "skipped",
    }
}
