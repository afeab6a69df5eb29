//! Typed errors of the host. Each way a plugin can misbehave has its own [`CallError`] variant.

use std::path::PathBuf;
use std::time::Duration;

use qiao_contract::{ConnectorError, ErrorClass, InfoProblem, OperationKind};

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("failed to configure the wasm engine: {0}")]
    Engine(String),
    /// The host imports could not be linked.
    #[error("failed to set up the host imports: {0}")]
    Linker(String),
    /// An outbound HTTP client could not be built.
    #[error("failed to build the outbound http client: {0}")]
    HttpClient(String),
    /// The compile cache directory could not be created.
    #[error("failed to create compile cache directory {path}: {cause}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// A connector component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("failed to read connector {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("failed to compile connector {source_name}: {message}")]
    Compile {
        /// Where the bytes came from.
        source_name: String,
        /// wasmtime's message.
        message: String,
    },
    /// The component imports something the host does not provide (or with another type).
    #[error("connector {source_name} cannot be linked: {message}")]
    Link {
        /// Where the bytes came from.
        source_name: String,
        /// wasmtime's message.
        message: String,
    },
    /// `describe()` failed.
    #[error("connector {source_name} failed in describe(): {error}")]
    Describe {
        /// Where the bytes came from.
        source_name: String,
        /// What went wrong.
        error: Box<CallError>,
    },
    /// `describe()` returned something that breaks the contract.
    #[error("connector {source_name} describes itself badly: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    BadDescription {
        /// Where the bytes came from.
        source_name: String,
        /// Every problem found.
        problems: Vec<InfoProblem>,
    },
    /// The admin's limits cannot be honoured by this runtime.
    #[error("connector {source_name}: {message}")]
    Policy {
        /// Where the bytes came from.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// A connection could not be set up from a config.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A granted host pattern is invalid after templating.
    #[error("connector {connector:?}: {cause}")]
    Pattern {
        /// The connector id.
        connector: String,
        /// The pattern problem.
        cause: crate::grants::InvalidPattern,
    },
    /// The config is not a JSON object.
    #[error("connector {connector:?}: connection config must be a JSON object")]
    NotAnObject {
        /// The connector id.
        connector: String,
    },
}

/// Why one call into a connector failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The connector returned a classified error; this is normal operation.
    #[error("{0}")]
    Connector(ConnectorError),
    /// The operation does not exist or is of the other kind.
    #[error("connector {connector:?} has no {kind} operation {op:?} (it has: {available})")]
    UnknownOperation {
        /// The connector id.
        connector: String,
        /// The requested operation.
        op: String,
        /// The kind that was needed.
        kind: OperationKind,
        /// The operations of that kind, comma separated.
        available: String,
    },
    /// The connector tried to reach a host that was not granted; the call was stopped.
    #[error("connector {connector:?} was stopped: {denial}")]
    HostDenied {
        /// The connector id.
        connector: String,
        /// What was refused and why.
        denial: String,
    },
    /// The guest ran longer than its CPU budget.
    #[error("connector {connector:?} exceeded its cpu budget of {budget:?} in {op}")]
    CpuBudgetExceeded {
        /// The connector id.
        connector: String,
        /// The export or operation.
        op: String,
        /// The budget.
        budget: Duration,
    },
    /// The call took longer than its wall-clock limit.
    #[error("connector {connector:?} did not finish {op} within {timeout:?}")]
    Timeout {
        /// The connector id.
        connector: String,
        /// The export or operation.
        op: String,
        /// The limit.
        timeout: Duration,
    },
    /// The guest tried to grow its memory past its limit.
    #[error(
        "connector {connector:?} exceeded its memory limit of {limit_bytes} bytes in {op} (asked for {requested_bytes})"
    )]
    MemoryExceeded {
        /// The connector id.
        connector: String,
        /// The export or operation.
        op: String,
        /// The limit.
        limit_bytes: u64,
        /// What the guest asked for.
        requested_bytes: u64,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds access...).
    #[error("connector {connector:?} crashed in {op}: {message}{}", stderr_suffix(stderr))]
    Trap {
        /// The connector id.
        connector: String,
        /// The export or operation.
        op: String,
        /// wasmtime's trap description.
        message: String,
        /// The tail of what the guest wrote to stderr (a Rust panic message lands here).
        stderr: String,
    },
    /// The guest returned output that breaks the contract (JSON that does not parse...).
    #[error("connector {connector:?} returned malformed output from {op}: {detail}")]
    MalformedOutput {
        /// The connector id.
        connector: String,
        /// The export or operation.
        op: String,
        /// What is wrong.
        detail: String,
    },
    /// The host itself failed (instance pool exhausted, state store unavailable).
    #[error("host failure calling connector {connector:?}: {message}")]
    Host {
        /// The connector id.
        connector: String,
        /// What failed.
        message: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { format!(" (guest stderr: {stderr})") }
}

impl CallError {
    /// The error class the engine's retry policy uses. Sandbox violations are permanent:
    /// retrying a plugin that loops or allocates without bound only burns the budget again.
    pub fn class(&self) -> ErrorClass {
        match self {
            CallError::Connector(e) => e.class(),
            CallError::UnknownOperation { .. } | CallError::HostDenied { .. } => ErrorClass::Config,
            CallError::Timeout { .. } | CallError::Host { .. } => ErrorClass::Transient,
            CallError::CpuBudgetExceeded { .. }
            | CallError::MemoryExceeded { .. }
            | CallError::Trap { .. }
            | CallError::MalformedOutput { .. } => ErrorClass::Permanent,
        }
    }

    /// The connector's own classified error, if that is what this is.
    pub fn connector_error(&self) -> Option<&ConnectorError> {
        match self {
            CallError::Connector(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the plugin broke a sandbox rule or the contract (as opposed to reporting an
    /// error through the contract).
    pub fn is_sandbox_violation(&self) -> bool {
        matches!(
            self,
            CallError::HostDenied { .. }
                | CallError::CpuBudgetExceeded { .. }
                | CallError::MemoryExceeded { .. }
                | CallError::Trap { .. }
                | CallError::MalformedOutput { .. }
        )
    }
}
