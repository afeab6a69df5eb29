//! One record through the steps: expressions, action calls with retries, checkpoints, and
//! the terminal write (done, filtered, skipped, dead-lettered).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qiao_contract::ErrorClass;
use qiao_flow::{ActionPlan, EvalContext, EvalError, FlowPlan, OnError, RetryPolicy, StepKind, StepPlan};
use qiao_host::CallError;
use qiao_store::{DeadLetter, RecordOutcome, RecordState, RecordStatus, RecordWrite, RunId};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::keys::idempotency_key;
use crate::meters::CallMeter;
use crate::pipeline::{Commit, Committer};
use crate::retry::backoff;
use crate::runner::{Inner, now_ms};

/// How a record's processing ended (for this process).
pub(crate) enum RecordResult {
    /// Reached a terminal status, stored.
    Terminal(RecordStatus),
    /// Split by `foreach` into these children (already stored as pending).
    Split(Vec<(u64, RecordState)>),
    /// Reached the `batch` step (`next_step` is its index): waits for its group.
    Parked(RecordState),
    /// Shutdown asked; the record stays pending in the store and resumes at the next start.
    Interrupted,
}

/// A step that failed for good.
#[derive(Clone)]
pub(crate) struct StepFailure {
    pub class: ErrorClass,
    pub message: String,
    pub attempts: u32,
}

impl StepFailure {
    pub(crate) fn eval(e: EvalError) -> Self {
        StepFailure { class: ErrorClass::InvalidInput, message: e.to_string(), attempts: 1 }
    }
}

enum ActionError {
    Failed(StepFailure),
    Interrupted,
}

/// Where a record is: enough to write its progress.
pub(crate) struct Slot {
    pub run_id: RunId,
    pub batch: u64,
    pub seq: u64,
    /// The batch's next free sequence number (for `foreach` children).
    pub next_seq: Arc<AtomicU64>,
    /// The consumer's completer: terminal writes go there instead of waiting for a commit.
    pub commits: Option<Committer>,
}

/// Where the pure steps (`map`, `filter`, `when`) left a record.
pub(crate) enum Pure {
    /// At an action or `foreach` step whose `when` holds (`state.next_step` is it).
    Effect,
    /// At the `batch` step.
    Batch,
    /// Ran every step, or a filter dropped it at this step.
    Terminal(RecordStatus, Option<usize>),
    /// An expression failed at this step.
    Failed(usize, StepFailure),
}

/// Runs the pure steps from `state.next_step` on, in place: up to the next action, `foreach`
/// or `batch` step, or to the end. `ctx` holds the record (`state.data` is not kept current).
/// Nothing here has an effect outside, so nothing needs a checkpoint.
pub(crate) fn run_pure(plan: &FlowPlan, state: &mut RecordState, ctx: &mut EvalContext) -> Pure {
    while state.next_step < plan.steps.len() {
        let i = state.next_step;
        let step = &plan.steps[i];
        if let StepKind::Batch(_) = &step.kind {
            return Pure::Batch;
        }
        if let Some(when) = &step.when {
            match when.is_true(ctx) {
                Ok(true) => {}
                Ok(false) => {
                    state.next_step += 1;
                    continue;
                }
                Err(e) => return Pure::Failed(i, StepFailure::eval(e)),
            }
        }
        match &step.kind {
            StepKind::Map(template) => match template.eval(ctx) {
                Ok(v) => ctx.replace_record(v),
                Err(e) => return Pure::Failed(i, StepFailure::eval(e)),
            },
            StepKind::Filter(expr) => match expr.is_true(ctx) {
                Ok(true) => {}
                Ok(false) => return Pure::Terminal(RecordStatus::Filtered, Some(i)),
                Err(e) => return Pure::Failed(i, StepFailure::eval(e)),
            },
            StepKind::Action(_) | StepKind::Foreach(_) => return Pure::Effect,
            StepKind::Batch(_) => return Pure::Batch,
        }
        state.next_step = i + 1;
    }
    Pure::Terminal(RecordStatus::Done, None)
}

/// The evaluation context of a record taken from the store: its data and its stored action
/// outputs. Takes `state.data`.
pub(crate) fn context(flow: &str, state: &mut RecordState) -> EvalContext {
    let mut ctx = EvalContext::with_record(flow, std::mem::take(&mut state.data));
    for (step, output) in &state.outputs {
        ctx.set_step_output(step, output);
    }
    ctx
}

/// Processes a record from `state.next_step`. With `at_effect`, the pure steps before have
/// run already ([`run_pure`] returned [`Pure::Effect`]) and `ctx` holds the record.
pub(crate) async fn process(
    rt: &Inner,
    slot: Slot,
    mut state: RecordState,
    mut ctx: EvalContext,
    mut at_effect: bool,
) -> Result<RecordResult, qiao_store::StoreError> {
    let plan = &rt.plan;
    let flow = plan.id.as_str();
    loop {
        if !at_effect {
            match run_pure(plan, &mut state, &mut ctx) {
                Pure::Effect => {}
                Pure::Batch => {
                    state.data = ctx.take_record();
                    return Ok(RecordResult::Parked(state));
                }
                Pure::Terminal(status, at) => {
                    return finish(rt, &slot, state, status, at.map(|i| &plan.steps[i]), None).await;
                }
                Pure::Failed(i, failure) => {
                    state.data = ctx.take_record();
                    return fail(rt, &slot, state, &plan.steps[i], failure).await;
                }
            }
        }
        at_effect = false;
        if rt.shutdown.is_cancelled() {
            return Ok(RecordResult::Interrupted);
        }
        let i = state.next_step;
        let step = &plan.steps[i];
        match &step.kind {
            StepKind::Action(action) => {
                let input = match action.input.eval(&ctx) {
                    Ok(v) => v,
                    Err(e) => {
                        state.data = ctx.take_record();
                        return fail(rt, &slot, state, step, StepFailure::eval(e)).await;
                    }
                };
                let key = idempotency_key(flow, &state.key, step.id.as_str());
                match call_action(rt, rt.step_meters[i].as_ref(), action, &input, &key, &step.retry).await {
                    Ok(output) => {
                        ctx.set_step_output(step.id.as_str(), &output);
                        state.outputs.insert(step.id.to_string(), output);
                        state.next_step = i + 1;
                        // Checkpoint so a restart does not repeat this call. After the last
                        // step the terminal write below serves as the checkpoint.
                        if state.next_step < plan.steps.len() {
                            state.data = ctx.record().clone();
                            rt.store.save_record(flow, slot.batch, slot.seq, &state, None, None).await?;
                            state.data = Value::Null;
                        }
                    }
                    Err(ActionError::Interrupted) => return Ok(RecordResult::Interrupted),
                    Err(ActionError::Failed(f)) => {
                        state.data = ctx.take_record();
                        return fail(rt, &slot, state, step, f).await;
                    }
                }
            }
            StepKind::Foreach(expr) => {
                let items = match expr.eval_list(&ctx) {
                    Ok(items) => items,
                    Err(e) => {
                        state.data = ctx.take_record();
                        return fail(rt, &slot, state, step, StepFailure::eval(e)).await;
                    }
                };
                let children: Vec<(u64, RecordState)> = items
                    .into_iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let seq = slot.next_seq.fetch_add(1, Ordering::Relaxed);
                        let child = RecordState {
                            key: format!("{}/{n}", state.key),
                            data: item,
                            next_step: i + 1,
                            outputs: state.outputs.clone(),
                            status: RecordStatus::Pending,
                        };
                        (seq, child)
                    })
                    .collect();
                state.status = RecordStatus::Split;
                state.next_step = i + 1;
                state.data = ctx.take_record();
                rt.store.split_record(flow, slot.batch, slot.seq, &state, children.clone()).await?;
                return Ok(RecordResult::Split(children));
            }
            // `run_pure` stops only at effects.
            StepKind::Map(_) | StepKind::Filter(_) | StepKind::Batch(_) => {}
        }
    }
}

/// The run-history outcome of a record that ended at `step` with `failure`.
pub(crate) fn outcome(
    key: &str,
    status: RecordStatus,
    step: Option<&StepPlan>,
    failure: Option<&StepFailure>,
) -> RecordOutcome {
    RecordOutcome {
        key: key.to_string(),
        status,
        step: step.map(|s| s.id.to_string()),
        error: failure.map(|f| format!("{}: {}", f.class, f.message)),
        dead_letter: None,
        at_ms: now_ms(),
    }
}

async fn finish(
    rt: &Inner,
    slot: &Slot,
    mut state: RecordState,
    status: RecordStatus,
    step: Option<&StepPlan>,
    failure: Option<(&StepFailure, Option<DeadLetter>)>,
) -> Result<RecordResult, qiao_store::StoreError> {
    state.status = status;
    // A terminal record is never processed again: keep its key and status, not its data
    // (the dead letter, if any, holds its own copy).
    state.data = Value::Null;
    state.outputs.clear();
    let outcome = outcome(&state.key, status, step, failure.as_ref().map(|(f, _)| *f));
    let dead_letter = failure.and_then(|(_, dl)| dl);
    rt.meters.record(step.and_then(|s| rt.plan.steps.iter().position(|p| std::ptr::eq(p, s))), status);
    let write = RecordWrite {
        batch: slot.batch,
        seq: slot.seq,
        state,
        outcome: Some((slot.run_id, outcome)),
        dead_letter,
    };
    let write = match &slot.commits {
        Some(commits) => match commits.send(Commit::Terminal(Box::new(write))) {
            Ok(()) => return Ok(RecordResult::Terminal(status)),
            Err(mpsc::error::SendError(Commit::Terminal(w))) => *w,
            Err(_) => return Ok(RecordResult::Interrupted),
        },
        None => write,
    };
    rt.store.save_records(rt.plan.id.as_str(), vec![write]).await?;
    Ok(RecordResult::Terminal(status))
}

pub(crate) async fn fail(
    rt: &Inner,
    slot: &Slot,
    state: RecordState,
    step: &StepPlan,
    failure: StepFailure,
) -> Result<RecordResult, qiao_store::StoreError> {
    let flow = rt.plan.id.as_str();
    match step.on_error {
        OnError::Skip => {
            tracing::debug!(flow, record = %state.key, step = %step.id, error = %failure.message, "record skipped");
            finish(rt, slot, state, RecordStatus::Skipped, Some(step), Some((&failure, None))).await
        }
        OnError::Fail => {
            // Stop the run: the record stays pending at the failing step (so the batch and its
            // cursor are not committed) and is retried when the flow runs next.
            let message = format!(
                "step {:?} failed for record {:?} ({}: {}); the run stopped and the record is retried on the next run",
                step.id.as_str(),
                state.key,
                failure.class,
                failure.message
            );
            tracing::error!(flow, record = %state.key, step = %step.id, error = %failure.message, "record failed with on_error: fail; stopping the run");
            let outcome = RecordOutcome {
                key: state.key.clone(),
                status: RecordStatus::Pending,
                step: Some(step.id.to_string()),
                error: Some(format!("{}: {}", failure.class, failure.message)),
                dead_letter: None,
                at_ms: now_ms(),
            };
            rt.store
                .save_record(flow, slot.batch, slot.seq, &state, Some((slot.run_id, outcome)), None)
                .await?;
            rt.fail_run(message);
            Ok(RecordResult::Interrupted)
        }
        OnError::DeadLetter => {
            let dead_letter = DeadLetter {
                flow: flow.to_string(),
                run_id: slot.run_id,
                state: state.clone(),
                step: step.id.to_string(),
                class: failure.class.to_string(),
                error: failure.message.clone(),
                attempts: failure.attempts,
                at_ms: now_ms(),
            };
            tracing::warn!(
                flow, record = %state.key, step = %step.id, class = %failure.class, attempts = failure.attempts,
                error = %failure.message, "record moved to the dead-letter queue"
            );
            let record_key = state.key.clone();
            let data = state.data.clone();
            let result = finish(
                rt,
                slot,
                state,
                RecordStatus::DeadLettered,
                Some(step),
                Some((&failure, Some(dead_letter))),
            )
            .await?;
            notify_failure(rt, &record_key, &data, step, &failure).await;
            Ok(result)
        }
    }
}

/// Calls the flow's `on_failure` action, if any, with `error` in the context. Its own failure
/// is logged; the record is already safe in the dead-letter queue.
pub(crate) async fn notify_failure(
    rt: &Inner,
    record_key: &str,
    data: &Value,
    step: &StepPlan,
    failure: &StepFailure,
) {
    let Some(action) = &rt.plan.on_failure else { return };
    let mut ctx = EvalContext::new(rt.plan.id.as_str(), data);
    ctx.set_error(&json!({
        "step": step.id.as_str(), "class": failure.class.as_str(), "message": failure.message,
        "attempts": failure.attempts, "record_key": record_key,
    }));
    let input = match action.input.eval(&ctx) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(flow = %rt.plan.id, error = %e, "on_failure input could not be built");
            return;
        }
    };
    let key = idempotency_key(rt.plan.id.as_str(), record_key, "on-failure");
    if let Err(ActionError::Failed(f)) =
        call_action(rt, rt.on_failure_meter.as_ref(), action, &input, &key, &RetryPolicy::default()).await
    {
        tracing::error!(flow = %rt.plan.id, record = record_key, error = %f.message, "on_failure action failed");
    }
}

/// Calls an action with the step's retry policy: `transient` and `rate-limited` retry with
/// backoff (honouring retry-after), `unauthorized` retries once (the connector refreshes its
/// token), everything else fails at once.
async fn call_action(
    rt: &Inner,
    meter: Option<&CallMeter>,
    action: &ActionPlan,
    input: &Value,
    key: &str,
    policy: &RetryPolicy,
) -> Result<Value, ActionError> {
    let Some(conn) = rt.connections.get(action.connection.as_str()) else {
        return Err(ActionError::Failed(StepFailure {
            class: ErrorClass::Config,
            message: format!("connection {:?} is not bound", action.connection.as_str()),
            attempts: 0,
        }));
    };
    let mut attempt = 1;
    let mut reauthorized = false;
    loop {
        let started = std::time::Instant::now();
        let result = conn.invoke(&action.operation, input, key).await;
        if let Some(m) = meter {
            m.latency(started.elapsed().as_secs_f64());
        }
        let err = match result {
            Ok(out) => return Ok(out.output),
            Err(e) => e,
        };
        let class = err.class();
        metrics::counter!("qiao_connector_errors_total", "flow" => rt.plan.id.to_string(),
            "connection" => action.connection.to_string(), "operation" => action.operation.clone(),
            "class" => class.as_str())
        .increment(1);
        let retry = match class {
            ErrorClass::Unauthorized if !reauthorized => {
                reauthorized = true;
                Some(Duration::ZERO)
            }
            c if c.is_retryable() && attempt < policy.attempts => {
                let retry_after =
                    err.connector_error().and_then(|e| e.retry_after_ms()).map(Duration::from_millis);
                Some(backoff(policy, attempt, retry_after))
            }
            _ => None,
        };
        let Some(wait) = retry else {
            return Err(ActionError::Failed(StepFailure {
                class,
                message: describe(&err),
                attempts: attempt,
            }));
        };
        tracing::debug!(flow = %rt.plan.id, op = %action.operation, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying action");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = rt.shutdown.cancelled() => return Err(ActionError::Interrupted),
        }
        attempt += 1;
    }
}

pub(crate) fn describe(err: &CallError) -> String {
    match err {
        CallError::Connector(e) => e.message().to_string(),
        other => other.to_string(),
    }
}
