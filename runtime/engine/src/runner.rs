//! A flow's runner: binds connections, fires the trigger, moves batches through the steps and
//! commits cursors; resumes what a crash left in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use qiao_contract::{ConnectorInfo, SourceRecord};
use qiao_flow::{EvalContext, FlowPlan, TriggerPlan};
use qiao_host::{CallError, Connection, Connector, RateSpec};
use qiao_store::{
    BatchMeta, PendingBatch, RecordState, RecordStatus, RunCounts, RunId, RunInfo, RunStatus, Store,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::keys::record_key;
use crate::meters::{CallMeter, Meters, call_meters};
use crate::pipeline::{self, Page, PageRecords};
use crate::retry::backoff;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Knobs of a runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Attempts at one poll call before the run fails (transient and rate-limited errors).
    pub poll_attempts: u32,
    /// Pages polled but not yet processed (the bounded channel between trigger and steps).
    pub pages_ahead: usize,
    /// Per-record outcomes of done and filtered records kept in one run's history; beyond
    /// it only the counts grow (failures are always kept). Bounds the history of a
    /// long-running webhook consumer's run.
    pub max_outcomes_per_run: u64,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions { poll_attempts: 5, pages_ahead: 2, max_outcomes_per_run: 100_000 }
    }
}

/// What fires a run.
#[derive(Debug, Clone)]
pub enum TriggerInput {
    /// Poll the trigger operation until it has no more pages.
    Poll,
    /// A schedule tick: one record `{scheduled_at, fired_at}`.
    Schedule {
        /// The cron time that fired (RFC 3339).
        scheduled_at: String,
    },
    /// A manual start with one input record.
    Manual {
        /// The record.
        input: Value,
    },
}

impl TriggerInput {
    fn name(&self) -> &'static str {
        match self {
            TriggerInput::Poll => "poll",
            TriggerInput::Schedule { .. } => "schedule",
            TriggerInput::Manual { .. } => "manual",
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Its id in the store.
    pub run_id: RunId,
    /// Its final info.
    pub info: RunInfo,
}

impl Inner {
    /// Stops the run (`on_error: fail`), keeping the first reason.
    pub(crate) fn fail_run(&self, reason: String) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(reason);
        }
        self.failed.store(true, Ordering::Relaxed);
    }
}

pub(crate) struct Inner {
    pub plan: FlowPlan,
    pub connections: HashMap<String, Connection>,
    pub store: Store,
    pub options: RunnerOptions,
    pub shutdown: CancellationToken,
    /// Set by a step with `on_error: fail`: stop the run, leave the record pending.
    pub failed: AtomicBool,
    /// Why the run was stopped.
    pub failure: std::sync::Mutex<Option<String>>,
    /// Record counters.
    pub meters: Meters,
    /// Call latency per step (`None` for steps without an action).
    pub step_meters: Vec<Option<CallMeter>>,
    /// Call latency of `on_failure`.
    pub on_failure_meter: Option<CallMeter>,
}

/// Runs one flow.
#[derive(Clone)]
pub struct FlowRunner {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Default)]
pub(crate) struct Tally {
    pub records_in: AtomicU64,
    records_out: AtomicU64,
    filtered: AtomicU64,
    failed: AtomicU64,
    outcomes_kept: AtomicU64,
    outcomes_omitted: AtomicU64,
}

impl Tally {
    pub(crate) fn counts(&self) -> RunCounts {
        RunCounts {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            outcomes_omitted: self.outcomes_omitted.load(Ordering::Relaxed),
        }
    }

    /// Whether the outcome of a record that ended with `status` goes into the run history:
    /// failures always, others up to `limit` per run.
    pub(crate) fn keep_outcome(&self, status: RecordStatus, limit: u64) -> bool {
        if matches!(status, RecordStatus::DeadLettered | RecordStatus::Skipped | RecordStatus::Pending) {
            return true;
        }
        if self.outcomes_kept.fetch_add(1, Ordering::Relaxed) < limit {
            return true;
        }
        self.outcomes_omitted.fetch_add(1, Ordering::Relaxed);
        false
    }

    pub(crate) fn count(&self, status: RecordStatus) {
        let counter = match status {
            RecordStatus::Done => &self.records_out,
            RecordStatus::Filtered => &self.filtered,
            RecordStatus::DeadLettered | RecordStatus::Skipped => &self.failed,
            RecordStatus::Split | RecordStatus::Pending => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Batches already in the store (left in flight, replayed) as a closed channel of pages for
/// the consumer, counting their unfinished records in.
pub(crate) fn pending_pages(batches: Vec<PendingBatch>, tally: &Tally) -> mpsc::Receiver<Page> {
    let (tx, rx) = mpsc::channel::<Page>(batches.len().max(1));
    for batch in batches {
        tally.records_in.fetch_add(
            batch.records.iter().filter(|(_, r)| !r.status.is_terminal()).count() as u64,
            Ordering::Relaxed,
        );
        // The channel has room for every batch.
        let _ = tx.try_send(Page { id: batch.id, records: PageRecords::Decoded(batch.records) });
    }
    rx
}

/// How a batch's processing ended.
pub(crate) enum BatchEnd {
    Complete,
    Interrupted,
}

impl FlowRunner {
    /// Binds every connection of `plan` to a loaded connector found by `connector`, with
    /// `kv` state scoped to `<flow>/<connection>`.
    pub fn new(
        plan: FlowPlan,
        connector: impl Fn(&ConnectorInfo) -> Option<Connector>,
        store: Store,
        options: RunnerOptions,
    ) -> Result<FlowRunner, EngineError> {
        let flow = plan.id.to_string();
        let mut connections = HashMap::new();
        for c in &plan.connections {
            let loaded = connector(&c.connector).ok_or_else(|| EngineError::MissingConnector {
                flow: flow.clone(),
                connection: c.id.to_string(),
                connector: format!("{}@{}", c.connector.id, c.connector.version),
            })?;
            let conn = loaded.connect(&format!("{flow}/{}", c.id), &c.config.expose()).map_err(|e| {
                EngineError::Connect {
                    flow: flow.clone(),
                    connection: c.id.to_string(),
                    message: e.to_string(),
                }
            })?;
            let conn = match &c.rate_limit {
                Some(r) => conn.with_rate_limit(RateSpec { per_second: r.per_second, burst: r.burst }),
                None => conn,
            };
            connections.insert(c.id.to_string(), conn);
        }
        let meters = Meters::new(&plan);
        let (step_meters, on_failure_meter) = call_meters(&plan);
        Ok(FlowRunner {
            inner: Arc::new(Inner {
                meters,
                step_meters,
                on_failure_meter,
                plan,
                connections,
                store,
                options,
                shutdown: CancellationToken::new(),
                failed: AtomicBool::new(false),
                failure: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The plan.
    pub fn plan(&self) -> &FlowPlan {
        &self.inner.plan
    }

    /// Cancelling this token stops the runner: calls in flight finish or are abandoned, and
    /// unfinished records stay in the store for the next start.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub(crate) fn flow(&self) -> &str {
        self.inner.plan.id.as_str()
    }

    /// Finishes what a previous process left in flight (after a crash, a stop, or a dead-letter
    /// replay): one run of trigger `resume` over every pending batch, oldest first. Runs that
    /// were still marked running are closed as interrupted. `None` when nothing was pending.
    pub async fn resume(&self) -> Result<Option<RunSummary>, EngineError> {
        let store = &self.inner.store;
        for (id, mut info) in store.list_runs(Some(self.flow()), usize::MAX)? {
            if info.status == RunStatus::Running {
                info.status = RunStatus::Failed;
                info.error = Some("interrupted: the process stopped during the run; unfinished records resume in a later run".into());
                info.ended_ms = Some(now_ms());
                store.update_run(id, &info).await?;
            }
        }
        let pending = store.resume_batches(self.flow(), now_ms()).await?;
        if pending.is_empty() {
            return Ok(None);
        }
        let (run_id, mut info) = self.start_run("resume").await?;
        let tally = Arc::new(Tally::default());
        let rx = pending_pages(pending, &tally);
        let end = pipeline::consume(&self.inner, run_id, rx, &tally).await?;
        info.counts = tally.counts();
        self.finish_run(run_id, &mut info, end, None).await?;
        Ok(Some(RunSummary { run_id, info }))
    }

    /// One run of the trigger.
    pub async fn fire(&self, input: TriggerInput) -> Result<RunSummary, EngineError> {
        let (run_id, mut info) = self.start_run(input.name()).await?;
        let tally = Arc::new(Tally::default());
        let (end, error) = match input {
            TriggerInput::Poll => self.poll_run(run_id, &tally).await?,
            TriggerInput::Schedule { scheduled_at } => {
                let data =
                    json!({"scheduled_at": scheduled_at, "fired_at": jiff::Timestamp::now().to_string()});
                (
                    self.single_record(run_id, SourceRecord { id: Some(scheduled_at), data }, &tally).await?,
                    None,
                )
            }
            TriggerInput::Manual { input } => {
                (self.single_record(run_id, SourceRecord { id: None, data: input }, &tally).await?, None)
            }
        };
        info.counts = tally.counts();
        self.finish_run(run_id, &mut info, end, error).await?;
        Ok(RunSummary { run_id, info })
    }

    /// Resumes, then fires the trigger: once with `once`, else until shut down (poll: every
    /// interval; schedule: at each cron time; manual: once).
    pub async fn run(&self, once: bool) -> Result<Vec<RunSummary>, EngineError> {
        let mut runs = Vec::new();
        if let Some(r) = self.resume().await? {
            runs.push(r);
        }
        loop {
            if self.inner.shutdown.is_cancelled() || self.inner.failed.load(Ordering::Relaxed) {
                return Ok(runs);
            }
            let input = match &self.inner.plan.trigger {
                TriggerPlan::Manual => TriggerInput::Manual { input: json!({}) },
                TriggerPlan::Poll { .. } => TriggerInput::Poll,
                TriggerPlan::Schedule { cron, timezone, .. } => {
                    if once {
                        TriggerInput::Schedule { scheduled_at: jiff::Timestamp::now().to_string() }
                    } else {
                        let Some((at, wait)) =
                            crate::schedule::next_fire(cron, timezone, jiff::Timestamp::now())
                        else {
                            return Err(EngineError::Unsupported {
                                flow: self.flow().to_string(),
                                message: "the schedule never fires again".into(),
                            });
                        };
                        if !self.sleep(wait).await {
                            return Ok(runs);
                        }
                        TriggerInput::Schedule { scheduled_at: at.timestamp().to_string() }
                    }
                }
                TriggerPlan::Webhook { .. } => {
                    return Err(EngineError::Unsupported {
                        flow: self.flow().to_string(),
                        message: "webhook flows are served by `qiao serve`, which is not available yet"
                            .into(),
                    });
                }
            };
            runs.push(self.fire(input).await?);
            if once || matches!(self.inner.plan.trigger, TriggerPlan::Manual) {
                return Ok(runs);
            }
            if let TriggerPlan::Poll { every, .. } = &self.inner.plan.trigger
                && !self.sleep((*every).into()).await
            {
                return Ok(runs);
            }
        }
    }

    /// Sleeps unless shut down first; false when shut down.
    pub(crate) async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.inner.shutdown.cancelled() => false,
        }
    }

    pub(crate) async fn start_run(&self, trigger: &str) -> Result<(RunId, RunInfo), EngineError> {
        // A new run starts clean; `run()` has already stopped if the last one failed.
        self.inner.failed.store(false, Ordering::Relaxed);
        if let Ok(mut f) = self.inner.failure.lock() {
            *f = None;
        }
        let info = RunInfo {
            flow: self.flow().to_string(),
            trigger: trigger.to_string(),
            started_ms: now_ms(),
            ended_ms: None,
            status: RunStatus::Running,
            counts: RunCounts::default(),
            error: None,
        };
        let id = self.inner.store.start_run(&info).await?;
        tracing::info!(flow = self.flow(), run = id, trigger, "run started");
        Ok((id, info))
    }

    pub(crate) async fn finish_run(
        &self,
        id: RunId,
        info: &mut RunInfo,
        end: BatchEnd,
        error: Option<String>,
    ) -> Result<(), EngineError> {
        let stopped = self.inner.failure.lock().ok().and_then(|f| f.clone());
        info.ended_ms = Some(now_ms());
        (info.status, info.error) = match (stopped, error, &end) {
            (Some(reason), _, _) => (RunStatus::Failed, Some(reason)),
            (None, Some(e), _) => (RunStatus::Failed, Some(e)),
            (None, None, BatchEnd::Interrupted) => {
                info.ended_ms = None;
                (
                    RunStatus::Running,
                    Some("stopped before the end; unfinished records resume on the next start".into()),
                )
            }
            (None, None, BatchEnd::Complete) if info.counts.failed > 0 => {
                (RunStatus::CompletedWithFailures, None)
            }
            (None, None, BatchEnd::Complete) => (RunStatus::Succeeded, None),
        };
        self.inner.store.update_run(id, info).await?;
        let status = serde_json::to_value(info.status).ok().and_then(|v| v.as_str().map(str::to_string));
        metrics::counter!("qiao_runs_total", "flow" => self.flow().to_string(), "status" => status.unwrap_or_default())
            .increment(1);
        let c = info.counts;
        tracing::info!(flow = self.flow(), run = id, status = ?info.status, records_in = c.records_in,
            records_out = c.records_out, filtered = c.filtered, failed = c.failed, "run finished");
        Ok(())
    }

    fn key_of(&self, record: &SourceRecord) -> String {
        let from_expr = self.inner.plan.key.as_ref().and_then(|k| {
            k.eval(&EvalContext::new(self.flow(), &record.data))
                .map_err(|e| tracing::warn!(flow = self.flow(), error = %e, "record key expression failed; using the record id"))
                .ok()
        });
        record_key(from_expr.as_ref(), record)
    }

    pub(crate) fn states(&self, records: Vec<SourceRecord>) -> Vec<RecordState> {
        records
            .into_iter()
            .map(|r| RecordState {
                key: self.key_of(&r),
                data: r.data,
                next_step: 0,
                outputs: Default::default(),
                status: RecordStatus::Pending,
            })
            .collect()
    }

    async fn single_record(
        &self,
        run_id: RunId,
        record: SourceRecord,
        tally: &Arc<Tally>,
    ) -> Result<BatchEnd, EngineError> {
        let states = self.states(vec![record]);
        let meta = BatchMeta { run_id, next_cursor: None, created_ms: now_ms() };
        let batch = self.inner.store.enqueue_batch(self.flow(), meta, &states).await?;
        tally.records_in.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Page>(1);
        let records = states.into_iter().enumerate().map(|(i, s)| (i as u64, s)).collect();
        let _ = tx.try_send(Page { id: batch, records: PageRecords::Decoded(records) });
        drop(tx);
        pipeline::consume(&self.inner, run_id, rx, tally).await
    }

    /// A poll run: a producer polls pages and persists each as a batch before handing it over
    /// a bounded channel; the consumer processes batches in order and commits each batch's
    /// cursor once all its records are terminal.
    async fn poll_run(
        &self,
        run_id: RunId,
        tally: &Arc<Tally>,
    ) -> Result<(BatchEnd, Option<String>), EngineError> {
        let TriggerPlan::Poll { connection, operation, params, .. } = &self.inner.plan.trigger else {
            return Ok((BatchEnd::Complete, None));
        };
        let Some(conn) = self.inner.connections.get(connection.as_str()) else {
            return Err(EngineError::MissingConnector {
                flow: self.flow().to_string(),
                connection: connection.to_string(),
                connector: "?".into(),
            });
        };
        let params = params.expose();
        let (tx, rx) = mpsc::channel::<Page>(self.inner.options.pages_ahead.max(1));
        let producer = async {
            // Owned here so the channel closes (and the consumer ends) when polling ends.
            let tx = tx;
            let mut cursor = self.inner.store.cursor(self.flow())?;
            loop {
                if self.inner.shutdown.is_cancelled() || self.inner.failed.load(Ordering::Relaxed) {
                    return Ok::<Option<String>, EngineError>(None);
                }
                let batch = match self.poll_with_retry(conn, operation, &params, cursor.as_deref()).await {
                    Ok(Some(b)) => b,
                    Ok(None) => return Ok(None),
                    Err(e) => return Ok(Some(format!("poll {operation:?} failed: {e}"))),
                };
                let states = self.states(batch.records);
                let meta = BatchMeta { run_id, next_cursor: batch.next_cursor.clone(), created_ms: now_ms() };
                let id = self.inner.store.enqueue_batch(self.flow(), meta, &states).await?;
                tally.records_in.fetch_add(states.len() as u64, Ordering::Relaxed);
                let records = states.into_iter().enumerate().map(|(i, s)| (i as u64, s)).collect();
                if tx.send(Page { id, records: PageRecords::Decoded(records) }).await.is_err() {
                    return Ok(None);
                }
                if batch.next_cursor.is_some() {
                    cursor = batch.next_cursor;
                }
                if !batch.more {
                    return Ok(None);
                }
            }
        };
        let consumer = pipeline::consume(&self.inner, run_id, rx, tally);
        let (poll_error, end) = tokio::join!(producer, consumer);
        Ok((end?, poll_error?))
    }

    /// One poll call with the trigger's retries. `Ok(None)` when shut down while waiting.
    async fn poll_with_retry(
        &self,
        conn: &Connection,
        op: &str,
        params: &Value,
        cursor: Option<&str>,
    ) -> Result<Option<qiao_contract::Batch>, CallError> {
        let policy = qiao_flow::RetryPolicy::default();
        let mut attempt = 1;
        let mut reauthorized = false;
        loop {
            let err = match conn.poll(op, params, cursor).await {
                Ok(b) => return Ok(Some(b)),
                Err(e) => e,
            };
            let class = err.class();
            let wait = match class {
                qiao_contract::ErrorClass::Unauthorized if !reauthorized => {
                    reauthorized = true;
                    Duration::ZERO
                }
                c if c.is_retryable() && attempt < self.inner.options.poll_attempts => {
                    let ra =
                        err.connector_error().and_then(|e| e.retry_after_ms()).map(Duration::from_millis);
                    backoff(&policy, attempt, ra)
                }
                _ => return Err(err),
            };
            tracing::warn!(flow = self.flow(), op, attempt, error = %err, wait_ms = wait.as_millis() as u64, "poll failed; retrying");
            if !self.sleep(wait).await {
                return Ok(None);
            }
            attempt += 1;
        }
    }
}
