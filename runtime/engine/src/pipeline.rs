//! The consumer side of a run. Pages (stored batches) arrive in order; their records run
//! through the steps `concurrency` at a time; records reaching the `batch` step wait in the
//! [`Collector`] until their group is full, has waited `max_wait`, or the input has ended, and
//! each group then runs the remaining steps as one record (`group.rs`). A page is completed —
//! its cursor committed — once every record in it is terminal, strictly in arrival order, so
//! a crash never commits a cursor past a record that is not done.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qiao_flow::{BatchPlan, EvalContext, OnError};
use qiao_store::{
    Completion, EncodedRecord, RecordOutcome, RecordState, RecordStatus, RecordWrite, RunId, StoreError,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::EngineError;
use crate::group::{self, GroupOutcome, Member};
use crate::record::{self, Pure, RecordResult, Slot, StepFailure};
use crate::runner::{BatchEnd, Inner, Tally};

/// A stored batch handed to the consumer.
pub(crate) struct Page {
    pub id: u64,
    pub records: PageRecords,
}

/// A page's records: decoded with their sequence numbers (a poll page, a resumed batch), or
/// still in their stored form, numbered from 0 (a webhook delivery waiting in the intake, so
/// a full intake holds bytes rather than JSON trees). Decoded when the consumer takes them.
pub(crate) enum PageRecords {
    Decoded(Vec<(u64, RecordState)>),
    Encoded(Vec<EncodedRecord>),
}

impl PageRecords {
    fn decode(self) -> Result<Vec<(u64, RecordState)>, StoreError> {
        match self {
            PageRecords::Decoded(records) => Ok(records),
            PageRecords::Encoded(records) => {
                records.iter().enumerate().map(|(seq, r)| Ok((seq as u64, r.decode()?))).collect()
            }
        }
    }
}

/// What a finished task reports.
enum Done {
    Record { page: u64, seq: u64, result: RecordResult },
    Group(GroupOutcome),
}

struct OpenPage {
    id: u64,
    /// Records not yet terminal.
    open: usize,
    next_seq: Arc<AtomicU64>,
    /// Outcomes of records that ended without an effect, written with the page's completion.
    outcomes: Vec<(RunId, RecordOutcome)>,
}

/// Records waiting at the batch step, by (next step, group value).
struct Collector {
    batch_at: usize,
    group_by: Option<qiao_flow::Expr>,
    size: usize,
    max_wait: Option<Duration>,
    waiting: BTreeMap<(usize, String), Waiting>,
    full: VecDeque<Vec<Member>>,
}

struct Waiting {
    members: Vec<Member>,
    since: Instant,
}

impl Collector {
    fn new(batch_at: usize, plan: &BatchPlan) -> Self {
        Collector {
            batch_at,
            group_by: plan.group_by.clone(),
            size: plan.size.max(1) as usize,
            max_wait: plan.max_wait.map(Into::into),
            waiting: BTreeMap::new(),
            full: VecDeque::new(),
        }
    }

    fn add(&mut self, group: String, member: Member) {
        let key = (member.state.next_step, group);
        let w = self
            .waiting
            .entry(key.clone())
            .or_insert_with(|| Waiting { members: Vec::new(), since: Instant::now() });
        w.members.push(member);
        if w.members.len() >= self.size
            && let Some(w) = self.waiting.remove(&key)
        {
            self.full.push_back(w.members);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let wait = self.max_wait?;
        self.waiting.values().map(|w| w.since + wait).min()
    }

    fn flush_due(&mut self, now: Instant) {
        let Some(wait) = self.max_wait else { return };
        let due: Vec<_> =
            self.waiting.iter().filter(|(_, w)| w.since + wait <= now).map(|(k, _)| k.clone()).collect();
        for k in due {
            if let Some(w) = self.waiting.remove(&k) {
                self.full.push_back(w.members);
            }
        }
    }

    fn flush_all(&mut self) {
        let all = std::mem::take(&mut self.waiting);
        self.full.extend(all.into_values().map(|w| w.members));
    }
}

/// Runs every page from `pages` to the end (or until shut down or the run fails).
pub(crate) async fn consume(
    inner: &Arc<Inner>,
    run_id: RunId,
    mut pages: mpsc::Receiver<Page>,
    tally: &Arc<Tally>,
) -> Result<BatchEnd, EngineError> {
    let flow = inner.plan.id.as_str();
    let concurrency = inner.plan.concurrency.max(1) as usize;
    let mut collector = inner.plan.batch_step().map(|(i, b)| Collector::new(i, b));
    let mut open_pages: VecDeque<OpenPage> = VecDeque::new();
    let mut ready: VecDeque<(u64, u64, RecordState)> = VecDeque::new();
    let mut running: JoinSet<Result<Done, StoreError>> = JoinSet::new();
    let mut input_open = true;
    let mut interrupted = false;
    let (completer, mut completer_task) = spawn_completer(inner, tally.clone());

    loop {
        // Start what can start: full groups first (they free the most records), then records.
        while running.len() < concurrency && !interrupted {
            if let Some(members) = collector.as_mut().and_then(|c| c.full.pop_front()) {
                let rt = inner.clone();
                let tally = tally.clone();
                running.spawn(
                    async move { group::process(&rt, run_id, members, &tally).await.map(Done::Group) },
                );
                continue;
            }
            let Some((page, seq, mut state)) = ready.pop_front() else { break };
            if let Some(c) = collector.as_mut()
                && state.next_step >= c.batch_at
            {
                // Already at (or, resumed after a crash, past) the batch step.
                park(inner, c, page, seq, state, &open_pages, &mut running, run_id);
                continue;
            }
            let Some(next_seq) = open_pages.iter().find(|p| p.id == page).map(|p| p.next_seq.clone()) else {
                continue;
            };
            // The pure steps run here, without a task; only records that reach an action (or
            // a `foreach`, or fail into the dead-letter queue) get one.
            let mut ctx = record::context(flow, &mut state);
            let slot = Slot { run_id, batch: page, seq, next_seq, commits: Some(completer.clone()) };
            let rt = inner.clone();
            match record::run_pure(&inner.plan, &mut state, &mut ctx) {
                Pure::Effect => {
                    running.spawn(async move {
                        let result = record::process(&rt, slot, state, ctx, true).await?;
                        Ok(Done::Record { page, seq, result })
                    });
                }
                Pure::Batch => {
                    state.data = ctx.take_record();
                    match collector.as_mut() {
                        Some(c) => park(inner, c, page, seq, state, &open_pages, &mut running, run_id),
                        None => interrupted = true,
                    }
                }
                Pure::Terminal(status, at) => {
                    let step = at.map(|i| &inner.plan.steps[i]);
                    defer(
                        inner,
                        &mut open_pages,
                        tally,
                        run_id,
                        page,
                        record::outcome(&state.key, status, step, None),
                        at,
                    );
                }
                Pure::Failed(i, failure) if inner.plan.steps[i].on_error == OnError::Skip => {
                    let step = &inner.plan.steps[i];
                    tracing::debug!(flow, record = %state.key, step = %step.id, error = %failure.message, "record skipped");
                    let outcome =
                        record::outcome(&state.key, RecordStatus::Skipped, Some(step), Some(&failure));
                    defer(inner, &mut open_pages, tally, run_id, page, outcome, Some(i));
                }
                Pure::Failed(i, failure) => {
                    state.data = ctx.take_record();
                    running.spawn(async move {
                        let result = record::fail(&rt, &slot, state, &rt.plan.steps[i], failure).await?;
                        Ok(Done::Record { page, seq, result })
                    });
                }
            }
        }
        // Interrupted: records not started stay pending in the store for the next start
        // (waiting for them here would leave the select below with no branch enabled).
        if interrupted && running.is_empty() {
            break;
        }
        if running.is_empty() && ready.is_empty() && !input_open {
            match collector.as_mut() {
                Some(c) if !c.waiting.is_empty() => {
                    c.flush_all();
                    continue;
                }
                Some(c) if !c.full.is_empty() => continue,
                _ => break,
            }
        }
        let deadline = collector.as_ref().and_then(Collector::next_deadline);
        tokio::select! {
            page = pages.recv(), if input_open && ready.is_empty() && !interrupted => match page {
                Some(p) => {
                    let records = p.records.decode()?;
                    let next = records.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
                    let pending: Vec<_> = records.into_iter().filter(|(_, r)| !r.status.is_terminal()).collect();
                    open_pages.push_back(OpenPage {
                        id: p.id,
                        open: pending.len(),
                        next_seq: Arc::new(AtomicU64::new(next)),
                        outcomes: Vec::new(),
                    });
                    ready.extend(pending.into_iter().map(|(seq, r)| (p.id, seq, r)));
                }
                None => input_open = false,
            },
            joined = running.join_next(), if !running.is_empty() => {
                let Some(joined) = joined else { continue };
                let done = match joined {
                    Ok(done) => done?,
                    Err(e) => {
                        // A panic in the engine: its records stay pending and resume next start.
                        tracing::error!(flow, error = %e, "record task failed");
                        interrupted = true;
                        continue;
                    }
                };
                match done {
                    Done::Record { page, seq, result } => match result {
                        RecordResult::Terminal(status) => {
                            tally.count(status);
                            close(&mut open_pages, page, 1);
                        }
                        RecordResult::Split(children) => {
                            tally.records_in.fetch_add(children.len() as u64, Ordering::Relaxed);
                            if let Some(p) = open_pages.iter_mut().find(|p| p.id == page) {
                                p.open += children.len();
                            }
                            close(&mut open_pages, page, 1);
                            ready.extend(children.into_iter().map(|(s, r)| (page, s, r)));
                        }
                        RecordResult::Parked(state) => match collector.as_mut() {
                            Some(c) => park(inner, c, page, seq, state, &open_pages, &mut running, run_id),
                            None => interrupted = true,
                        },
                        RecordResult::Interrupted => interrupted = true,
                    },
                    Done::Group(outcome) => {
                        for (page, status) in outcome.terminal {
                            tally.count(status);
                            close(&mut open_pages, page, 1);
                        }
                        if outcome.interrupted {
                            interrupted = true;
                        }
                    }
                }
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(c) = collector.as_mut() {
                    c.flush_due(Instant::now());
                }
            },
            _ = inner.shutdown.cancelled(), if !interrupted => interrupted = true,
            // The completer ends before the loop only on a store error. Going on would process
            // records whose pages are never completed: stop; what is unfinished (or its
            // terminal write lost) stays pending in the store for the next start.
            ended = &mut completer_task => {
                return Err(match ended {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => StoreError::Db("the batch completer stopped".into()),
                    Err(e) => StoreError::Db(format!("the batch completer failed: {e}")),
                }
                .into());
            },
        }
        complete_ready(&mut open_pages, &completer);
    }
    complete_ready(&mut open_pages, &completer);
    drop(completer);
    match completer_task.await {
        Ok(result) => result?,
        Err(e) => return Err(StoreError::Db(format!("the batch completer failed: {e}")).into()),
    }
    Ok(if interrupted || !open_pages.is_empty() { BatchEnd::Interrupted } else { BatchEnd::Complete })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Counts a record that ended without an effect and keeps its outcome for the page's
/// completion.
fn defer(
    inner: &Inner,
    open_pages: &mut VecDeque<OpenPage>,
    tally: &Tally,
    run_id: RunId,
    page: u64,
    outcome: RecordOutcome,
    step: Option<usize>,
) {
    tally.count(outcome.status);
    inner.meters.record(step, outcome.status);
    if let Some(p) = open_pages.iter_mut().find(|p| p.id == page) {
        p.open = p.open.saturating_sub(1);
        p.outcomes.push((run_id, outcome));
    }
}

fn close(open_pages: &mut VecDeque<OpenPage>, page: u64, n: usize) {
    if let Some(p) = open_pages.iter_mut().find(|p| p.id == page) {
        p.open = p.open.saturating_sub(n);
    }
}

/// Completes the leading pages whose records are all terminal, in order: hands their ids to
/// the completer, which commits them in arrival order, all that queued up in one transaction.
fn complete_ready(open_pages: &mut VecDeque<OpenPage>, completer: &Committer) {
    while let Some(front) = open_pages.front()
        && front.open == 0
    {
        let Some(page) = open_pages.pop_front() else { break };
        // The completer outlives the loop that sends; a send fails only if it stopped on an
        // error, which `consume` reports when it joins it.
        let records = page.next_seq.load(Ordering::Relaxed);
        let _ =
            completer.send(Commit::Complete(Completion { batch: page.id, records, outcomes: page.outcomes }));
    }
}

/// What the completer writes.
pub(crate) enum Commit {
    /// A record's terminal state after an action (its checkpoint), with its outcome.
    Terminal(Box<RecordWrite>),
    /// A page whose records are all terminal.
    Complete(Completion),
}

/// Where record tasks and the consumer send what the completer writes.
pub(crate) type Committer = mpsc::UnboundedSender<Commit>;

/// The completer task: writes terminal states and completes pages (cursor + deletion) in
/// arrival order, everything that queued up while the last commit synced in one
/// transaction, so neither the consumer nor a record task waits for a commit. A terminal
/// write whose page completes in the same transaction only adds its outcome.
fn spawn_completer(inner: &Inner, tally: Arc<Tally>) -> (Committer, JoinHandle<Result<(), StoreError>>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Commit>();
    let store = inner.store.clone();
    let flow = inner.plan.id.to_string();
    let limit = inner.options.max_outcomes_per_run;
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut writes = Vec::new();
            let mut pages = Vec::new();
            let mut next = Some(first);
            while let Some(commit) = next {
                match commit {
                    Commit::Terminal(w) => {
                        let mut w = *w;
                        if w.outcome.as_ref().is_some_and(|(_, o)| !tally.keep_outcome(o.status, limit)) {
                            w.outcome = None;
                        }
                        writes.push(w);
                    }
                    Commit::Complete(mut c) => {
                        c.outcomes.retain(|(_, o)| tally.keep_outcome(o.status, limit));
                        pages.push(c);
                    }
                }
                next = rx.try_recv().ok();
            }
            #[cfg(feature = "failpoints")]
            fail::fail_point!(&format!("engine::complete/{flow}"), |_| Err(StoreError::Db(
                "failpoint engine::complete".into()
            )));
            store.commit(&flow, writes, pages).await?;
        }
        Ok(())
    });
    (tx, task)
}

/// Adds a record that reached the batch step to its group. A `group_by` that fails to
/// evaluate fails the record at the batch step.
#[allow(clippy::too_many_arguments)]
fn park(
    inner: &Arc<Inner>,
    c: &mut Collector,
    page: u64,
    seq: u64,
    state: RecordState,
    open_pages: &VecDeque<OpenPage>,
    running: &mut JoinSet<Result<Done, StoreError>>,
    run_id: RunId,
) {
    let mut state = state;
    let group = match c.group_by.as_ref() {
        None => Ok(Value::Null),
        Some(expr) => {
            let ctx = EvalContext::with_record(inner.plan.id.as_str(), std::mem::take(&mut state.data));
            let group = expr.eval(&ctx);
            state.data = ctx.into_record();
            group
        }
    };
    match group {
        Ok(value) => c.add(value.to_string(), Member { page, seq, state, group: value }),
        Err(e) => {
            let next_seq =
                open_pages.iter().find(|p| p.id == page).map(|p| p.next_seq.clone()).unwrap_or_default();
            let rt = inner.clone();
            let at = c.batch_at;
            running.spawn(async move {
                let slot = Slot { run_id, batch: page, seq, next_seq, commits: None };
                let step = &rt.plan.steps[at];
                let result = record::fail(&rt, &slot, state, step, StepFailure::eval(e)).await?;
                Ok(Done::Record { page, seq, result })
            });
        }
    }
}
