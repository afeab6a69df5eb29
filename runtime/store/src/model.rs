//! The values the store keeps. Stored as JSON inside redb, so they stay readable and can grow
//! fields (`#[serde(default)]`) without a migration.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::StoreError;
use crate::store::{decode, encode};

/// A run's id: monotonic across the store.
pub type RunId = u64;
/// A dead letter's id: monotonic across the store.
pub type DeadLetterId = u64;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    /// Still has steps to run.
    Pending,
    /// Every step ran.
    Done,
    /// A filter dropped it.
    Filtered,
    /// A `foreach` split it into child records.
    Split,
    /// Failed and was moved to the dead-letter queue.
    DeadLettered,
    /// Failed and was skipped (`on_error: skip`).
    Skipped,
}

impl RecordStatus {
    /// Whether the record needs no more work.
    pub fn is_terminal(self) -> bool {
        self != RecordStatus::Pending
    }
}

/// One in-flight record and its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// The record's identity (names it in history, the DLQ and idempotency keys).
    pub key: String,
    /// The record as it stands after the steps run so far.
    pub data: Value,
    /// Index of the next step to run.
    pub next_step: usize,
    /// Outputs of the action steps run so far, by step id.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// Where it stands.
    pub status: RecordStatus,
}

/// A [`RecordState`] in its stored form (its JSON bytes), cheap to clone. A webhook delivery's
/// records are encoded once, then stored and queued for the consumer in this form, so a full
/// intake holds compact bytes instead of parsed JSON trees.
#[derive(Debug, Clone)]
pub struct EncodedRecord(Arc<[u8]>);

impl EncodedRecord {
    /// Encodes a record's state.
    pub fn encode(state: &RecordState) -> Result<Self, StoreError> {
        Ok(Self(encode(state)?.into()))
    }

    /// A new record's pending state (step 0, no outputs) with `data` copied verbatim from JSON
    /// text: what [`Self::encode`] stores for the parsed record, without building its tree
    /// (a webhook body goes from the request to the store as text).
    pub fn pending_raw(key: &str, data: &RawValue) -> Result<Self, StoreError> {
        /// [`RecordState`]'s fields in its serialized form (`outputs` defaults to empty).
        #[derive(Serialize)]
        struct Pending<'a> {
            key: &'a str,
            data: &'a RawValue,
            next_step: usize,
            status: RecordStatus,
        }
        let pending = Pending { key, data, next_step: 0, status: RecordStatus::Pending };
        Ok(Self(encode(&pending)?.into()))
    }

    /// Decodes it back.
    pub fn decode(&self) -> Result<RecordState, StoreError> {
        decode("record", &self.0)
    }
}

impl AsRef<[u8]> for EncodedRecord {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One record write of [`crate::Store::save_records`]: its state, and when terminal its outcome
/// in the run history and its dead letter.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    /// The batch it belongs to.
    pub batch: u64,
    /// Its sequence number in the batch.
    pub seq: u64,
    /// Its state.
    pub state: RecordState,
    /// Its outcome in a run's history.
    pub outcome: Option<(RunId, RecordOutcome)>,
    /// Its dead letter.
    pub dead_letter: Option<DeadLetter>,
}

/// A batch of records taken from a trigger, with the cursor to commit once all are terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// The run that took it.
    pub run_id: RunId,
    /// The cursor to store when every record is terminal; `None` keeps the current one.
    pub next_cursor: Option<String>,
    /// When it was taken (ms since the epoch).
    pub created_ms: u64,
}

/// A batch found in flight (after a restart, or replayed dead letters).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBatch {
    /// Its id.
    pub id: u64,
    /// Its metadata.
    pub meta: BatchMeta,
    /// Its records by sequence number, terminal ones included.
    pub records: Vec<(u64, RecordState)>,
}

/// A record that failed for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The flow.
    pub flow: String,
    /// The run it failed in.
    pub run_id: RunId,
    /// The record as it stood at the failing step (replay resumes from there).
    pub state: RecordState,
    /// The failing step's id.
    pub step: String,
    /// The error class (`transient`, `invalid-input`, …).
    pub class: String,
    /// The error message.
    pub error: String,
    /// Attempts made at the failing step.
    pub attempts: u32,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

impl DeadLetter {
    /// The class of a dead letter made from a stored record that could not be read
    /// ([`crate::Store::quarantine_unreadable`]): its data is the stored bytes as text, so it
    /// is never replayed.
    pub const UNREADABLE: &str = "unreadable";
}

/// A batch to complete, with the run-history outcomes of its records that were not stored
/// one by one (see [`crate::Store::complete_batches`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The batch.
    pub batch: u64,
    /// Its records' sequence numbers are below this (`foreach` children included); 0 when
    /// unknown (then every record of the batch is found and deleted).
    pub records: u64,
    /// `(run, outcome)` rows to add to the run history.
    pub outcomes: Vec<(RunId, RecordOutcome)>,
}

/// What happened to one record in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordOutcome {
    /// The record's identity.
    pub key: String,
    /// Its final status.
    pub status: RecordStatus,
    /// The step it ended at (filter, failing step), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The error, for failed records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The dead letter it became, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterId>,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// A run's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Still going (or the process died during it).
    Running,
    /// Every record reached a terminal state.
    Succeeded,
    /// Some records were dead-lettered or skipped.
    CompletedWithFailures,
    /// The trigger itself failed (poll error) or a step with `on_error: fail` stopped it.
    Failed,
}

/// Record counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Records taken from the trigger (or split off by `foreach`).
    pub records_in: u64,
    /// Records that ran every step.
    pub records_out: u64,
    /// Records dropped by a filter.
    pub filtered: u64,
    /// Records dead-lettered or skipped.
    pub failed: u64,
    /// Done and filtered records whose per-record outcome was not kept in the run history
    /// (beyond the engine's per-run limit; failures are always kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outcomes_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One run of a flow: one firing of its trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The flow.
    pub flow: String,
    /// `manual`, `schedule`, `poll`, `webhook`, `replay`, `resume`.
    pub trigger: String,
    /// Start (ms since the epoch).
    pub started_ms: u64,
    /// End, once finished.
    pub ended_ms: Option<u64>,
    /// Lifecycle.
    pub status: RunStatus,
    /// Counts so far.
    pub counts: RunCounts,
    /// Why it failed, for `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_raw_pending_record_decodes_like_an_encoded_one() -> Result<(), Box<dyn std::error::Error>> {
        let text = r#"{ "worklog": {"id": "100231", "hours": 3.5, "tags": ["现场", null]}, "ok": true }"#;
        let raw: &RawValue = serde_json::from_str(text)?;
        let decoded = EncodedRecord::pending_raw("WL-1", raw)?.decode()?;
        let expected = RecordState {
            key: "WL-1".into(),
            data: serde_json::from_str(text)?,
            next_step: 0,
            outputs: BTreeMap::new(),
            status: RecordStatus::Pending,
        };
        assert_eq!(decoded, expected);
        assert_eq!(decoded.data["worklog"]["tags"], json!(["现场", null]));
        assert_eq!(EncodedRecord::encode(&expected)?.decode()?, expected);
        Ok(())
    }

    #[test]
    fn data_as_deep_as_the_parser_allows_reads_back_from_its_record() -> Result<(), Box<dyn std::error::Error>>
    {
        // 127 levels parse; the record's state adds one more around them.
        let text = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let data: Value = serde_json::from_str(&text)?;
        let raw: &RawValue = serde_json::from_str(&text)?;
        let state = RecordState {
            key: "deep".into(),
            data,
            next_step: 0,
            outputs: BTreeMap::new(),
            status: RecordStatus::Pending,
        };
        assert_eq!(EncodedRecord::encode(&state)?.decode()?, state);
        assert_eq!(EncodedRecord::pending_raw("deep", raw)?.decode()?, state);
        Ok(())
    }
}
