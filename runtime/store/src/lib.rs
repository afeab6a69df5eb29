//! qiao's durable state, in one redb file (`<state>/qiao.redb`).
//!
//! It holds what delivery guarantees rest on: poll cursors, the records of every batch in
//! flight with their step checkpoints, run history with per-record outcomes, the dead-letter
//! queue, and connector `kv` state. All writes go through one writer thread that groups the
//! writes queued while the previous commit was syncing into one transaction ("group commit"):
//! each writer waits until its write is durable, and a thousand concurrent checkpoints cost a
//! handful of fsyncs instead of a thousand. Reads use redb's MVCC snapshots and never wait
//! for the writer.
//!
//! The store knows nothing of flows beyond their ids; the engine (`runtime/engine`) decides
//! what to write when. It depends on redb, serde and tokio (for the write acknowledgements).

mod admin;
mod model;
mod store;
mod tables;
mod writer;

pub use admin::{ApiToken, AuditEntry, Delivery};
pub use model::{
    BatchMeta, Completion, DeadLetter, DeadLetterId, EncodedRecord, PendingBatch, RecordOutcome, RecordState,
    RecordStatus, RecordWrite, RunCounts, RunId, RunInfo, RunStatus,
};
pub use store::Store;

/// The store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, full disk).
    #[error("state store error: {0}")]
    Db(String),
    /// A stored value could not be decoded.
    #[error("state store holds an undecodable {what}: {message}")]
    Decode {
        /// Which kind of value.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The writer thread is gone (the store is shutting down).
    #[error("state store is closed")]
    Closed,
    /// The state file is used by another process.
    #[error("state store {path} is in use by another qiao process")]
    Locked {
        /// The file.
        path: String,
    },
    /// The write conflicts with what is stored (a name already used).
    #[error("{0}")]
    Conflict(String),
    /// Something asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Db(e.into().to_string())
    }
}
