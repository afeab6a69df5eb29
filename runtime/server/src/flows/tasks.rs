//! A flow's task: starting it with a fresh runner, and stopping it by draining (see the
//! parent module's docs for the order a stop follows).

use std::collections::HashMap;

use qiao_engine::{FlowRunner, RunnerOptions};
use qiao_flow::TriggerPlan;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Entry, FlowState, Flows};

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
        let flow = id.to_string();
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
            tokio::spawn(async move {
                match consumer.run().await {
                    Ok(s) => {
                        tracing::info!(flow, run = s.run_id, status = ?s.info.status, "webhook consumer stopped")
                    }
                    Err(e) => tracing::error!(flow, error = %e, "webhook consumer failed"),
                }
            })
        } else {
            let r = runner.clone();
            tokio::spawn(async move {
                if let Err(e) = r.serve(&wake, &resume, &drain).await {
                    tracing::error!(flow, error = %e, "flow stopped on an error");
                }
            })
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
        if e.state == FlowState::Running {
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
