//! Write qiao connectors in Rust.
//!
//! A connector is a WebAssembly component that implements the contract in `wit/connector.wit`.
//! This crate is everything a connector author depends on: the [`Connector`] trait to
//! implement, [`export_connector!`] to turn it into the component's exports, the classified
//! [`Error`], and helpers over the four host imports ([`http`], [`kv`], [`log`], [`clock`]).
//!
//! The crate compiles natively as well as to `wasm32-wasip2`. Natively the host imports are
//! served by [`testing::MockHost`], so connector logic is unit-tested with `cargo test` and no
//! Wasm runtime. It depends on `qiao-contract` for the plain contract types and must not depend
//! on the host runtime.
//!
//! ```
//! use qiao_sdk::{Batch, Connector, Info, InvokeRequest, ActionOutput, PollRequest, Result};
//!
//! struct Echo;
//!
//! impl Connector for Echo {
//!     fn describe() -> Info {
//!         Info {
//!             id: "echo".into(),
//!             version: "0.1.0".into(),
//!             title: "Echo".into(),
//!             description: "Returns its input.".into(),
//!             config_schema: qiao_sdk::json!({"type": "object"}),
//!             operations: vec![],
//!             hosts: vec![],
//!             webhook: false,
//!         }
//!     }
//!     fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
//!         match req.op {
//!             "echo" => Ok(ActionOutput::new(req.input.clone())),
//!             other => Err(qiao_sdk::unknown_operation(other)),
//!         }
//!     }
//! }
//!
//! qiao_sdk::export_connector!(Echo);
//! ```
//!
//! `sdk/README.md` walks through a complete connector.

pub mod clock;
mod connector;
pub mod encode;
mod export;
pub mod http;
pub mod kv;
pub mod log;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// Guest bindings generated from `wit/connector.wit`; [`export_connector!`] uses them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "qiao_sdk::bindings",
    });
}

#[doc(hidden)]
pub use export::__private;

pub use connector::{
    Connector, InvokeRequest, PollRequest, WebhookRequest, error_of_class, parse_config, parse_input,
    parse_params, unknown_operation,
};
pub use qiao_contract::{
    ActionOutput, Batch, ConnectorError as Error, ConnectorInfo as Info, ErrorClass, Operation,
    OperationKind, SECRET_KEYWORD, SourceRecord, WebhookReply, WebhookResult,
};
pub use serde_json::{Value, json};

/// The result type of connector code: errors are classified [`Error`]s.
pub type Result<T, E = Error> = std::result::Result<T, E>;
