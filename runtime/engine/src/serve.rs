//! Long-running service of a flow, for `qiao serve`.
//!
//! A **webhook flow** gets an [`Intake`]: a bounded queue in front of one long-running
//! consumer. A delivery first reserves a place in the queue (none free: the caller answers
//! 429), is then stored durably as a one-delivery batch — deduplicated on its delivery id in
//! the same transaction — and only then handed to the consumer, so the sender's 2xx always
//! means "stored". The consumer is the same pipeline as a poll run's (`pipeline::consume`),
//! under one run per consumer lifetime (trigger `webhook`), whose counts are written every
//! second. When every handle of the intake is dropped the consumer finishes what is queued
//! and ends; when the runner shuts down it stops at once and what it had not finished stays
//! in the store for the next start.
//!
//! Other flows run under [`FlowRunner::serve`]: resume, then poll every interval or fire at
//! each cron time, and fire early when woken (the admin API's "run now"). Stopping it drains:
//! no new run starts and the run in flight finishes, unless the runner is shut down too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use qiao_contract::{SourceRecord, WebhookResult};
use qiao_flow::TriggerPlan;
use qiao_host::CallError;
use qiao_store::{BatchMeta, Delivery, EncodedRecord, RunId, RunInfo, RunStatus, StoreError};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::json_body::JsonBody;
use crate::keys::content_key;
use crate::pipeline::{self, Page, PageRecords};
use crate::runner::{BatchEnd, FlowRunner, RunSummary, Tally, TriggerInput, now_ms, pending_pages};

/// Why a delivery could not get a place in the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Every place is taken: try again later.
    #[error("the flow's intake is full")]
    Full,
    /// The consumer has stopped (shutdown or reload).
    #[error("the flow's intake is closed")]
    Closed,
}

/// How a delivery was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Stored as this batch, and queued for the consumer.
    Accepted {
        /// The batch id.
        batch: u64,
    },
    /// The delivery id was accepted before; nothing was stored again.
    Duplicate,
}

/// The intake of a webhook flow. Cheap to clone; the consumer ends when every clone is gone.
#[derive(Clone)]
pub struct Intake {
    runner: FlowRunner,
    run_id: RunId,
    tally: Arc<Tally>,
    tx: mpsc::Sender<Page>,
    /// `qiao_records_in_total{flow}`, looked up once per intake rather than per delivery.
    records_in: metrics::Counter,
}

/// A reserved place in an intake's queue.
pub struct IntakePermit {
    intake: Intake,
    permit: mpsc::OwnedPermit<Page>,
}

impl Intake {
    /// Reserves a place for one delivery, without waiting.
    pub fn try_reserve(&self) -> Result<IntakePermit, IntakeError> {
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Ok(IntakePermit { intake: self.clone(), permit }),
            Err(mpsc::error::TrySendError::Full(_)) => Err(IntakeError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(IntakeError::Closed),
        }
    }

    /// Deliveries stored and waiting for the consumer (reserved places included).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// How many deliveries may wait.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// The consumer's run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The runner behind it.
    pub fn runner(&self) -> &FlowRunner {
        &self.runner
    }

    /// Queues a batch already in the store (a replayed dead letter) for the consumer,
    /// waiting up to `wait` for a place. `Ok(false)` when none came free or the intake is
    /// closed: the batch stays pending and is taken at the consumer's next start.
    pub async fn requeue(&self, batch: u64, wait: Duration) -> Result<bool, EngineError> {
        let Some(found) =
            self.runner.inner.store.pending_batches(self.runner.flow())?.into_iter().find(|b| b.id == batch)
        else {
            return Ok(false);
        };
        let Ok(Ok(permit)) = tokio::time::timeout(wait, self.tx.clone().reserve_owned()).await else {
            return Ok(false);
        };
        self.tally.records_in.fetch_add(
            found.records.iter().filter(|(_, r)| !r.status.is_terminal()).count() as u64,
            Ordering::Relaxed,
        );
        let _ = permit.send(Page { id: found.id, records: PageRecords::Decoded(found.records) });
        Ok(true)
    }
}

impl IntakePermit {
    /// Stores the delivery's records durably (once per `delivery` id) and queues them for the
    /// consumer. When this returns `Ok`, the delivery survives a crash.
    pub async fn deliver(
        self,
        delivery: Option<&str>,
        records: Vec<SourceRecord>,
    ) -> Result<Delivered, EngineError> {
        // Encoded once, here: the store writes these bytes and the intake holds them.
        let encoded = self
            .intake
            .runner
            .states(records)
            .iter()
            .map(EncodedRecord::encode)
            .collect::<Result<Vec<_>, _>>()?;
        self.store_and_queue(delivery, encoded).await
    }

    /// Like [`Self::deliver`] for a JSON body that is one record ([`webhook_record`]), kept
    /// as text from the request to the store: no JSON tree is built unless the flow's `key`
    /// expression needs one. The record's key is the delivery id, else a hash of the body.
    pub async fn deliver_json(
        self,
        delivery: Option<&str>,
        body: JsonBody<'_>,
    ) -> Result<Delivered, EngineError> {
        let body = body.raw();
        if self.intake.runner.inner.plan.key.is_some() {
            let data = serde_json::from_str(body.get())
                .map_err(|e| StoreError::Decode { what: "webhook body", message: e.to_string() })?;
            return self.deliver(delivery, vec![webhook_record(delivery, data)]).await;
        }
        let key = match delivery.filter(|d| !d.is_empty()) {
            Some(id) => id.to_string(),
            None => content_key(body.get().as_bytes()),
        };
        let encoded = vec![EncodedRecord::pending_raw(&key, body)?];
        self.store_and_queue(delivery, encoded).await
    }

    async fn store_and_queue(
        self,
        delivery: Option<&str>,
        encoded: Vec<EncodedRecord>,
    ) -> Result<Delivered, EngineError> {
        let runner = &self.intake.runner;
        let meta = BatchMeta { run_id: self.intake.run_id, next_cursor: None, created_ms: now_ms() };
        match runner.inner.store.enqueue_delivery(runner.flow(), delivery, meta, &encoded).await? {
            Delivery::Duplicate => Ok(Delivered::Duplicate),
            Delivery::Stored(id) => {
                self.intake.tally.records_in.fetch_add(encoded.len() as u64, Ordering::Relaxed);
                self.intake.records_in.increment(encoded.len() as u64);
                // If the consumer is gone the batch stays in the store and resumes next start.
                let _ = self.permit.send(Page { id, records: PageRecords::Encoded(encoded) });
                Ok(Delivered::Accepted { batch: id })
            }
        }
    }
}

/// The consumer of a webhook flow's intake; see [`FlowRunner::open_intake`].
pub struct WebhookConsumer {
    runner: FlowRunner,
    run_id: RunId,
    info: RunInfo,
    tally: Arc<Tally>,
    rx: mpsc::Receiver<Page>,
}

impl FlowRunner {
    /// Opens the intake of a webhook flow with room for `capacity` waiting deliveries, and
    /// starts the consumer's run. Run the consumer with [`WebhookConsumer::run`].
    pub async fn open_intake(&self, capacity: usize) -> Result<(Intake, WebhookConsumer), EngineError> {
        if !matches!(self.inner.plan.trigger, TriggerPlan::Webhook { .. }) {
            return Err(EngineError::Unsupported {
                flow: self.flow().to_string(),
                message: "only webhook flows have an intake".into(),
            });
        }
        self.close_interrupted_runs().await?;
        let (run_id, info) = self.start_run("webhook").await?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let tally = Arc::new(Tally::default());
        let records_in = metrics::counter!("qiao_records_in_total", "flow" => self.flow().to_string());
        let intake = Intake { runner: self.clone(), run_id, tally: tally.clone(), tx, records_in };
        Ok((intake, WebhookConsumer { runner: self.clone(), run_id, info, tally, rx }))
    }

    /// Marks runs of this flow still `running` from an earlier process as interrupted.
    async fn close_interrupted_runs(&self) -> Result<(), EngineError> {
        let store = &self.inner.store;
        for (id, mut info) in store.list_runs(Some(self.flow()), usize::MAX)? {
            if info.status == RunStatus::Running {
                info.status = RunStatus::Failed;
                info.error = Some("interrupted: the process stopped during the run; unfinished records resume in a later run".into());
                info.ended_ms = Some(now_ms());
                store.update_run(id, &info).await?;
            }
        }
        Ok(())
    }

    /// Verifies a webhook delivery with the trigger's connection (`verify-webhook`), when the
    /// trigger names one; `None` otherwise. `headers` is called only then: copying a request's
    /// headers is work a plain JSON webhook does not need.
    pub async fn verify_webhook(
        &self,
        headers: impl FnOnce() -> Vec<(String, String)>,
        body: &[u8],
    ) -> Option<Result<WebhookResult, CallError>> {
        let TriggerPlan::Webhook { connection: Some(connection), .. } = &self.inner.plan.trigger else {
            return None;
        };
        let conn = self.inner.connections.get(connection.as_str())?;
        Some(conn.verify_webhook(&headers(), body).await)
    }

    /// Serves a poll, schedule or manual flow until stopped: finishes what an earlier
    /// process left, then polls every interval or fires at each cron time (manual flows only
    /// resume). `wake` fires a poll or schedule run at once; `resume` finishes batches put
    /// in flight meanwhile (replayed dead letters). Runs never overlap. A failed run is in
    /// the run history and does not stop the service.
    ///
    /// Cancelling `stop` drains: no new run starts, the run in flight (if any) finishes, and
    /// then this returns. Cancelling the runner's [`FlowRunner::shutdown_token`] stops at
    /// once; the unfinished records of the run in flight stay in the store.
    pub async fn serve(
        &self,
        wake: &Notify,
        resume: &Notify,
        stop: &CancellationToken,
    ) -> Result<(), EngineError> {
        if stop.is_cancelled() {
            return Ok(());
        }
        self.resume().await?;
        let mut due = matches!(self.inner.plan.trigger, TriggerPlan::Poll { .. });
        loop {
            if stop.is_cancelled() || self.inner.shutdown.is_cancelled() {
                return Ok(());
            }
            if due {
                let input = match &self.inner.plan.trigger {
                    TriggerPlan::Poll { .. } => Some(TriggerInput::Poll),
                    TriggerPlan::Schedule { .. } => {
                        Some(TriggerInput::Schedule { scheduled_at: jiff::Timestamp::now().to_string() })
                    }
                    TriggerPlan::Manual | TriggerPlan::Webhook { .. } => None,
                };
                if let Some(input) = input {
                    self.fire_logged(input).await?;
                }
                due = false;
            }
            let (next, wait) = match &self.inner.plan.trigger {
                TriggerPlan::Poll { every, .. } => (Some(TriggerInput::Poll), Some(Duration::from(*every))),
                TriggerPlan::Schedule { cron, timezone, .. } => {
                    match crate::schedule::next_fire(cron, timezone, jiff::Timestamp::now()) {
                        Some((at, wait)) => (
                            Some(TriggerInput::Schedule { scheduled_at: at.timestamp().to_string() }),
                            Some(wait),
                        ),
                        None => (None, None),
                    }
                }
                TriggerPlan::Manual | TriggerPlan::Webhook { .. } => (None, None),
            };
            tokio::select! {
                // A stop wins over a fire that is due at the same moment.
                biased;
                _ = self.inner.shutdown.cancelled() => return Ok(()),
                _ = stop.cancelled() => return Ok(()),
                _ = wake.notified() => due = true,
                _ = resume.notified() => {
                    self.resume().await?;
                }
                _ = sleep_opt(wait) => {
                    if let Some(input) = next {
                        self.fire_logged(input).await?;
                    }
                }
            }
        }
    }

    async fn fire_logged(&self, input: TriggerInput) -> Result<(), EngineError> {
        let summary = self.fire(input).await?;
        if summary.info.status == RunStatus::Failed {
            tracing::warn!(
                flow = self.flow(),
                run = summary.run_id,
                error = summary.info.error.as_deref().unwrap_or(""),
                "run failed"
            );
        }
        Ok(())
    }
}

async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl WebhookConsumer {
    /// The consumer's run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Finishes the batches an earlier process (or an earlier consumer of this flow) left in
    /// flight, then processes deliveries until the intake is closed and drained, or the
    /// runner shuts down. The run's counts are written every second.
    pub async fn run(self) -> Result<RunSummary, EngineError> {
        let WebhookConsumer { runner, run_id, mut info, tally, rx } = self;
        let inner = &runner.inner;
        let leftover: Vec<_> = inner
            .store
            .resume_batches(runner.flow(), now_ms())
            .await?
            .into_iter()
            .filter(|b| b.meta.run_id != run_id)
            .collect();
        let work = async {
            if !leftover.is_empty() {
                let old = pending_pages(leftover, &tally);
                if let BatchEnd::Interrupted = pipeline::consume(inner, run_id, old, &tally).await? {
                    return Ok(BatchEnd::Interrupted);
                }
            }
            pipeline::consume(inner, run_id, rx, &tally).await
        };
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let end = loop {
            tokio::select! {
                end = &mut work => break end?,
                _ = tick.tick() => {
                    info.counts = tally.counts();
                    inner.store.update_run(run_id, &info).await?;
                }
            }
        };
        info.counts = tally.counts();
        runner.finish_run(run_id, &mut info, end, None).await?;
        Ok(RunSummary { run_id, info })
    }
}

/// The record a webhook body becomes when no connector decodes it: the JSON body, with the
/// delivery id as the record's id.
pub fn webhook_record(delivery: Option<&str>, body: serde_json::Value) -> SourceRecord {
    SourceRecord { id: delivery.map(str::to_string), data: body }
}
