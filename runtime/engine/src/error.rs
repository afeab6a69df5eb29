//! Engine errors: what stops a flow from starting or a run from going on. Per-record failures
//! are not errors here; they end as dead letters or skips.

use qiao_store::StoreError;

/// A flow could not be started or a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A connection has no loaded connector.
    #[error("flow {flow:?}: connection {connection:?} needs connector {connector}, which is not loaded")]
    MissingConnector {
        /// The flow.
        flow: String,
        /// The connection id.
        connection: String,
        /// The connector reference (`jira@0.1.0`).
        connector: String,
    },
    /// A connection could not be bound.
    #[error("flow {flow:?}: connection {connection:?}: {message}")]
    Connect {
        /// The flow.
        flow: String,
        /// The connection id.
        connection: String,
        /// What failed.
        message: String,
    },
    /// The trigger kind cannot run here.
    #[error("flow {flow:?}: {message}")]
    Unsupported {
        /// The flow.
        flow: String,
        /// Why.
        message: String,
    },
}
