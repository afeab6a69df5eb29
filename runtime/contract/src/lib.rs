//! The connector contract as plain Rust data.
//!
//! `wit/connector.wit` is the contract; this crate is its Rust view for code that must not
//! depend on a Wasm runtime or on generated bindings: the flow validator (`runtime/flow`), the
//! engine, and the SDK's author-facing API. The host (`runtime/host`) converts generated
//! bindings into these types and back. It depends on serde only.

mod error;
mod ids;
mod info;
mod records;

pub use error::{ConnectorError, ErrorClass};
pub use ids::{InvalidId, check_kebab_case};
pub use info::{ConnectorInfo, InfoProblem, Operation, OperationKind, SECRET_KEYWORD};
pub use records::{ActionOutput, Batch, SourceRecord, WebhookReply, WebhookResult};

/// The WIT package this crate mirrors.
pub const WIT_PACKAGE: &str = "qiao:connector@0.1.0";
/// The WIT version this crate mirrors.
pub const WIT_VERSION: &str = "0.1.0";
