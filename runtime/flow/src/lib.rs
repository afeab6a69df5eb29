//! qiao flow files: YAML spec → validated plan, and the expressions flows compute with.
//!
//! This crate sits between the flow files integrators write and the engine that runs them.
//! [`load`] reads a flow file ([`spec`] types, serde-saphyr), checks everything that can be
//! checked before running — ids, connection and operation references against a
//! [`ConnectorCatalog`], connection configs and poll params against the connectors' JSON
//! Schemas, cron patterns, time zones, durations, `${env.*}`/`${secret.*}` references through a
//! [`SecretSource`], and every expression — and returns a [`FlowPlan`] or [`Diagnostics`] with
//! every problem at `file:line:col` and a path. [`Expr`] and [`Template`] evaluate MiniJinja
//! expressions per record under a fuel budget.
//!
//! It must not depend on tokio or wasmtime: the engine and the CLI use it, the Wasm host does
//! not.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod catalog;
mod diagnostic;
mod duration;
mod expr;
mod ids;
mod json_schema;
mod library;
mod load;
mod load_connections;
mod load_steps;
mod load_trigger;
mod native;
#[cfg(test)]
mod native_tests;
mod plan;
mod schema_check;
mod secrets;
mod source_map;
pub mod spec;
mod static_value;
mod template;

pub use catalog::{ConnectorCatalog, ConnectorRef, StaticCatalog};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use duration::Duration;
pub use expr::{
    CompileError, DEFAULT_FUEL, EvalContext, EvalError, EvalErrorKind, Expr, ExprEnv, ExprOptions, Tables,
};
pub use ids::{ConnectionId, FlowId, StepId};
pub use json_schema::flow_json_schema;
pub use library::Clock;
pub use load::{load, load_with_options, parse};
pub use plan::{
    ActionPlan, BatchPlan, ConnectionPlan, FlowPlan, MAX_BATCH_SIZE, OnError, RateLimit, RetryPolicy,
    StepKind, StepPlan, TriggerPlan,
};
pub use secrets::{
    FileSecrets, MemorySecrets, SECRET_ENV_PREFIX, SECRETS_FILE, Secret, SecretSource, SecretsError,
};
pub use static_value::StaticValue;
pub use template::Template;
