//! End-to-end tests: real components, built to Wasm by `cargo xtask build-connectors`, run
//! through the real host against loopback servers. One test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod batch;
mod common;
mod dingtalk;
mod engine;
mod http_connector;
mod jira;
mod kingdee;
mod sandbox;
mod sap;
mod yonyou;
