//! A group formed by the `batch` step, through the steps after it.
//!
//! The group is one record for those steps: `{items, keys, group, count}`, where `items` are
//! the members' records as they reached the batch step and `keys` their record keys. A bulk
//! action may answer one outcome per item (`ActionOutput.items`): succeeded members go on,
//! failed members follow their own error class — retried as a smaller group (only the failed
//! ones, with backoff), or dead-lettered/skipped one by one with their own record keys.
//!
//! Work on a subset re-forms the group from its members and re-evaluates the pure steps
//! (map, filter) after the batch step, reusing the stored outputs of the actions already done
//! for those members; resuming after a crash goes the same way. Members are checkpointed
//! together after each action, so a crash never repeats a bulk call for an acknowledged item.

use std::time::Duration;

use qiao_contract::ErrorClass;
use qiao_flow::{EvalContext, OnError, StepKind, StepPlan};
use qiao_store::{DeadLetter, RecordOutcome, RecordState, RecordStatus, RecordWrite, RunId, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::keys::idempotency_key;
use crate::record::{StepFailure, describe, notify_failure};
use crate::retry::backoff;
use crate::runner::{Inner, Tally, now_ms};

/// A record waiting in (or travelling with) a group.
pub(crate) struct Member {
    /// Its batch (page) id.
    pub page: u64,
    /// Its sequence number in the page.
    pub seq: u64,
    /// Its state; `data` is the record as it reached the batch step.
    pub state: RecordState,
    /// Its `group_by` value.
    pub group: Value,
}

/// What became of a group's members.
#[derive(Default)]
pub(crate) struct GroupOutcome {
    /// Members that reached a terminal status, with their page.
    pub terminal: Vec<(u64, RecordStatus)>,
    /// Shut down or stopped by `on_error: fail`: the other members stay pending.
    pub interrupted: bool,
}

/// Members to take from step `start` on.
struct Work {
    members: Vec<Member>,
    start: usize,
    attempt: u32,
    reauthorized: bool,
    wait: Duration,
}

/// Runs a full group through the steps after the batch step.
pub(crate) async fn process(
    rt: &Inner,
    run_id: RunId,
    members: Vec<Member>,
    tally: &Tally,
) -> Result<GroupOutcome, StoreError> {
    let mut out = GroupOutcome::default();
    let Some((batch_at, _)) = rt.plan.batch_step() else {
        out.interrupted = true;
        return Ok(out);
    };
    let start = members.first().map_or(batch_at + 1, |m| m.state.next_step.max(batch_at + 1));
    let mut stack = vec![Work { members, start, attempt: 1, reauthorized: false, wait: Duration::ZERO }];
    while let Some(w) = stack.pop() {
        if out.interrupted {
            continue;
        }
        if !w.wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(w.wait) => {}
                _ = rt.shutdown.cancelled() => {
                    out.interrupted = true;
                    continue;
                }
            }
        }
        if rt.shutdown.is_cancelled() {
            out.interrupted = true;
            continue;
        }
        run(rt, run_id, batch_at, w, &mut stack, &mut out, tally).await?;
    }
    Ok(out)
}

/// The group record the steps after the batch step see.
fn group_record(members: &[Member]) -> Value {
    json!({
        "items": members.iter().map(|m| m.state.data.clone()).collect::<Vec<_>>(),
        "keys": members.iter().map(|m| m.state.key.clone()).collect::<Vec<_>>(),
        "group": members.first().map_or(Value::Null, |m| m.group.clone()),
        "count": members.len(),
    })
}

/// The idempotency key of one bulk call: the same members at the same step give the same key.
fn group_key(flow: &str, members: &[Member], step: &str) -> String {
    let mut h = Sha256::new();
    for m in members {
        h.update(m.state.key.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    idempotency_key(flow, &format!("batch-{}", hex::encode(&digest[..12])), step)
}

async fn run(
    rt: &Inner,
    run_id: RunId,
    batch_at: usize,
    w: Work,
    stack: &mut Vec<Work>,
    out: &mut GroupOutcome,
    tally: &Tally,
) -> Result<(), StoreError> {
    let flow = rt.plan.id.as_str();
    let mut members = w.members;
    let mut ctx = EvalContext::with_record(flow, group_record(&members));
    let steps = &rt.plan.steps;
    let mut j = batch_at + 1;
    while j < steps.len() {
        let step = &steps[j];
        if let Some(when) = &step.when {
            match when.is_true(&ctx) {
                Ok(true) => {}
                Ok(false) => {
                    j += 1;
                    continue;
                }
                Err(e) => return fail_all(rt, run_id, members, step, StepFailure::eval(e), out).await,
            }
        }
        match &step.kind {
            StepKind::Map(template) => match template.eval(&ctx) {
                Ok(v) => ctx.replace_record(v),
                Err(e) => return fail_all(rt, run_id, members, step, StepFailure::eval(e), out).await,
            },
            StepKind::Filter(expr) => match expr.is_true(&ctx) {
                Ok(true) => {}
                Ok(false) => {
                    return finish(rt, run_id, members, RecordStatus::Filtered, Some(step), out, tally).await;
                }
                Err(e) => return fail_all(rt, run_id, members, step, StepFailure::eval(e), out).await,
            },
            StepKind::Action(_) if j < w.start => {
                let done = members.first().and_then(|m| m.state.outputs.get(step.id.as_str())).cloned();
                ctx.set_step_output(step.id.as_str(), &done.unwrap_or(Value::Null));
            }
            StepKind::Action(action) => {
                let (attempt, reauthorized) =
                    if j == w.start { (w.attempt, w.reauthorized) } else { (1, false) };
                let input = match action.input.eval(&ctx) {
                    Ok(v) => v,
                    Err(e) => return fail_all(rt, run_id, members, step, StepFailure::eval(e), out).await,
                };
                let Some(conn) = rt.connections.get(action.connection.as_str()) else {
                    let failure = StepFailure {
                        class: ErrorClass::Config,
                        message: format!("connection {:?} is not bound", action.connection.as_str()),
                        attempts: 0,
                    };
                    return fail_all(rt, run_id, members, step, failure, out).await;
                };
                let key = group_key(flow, &members, step.id.as_str());
                let started = std::time::Instant::now();
                let result = conn.invoke(&action.operation, &input, &key).await;
                if let Some(m) = rt.step_meters[j].as_ref() {
                    m.latency(started.elapsed().as_secs_f64());
                }
                let output = match result {
                    Ok(o) => match o.items {
                        None => o.output,
                        Some(items) if items.len() != members.len() => {
                            let failure = StepFailure {
                                class: ErrorClass::Permanent,
                                message: format!(
                                    "connector returned {} item outcomes for a group of {}",
                                    items.len(),
                                    members.len()
                                ),
                                attempts: attempt,
                            };
                            return fail_all(rt, run_id, members, step, failure, out).await;
                        }
                        Some(items) => {
                            let called = members.len();
                            let mut ok = Vec::new();
                            let mut retry = Vec::new();
                            let mut retry_wait = Duration::ZERO;
                            let mut retry_reauth = false;
                            let mut failed = Vec::new();
                            for (m, item) in members.into_iter().zip(items) {
                                match item {
                                    Ok(_) => ok.push(m),
                                    Err(e) => {
                                        let class = e.class();
                                        match decide(step, class, e.retry_after_ms(), attempt, reauthorized) {
                                            Some((wait, reauth)) => {
                                                retry_wait = retry_wait.max(wait);
                                                retry_reauth |= reauth;
                                                retry.push(m);
                                            }
                                            None => failed.push((
                                                m,
                                                StepFailure {
                                                    class,
                                                    message: e.message().to_string(),
                                                    attempts: attempt,
                                                },
                                            )),
                                        }
                                    }
                                }
                            }
                            tracing::debug!(flow, step = %step.id, ok = ok.len(), retry = retry.len(), failed = failed.len(), "bulk action answered per item");
                            if !retry.is_empty() {
                                stack.push(Work {
                                    members: retry,
                                    start: j,
                                    attempt: attempt + 1,
                                    reauthorized: reauthorized || retry_reauth,
                                    wait: retry_wait,
                                });
                            }
                            if !failed.is_empty() {
                                fail_each(rt, run_id, failed, step, out).await?;
                            }
                            if ok.is_empty() {
                                return Ok(());
                            }
                            let subset_changed = ok.len() < called;
                            members = ok;
                            advance(rt, flow, &mut members, step, j, o.output.clone()).await?;
                            if subset_changed && j + 1 < steps.len() {
                                // The steps after this one see the succeeded members only: re-form
                                // the group from them.
                                stack.push(Work {
                                    members,
                                    start: j + 1,
                                    attempt: 1,
                                    reauthorized: false,
                                    wait: Duration::ZERO,
                                });
                                return Ok(());
                            }
                            ctx.set_step_output(step.id.as_str(), &o.output);
                            j += 1;
                            continue;
                        }
                    },
                    Err(e) => {
                        let class = e.class();
                        let retry_after = e.connector_error().and_then(|c| c.retry_after_ms());
                        match decide(step, class, retry_after, attempt, reauthorized) {
                            Some((wait, reauth)) => {
                                tracing::debug!(flow, step = %step.id, attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying bulk action");
                                stack.push(Work {
                                    members,
                                    start: j,
                                    attempt: attempt + 1,
                                    reauthorized: reauthorized || reauth,
                                    wait,
                                });
                                return Ok(());
                            }
                            None => {
                                let failure = StepFailure { class, message: describe(&e), attempts: attempt };
                                return fail_all(rt, run_id, members, step, failure, out).await;
                            }
                        }
                    }
                };
                advance(rt, flow, &mut members, step, j, output.clone()).await?;
                ctx.set_step_output(step.id.as_str(), &output);
            }
            StepKind::Foreach(_) | StepKind::Batch(_) => {
                // The loader refuses these after a batch step.
                let failure = StepFailure {
                    class: ErrorClass::Permanent,
                    message: format!("a {} step cannot follow a batch step", step.kind.name()),
                    attempts: 0,
                };
                return fail_all(rt, run_id, members, step, failure, out).await;
            }
        }
        j += 1;
    }
    finish(rt, run_id, members, RecordStatus::Done, None, out, tally).await
}

/// Whether a failed call (or item) is retried, and after how long: `transient` and
/// `rate-limited` with backoff (honouring retry-after) while attempts remain, `unauthorized`
/// once at once (the connector refreshes its token).
fn decide(
    step: &StepPlan,
    class: ErrorClass,
    retry_after_ms: Option<u64>,
    attempt: u32,
    reauthorized: bool,
) -> Option<(Duration, bool)> {
    match class {
        ErrorClass::Unauthorized if !reauthorized => Some((Duration::ZERO, true)),
        c if c.is_retryable() && attempt < step.retry.attempts => {
            Some((backoff(&step.retry, attempt, retry_after_ms.map(Duration::from_millis)), false))
        }
        _ => None,
    }
}

/// Records that `members` passed action `step` (index `j`) with `output`; checkpoints them
/// together unless it was the last step (the terminal write then serves).
async fn advance(
    rt: &Inner,
    flow: &str,
    members: &mut [Member],
    step: &StepPlan,
    j: usize,
    output: Value,
) -> Result<(), StoreError> {
    let last = j + 1 >= rt.plan.steps.len();
    for m in members.iter_mut() {
        // After the last step the members become terminal, which keeps no outputs.
        if !last {
            m.state.outputs.insert(step.id.to_string(), output.clone());
        }
        m.state.next_step = j + 1;
    }
    if !last {
        let writes = members
            .iter()
            .map(|m| RecordWrite {
                batch: m.page,
                seq: m.seq,
                state: m.state.clone(),
                outcome: None,
                dead_letter: None,
            })
            .collect();
        rt.store.save_records(flow, writes).await?;
    }
    Ok(())
}

/// Ends `members` with a terminal `status`, in one transaction. Their outcomes go into the run
/// history within the run's `max_outcomes_per_run` (see `Tally::keep_outcome`).
async fn finish(
    rt: &Inner,
    run_id: RunId,
    members: Vec<Member>,
    status: RecordStatus,
    step: Option<&StepPlan>,
    out: &mut GroupOutcome,
    tally: &Tally,
) -> Result<(), StoreError> {
    let at_ms = now_ms();
    let limit = rt.options.max_outcomes_per_run;
    let writes = members
        .iter()
        .map(|m| {
            let outcome = RecordOutcome {
                key: m.state.key.clone(),
                status,
                step: step.map(|s| s.id.to_string()),
                error: None,
                dead_letter: None,
                at_ms,
            };
            RecordWrite {
                batch: m.page,
                seq: m.seq,
                state: terminal_state(&m.state, status),
                outcome: tally.keep_outcome(status, limit).then_some((run_id, outcome)),
                dead_letter: None,
            }
        })
        .collect();
    rt.store.save_records(rt.plan.id.as_str(), writes).await?;
    out.terminal.extend(members.iter().map(|m| (m.page, status)));
    Ok(())
}

/// A terminal record keeps its key and status, not its data (a dead letter has its own copy).
fn terminal_state(state: &RecordState, status: RecordStatus) -> RecordState {
    RecordState {
        key: state.key.clone(),
        data: Value::Null,
        next_step: state.next_step,
        outputs: Default::default(),
        status,
    }
}

async fn fail_all(
    rt: &Inner,
    run_id: RunId,
    members: Vec<Member>,
    step: &StepPlan,
    failure: StepFailure,
    out: &mut GroupOutcome,
) -> Result<(), StoreError> {
    let failed = members.into_iter().map(|m| (m, failure.clone())).collect();
    fail_each(rt, run_id, failed, step, out).await
}

/// Members that failed `step` for good, each with its own failure, by the step's `on_error`.
async fn fail_each(
    rt: &Inner,
    run_id: RunId,
    failed: Vec<(Member, StepFailure)>,
    step: &StepPlan,
    out: &mut GroupOutcome,
) -> Result<(), StoreError> {
    let flow = rt.plan.id.as_str();
    let at_ms = now_ms();
    let status = match step.on_error {
        OnError::DeadLetter => RecordStatus::DeadLettered,
        OnError::Skip => RecordStatus::Skipped,
        OnError::Fail => RecordStatus::Pending,
    };
    let writes = failed
        .iter()
        .map(|(m, f)| {
            let dead_letter = (step.on_error == OnError::DeadLetter).then(|| DeadLetter {
                flow: flow.to_string(),
                run_id,
                state: m.state.clone(),
                step: step.id.to_string(),
                class: f.class.to_string(),
                error: f.message.clone(),
                attempts: f.attempts,
                at_ms,
            });
            let outcome = RecordOutcome {
                key: m.state.key.clone(),
                status,
                step: Some(step.id.to_string()),
                error: Some(format!("{}: {}", f.class, f.message)),
                dead_letter: None,
                at_ms,
            };
            let state = if status == RecordStatus::Pending {
                m.state.clone()
            } else {
                terminal_state(&m.state, status)
            };
            RecordWrite { batch: m.page, seq: m.seq, state, outcome: Some((run_id, outcome)), dead_letter }
        })
        .collect();
    rt.store.save_records(flow, writes).await?;
    match step.on_error {
        OnError::Fail => {
            if let Some((m, f)) = failed.first() {
                rt.fail_run(format!(
                    "step {:?} failed for record {:?} ({}: {}); the run stopped and the record is retried on the next run",
                    step.id.as_str(),
                    m.state.key,
                    f.class,
                    f.message
                ));
            }
            out.interrupted = true;
        }
        OnError::Skip => out.terminal.extend(failed.iter().map(|(m, _)| (m.page, status))),
        OnError::DeadLetter => {
            for (m, f) in &failed {
                tracing::warn!(flow, record = %m.state.key, step = %step.id, class = %f.class, attempts = f.attempts,
                    error = %f.message, "record moved to the dead-letter queue");
                notify_failure(rt, &m.state.key, &m.state.data, step, f).await;
            }
            out.terminal.extend(failed.iter().map(|(m, _)| (m.page, status)));
        }
    }
    Ok(())
}
