//! `qiao serve`: runs every flow of a folder behind one HTTP server.
//!
//! - **Flows** (`flows.rs`, tasks in `flows/tasks.rs`): every valid flow file in the folder runs; invalid ones are
//!   reported and skipped. Webhook flows get a bounded intake and a long-running consumer
//!   (`qiao_engine::Intake`); poll, schedule and manual flows run under
//!   `FlowRunner::serve`. Flows reload when their files change (or on request) without
//!   losing records: the old version drains (or is stopped, its records kept pending in the
//!   store) before the new one starts.
//! - **Webhooks** (`webhook.rs`): `POST /hooks/<flow><path>`, verified by the flow's shared
//!   secret (HMAC-SHA256) or its connector's `verify-webhook`, stored durably and deduplicated
//!   on the delivery id before the 2xx; 429 with `Retry-After` when the intake is full.
//! - **Admin API** (`api.rs`, `routes.rs`): `/api/v1/…`, bearer tokens stored hashed, roles
//!   viewer < operator < admin, an audit log of state-changing calls, an OpenAPI document
//!   generated from the same route table that authorizes requests.
//! - **Connectors** (`connectors.rs`, `install.rs`): the loaded set, shared by every flow
//!   load; admins install connectors from the trusted directories (verified like `qiao
//!   connector install`, loaded into the running server, flows reloaded) and remove unused
//!   ones.
//! - **Observability** (`metrics.rs`): Prometheus `/metrics`, `/healthz`, `/readyz`.
//!
//! Sits above the engine, flow, host, store and directory crates; the CLI (`qiao serve`, `qiao token`)
//! is its only user. It never touches wasmtime or YAML parsing directly.

mod api;
mod app;
mod auth;
mod config;
mod connectors;
mod error;
mod flows;
mod install;
mod metrics;
mod routes;
mod webhook;

pub use app::{RunningServer, ServerError, start};
pub use auth::{Role, create_token, hash_token};
pub use config::{Limits, ServeConfig};
pub use connectors::{ConnectorLoader, InstalledConnector, LoadedConnectors};
pub use routes::{ROUTES, RouteSpec, openapi, path_params};
