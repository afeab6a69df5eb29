//! The flow engine: runs a validated [`qiao_flow::FlowPlan`] with durable delivery.
//!
//! A [`FlowRunner`] owns one flow: its plan, a `qiao_host::Connection` per connection, and the
//! shared [`qiao_store::Store`]. Each firing of the trigger is a *run*. A poll run takes pages
//! from the connector; every page is persisted as a batch (records + the cursor to commit)
//! before any record is processed, its records then go through the steps concurrently (up to
//! the flow's `concurrency`), action results are checkpointed, and the cursor is committed
//! only when every record of the batch is terminal (done, filtered, skipped, dead-lettered).
//! After a crash, [`FlowRunner::resume`] finishes the batches still in flight from their
//! checkpoints, so a completed action is not repeated, and actions get the same idempotency
//! key on every attempt.
//!
//! Sits between the CLI/server and the host, flow and store crates; it never touches
//! wasmtime or YAML directly.

mod error;
mod group;
mod json_body;
mod keys;
mod kv;
mod meters;
mod pipeline;
mod record;
mod retry;
mod runner;
mod schedule;
mod serve;

pub use error::EngineError;
pub use json_body::JsonBody;
pub use keys::{content_key, idempotency_key, record_key};
pub use kv::StoreKv;
pub use runner::{FlowRunner, RunSummary, RunnerOptions, TriggerInput};
pub use serve::{Delivered, Intake, IntakeError, IntakePermit, WebhookConsumer, webhook_record};
