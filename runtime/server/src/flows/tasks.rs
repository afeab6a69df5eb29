//! A flow's task: starting it with a fresh runner, supervising it, and stopping it by
//! draining (see the parent module's docs for the order a stop follows).
//!
//! **Supervision.** A flow's task can end on its own: a store error (disk full, I/O error),
//! a step with `on_error: fail` (the record stays pending and the run stops), a panic in the
//! engine. Its records are safe in the store either way. The flow is then marked `failed`
//! with the reason (the admin API shows it; its webhooks answer 503 with `Retry-After`), and
//! after a backoff (`Limits::restart_backoff`, doubling with each failure in a row up to
//! [`MAX_RESTART_BACKOFF`]) it starts again and resumes what was pending. Enabling a failed
//! flow restarts it at once. A stop (reload, disable, shutdown) ends the backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use qiao_engine::{FlowRunner, RunnerOptions, WebhookConsumer};
use qiao_flow::TriggerPlan;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Entry, FlowState, Flows};
use crate::config::MAX_RESTART_BACKOFF;

impl Flows {
    pub(super) fn mark(&self, id: &str, state: FlowState, error: Option<String>) {
        if let Ok(mut t) = self.table.write()
            && let Some(e) = t.get_mut(id)
        {
            e.state = state;
            e.error = error;
        }
    }

    /// Starts a flow's task with a fresh runner. Failures are kept on the flow.
    pub(super) async fn start(&self, id: &str, tasks: &mut HashMap<String, JoinHandle<()>>) {
        if tasks.contains_key(id) {
            // A failed flow waiting out its backoff: restarted now.
            self.stop(id, tasks).await;
        }
        let drain = CancellationToken::new();
        let Some((plan, wake, resume)) = self.table.write().ok().and_then(|mut t| {
            t.get_mut(id).map(|e| {
                e.drain = drain.clone();
                e.runs = TaskTracker::new();
                (e.plan.clone(), e.wake.clone(), e.resume.clone())
            })
        }) else {
            return;
        };
        let store = self.store.clone();
        let runner = match FlowRunner::new(
            plan,
            |info| self.connectors.connector(info),
            store,
            RunnerOptions::default(),
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(flow = id, error = %e, "flow cannot start");
                self.mark(id, FlowState::Stopped, Some(e.to_string()));
                return;
            }
        };
        let supervisor = Supervisor {
            table: self.table.clone(),
            flow: id.to_string(),
            runner: runner.clone(),
            drain,
            intake_capacity: self.limits.intake_capacity,
            backoff: self.limits.restart_backoff,
        };
        let handle = if matches!(runner.plan().trigger, TriggerPlan::Webhook { .. }) {
            let (intake, consumer) = match runner.open_intake(self.limits.intake_capacity).await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(flow = id, error = %e, "webhook intake cannot open");
                    self.mark(id, FlowState::Stopped, Some(e.to_string()));
                    return;
                }
            };
            if let Ok(mut t) = self.table.write()
                && let Some(e) = t.get_mut(id)
            {
                e.intake = Some(intake);
            }
            tokio::spawn(supervisor.webhook(consumer))
        } else {
            tokio::spawn(supervisor.serve(wake, resume))
        };
        if let Ok(mut t) = self.table.write()
            && let Some(e) = t.get_mut(id)
        {
            e.runner = Some(runner);
            e.state = FlowState::Running;
            e.error = None;
        }
        tasks.insert(id.to_string(), handle);
    }

    /// Stops a flow's task (see the module docs); leaves the entry `Stopped`.
    pub(super) async fn stop(&self, id: &str, tasks: &mut HashMap<String, JoinHandle<()>>) {
        let taken = match self.table.write() {
            Ok(mut t) => t.get_mut(id).and_then(Self::begin_stop),
            Err(_) => None,
        };
        let Some(handle) = tasks.remove(id) else { return };
        let deadline = tokio::time::Instant::now() + self.limits.drain_timeout;
        Self::drain(id, taken, handle, deadline).await;
    }

    /// Closes a flow to new work (intake, new runs) and takes its runner, for [`Self::drain`].
    fn begin_stop(e: &mut Entry) -> Option<(FlowRunner, TaskTracker)> {
        e.intake = None;
        if matches!(e.state, FlowState::Running | FlowState::Failed) {
            e.state = FlowState::Stopped;
        }
        e.drain.cancel();
        e.runs.close();
        e.runner.take().map(|r| (r, e.runs.clone()))
    }

    /// Waits for a stopping flow until `deadline`, then cancels what is left (its records
    /// stay pending in the store) and waits for that.
    async fn drain(
        id: &str,
        taken: Option<(FlowRunner, TaskTracker)>,
        mut handle: JoinHandle<()>,
        deadline: tokio::time::Instant,
    ) {
        let Some((runner, runs)) = taken else {
            let _ = handle.await;
            return;
        };
        let drained = tokio::time::timeout_at(deadline, async {
            let _ = (&mut handle).await;
            runs.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                flow = id,
                "flow did not drain in time; stopping it, its unfinished records resume on the next start"
            );
            runner.shutdown_token().cancel();
            let _ = handle.await;
            runs.wait().await;
        }
    }

    /// Stops every flow: intakes close and no new run starts, then every flow drains, all
    /// within one drain timeout; whatever is left stays pending in the store for the next
    /// start.
    pub async fn shutdown(&self) {
        let mut tasks = self.tasks.lock().await;
        let stopping: Vec<(String, Option<(FlowRunner, TaskTracker)>)> = match self.table.write() {
            Ok(mut t) => t
                .iter_mut()
                .map(|(id, e)| {
                    let taken = Self::begin_stop(e);
                    e.state = FlowState::Stopped;
                    (id.clone(), taken)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + self.limits.drain_timeout;
        for (id, taken) in stopping {
            let Some(handle) = tasks.remove(&id) else { continue };
            Self::drain(&id, taken, handle, deadline).await;
        }
    }
}

/// What a flow's task needs to mark its flow and restart it after a failure.
struct Supervisor {
    table: Arc<RwLock<BTreeMap<String, Entry>>>,
    flow: String,
    runner: FlowRunner,
    /// The flow's stop (reload, disable, shutdown); no restart after it.
    drain: CancellationToken,
    intake_capacity: usize,
    backoff: Duration,
}

impl Supervisor {
    fn stopping(&self) -> bool {
        self.drain.is_cancelled() || self.runner.shutdown_token().is_cancelled()
    }

    /// Serves a webhook flow's consumer, reopening the intake after each failure.
    async fn webhook(self, mut consumer: WebhookConsumer) {
        let flow = self.flow.as_str();
        let mut failures = Failures::default();
        loop {
            let started = Instant::now();
            let ended = consumer.run().await;
            let mut error = match ended {
                Ok(s) if self.stopping() => {
                    tracing::info!(flow, run = s.run_id, status = ?s.info.status, "webhook consumer stopped");
                    return;
                }
                Err(e) if self.stopping() => {
                    tracing::error!(flow, error = %e, "webhook consumer failed while stopping");
                    return;
                }
                // The run stopped on its own: `on_error: fail`, or a panic in a record task.
                Ok(s) => {
                    s.info.error.unwrap_or_else(|| format!("the webhook consumer (run {}) stopped", s.run_id))
                }
                Err(e) => e.to_string(),
            };
            failures.failed(started);
            consumer = loop {
                if !self.fail_and_wait(&error, &failures).await {
                    return;
                }
                match self.runner.open_intake(self.intake_capacity).await {
                    Ok((intake, next)) => {
                        if !self.running(Some(intake)) {
                            // Stopped meanwhile: the new consumer only finishes what is pending.
                            let _ = next.run().await;
                            return;
                        }
                        break next;
                    }
                    Err(e) => {
                        error = format!("the webhook intake cannot open: {e}");
                        failures.failed(Instant::now());
                    }
                }
            };
        }
    }

    /// Serves a poll, schedule or manual flow, starting it again after each failure.
    async fn serve(self, wake: Arc<Notify>, resume: Arc<Notify>) {
        let flow = self.flow.as_str();
        let mut failures = Failures::default();
        loop {
            let started = Instant::now();
            match self.runner.serve(&wake, &resume, &self.drain).await {
                Ok(()) => return,
                Err(e) if self.stopping() => {
                    tracing::error!(flow, error = %e, "flow failed while stopping");
                    return;
                }
                Err(e) => {
                    failures.failed(started);
                    if !self.fail_and_wait(&e.to_string(), &failures).await || !self.running(None) {
                        return;
                    }
                }
            }
        }
    }

    /// Marks the flow failed (its intake closed) and waits out the backoff. False when the
    /// flow was stopped before or during the wait.
    async fn fail_and_wait(&self, error: &str, failures: &Failures) -> bool {
        let wait = failures.backoff(self.backoff);
        let flow = self.flow.as_str();
        tracing::error!(
            flow,
            error,
            failures = failures.in_a_row,
            restart_in_ms = wait.as_millis() as u64,
            "flow failed; restarting after a backoff"
        );
        metrics::counter!("qiao_flow_failures_total", "flow" => self.flow.clone()).increment(1);
        {
            let Ok(mut t) = self.table.write() else { return false };
            // Checked under the lock a stop takes first: a stop either comes before (and
            // this returns) or after (and sees the flow failed, and ends the wait).
            if self.stopping() {
                return false;
            }
            if let Some(e) = t.get_mut(flow) {
                e.state = FlowState::Failed;
                e.intake = None;
                e.error = Some(format!("{error} (restarting in {} ms)", wait.as_millis()));
                e.failures += 1;
                e.last_failure = Some(error.to_string());
            }
        }
        let shutdown = self.runner.shutdown_token();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.stopping(),
            _ = self.drain.cancelled() => false,
            _ = shutdown.cancelled() => false,
        }
    }

    /// Marks the flow running again, with its new intake. False when it is being stopped.
    fn running(&self, intake: Option<qiao_engine::Intake>) -> bool {
        let Ok(mut t) = self.table.write() else { return false };
        if self.stopping() {
            return false;
        }
        if let Some(e) = t.get_mut(&self.flow) {
            e.state = FlowState::Running;
            e.intake = intake;
            e.error = None;
        }
        tracing::info!(flow = self.flow, "flow restarted");
        true
    }
}

/// Failures of a flow in a row: a flow that ran longer than the longest backoff before it
/// failed starts counting again.
#[derive(Default)]
struct Failures {
    in_a_row: u32,
}

impl Failures {
    fn failed(&mut self, started: Instant) {
        self.in_a_row = if started.elapsed() > MAX_RESTART_BACKOFF { 1 } else { self.in_a_row + 1 };
    }

    /// `first`, doubled for each failure in a row after the first, at most
    /// [`MAX_RESTART_BACKOFF`].
    fn backoff(&self, first: Duration) -> Duration {
        let doublings = self.in_a_row.saturating_sub(1).min(16);
        first.saturating_mul(1 << doublings).min(MAX_RESTART_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_per_failure_in_a_row_up_to_the_cap() {
        let mut f = Failures::default();
        let long_ago = Instant::now();
        let waits: Vec<u64> = (0..9)
            .map(|_| {
                f.failed(long_ago);
                f.backoff(Duration::from_secs(1)).as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(Failures { in_a_row: u32::MAX }.backoff(Duration::from_secs(1)), MAX_RESTART_BACKOFF);
    }
}
