//! redb table layout. Keys are tuples so one flow's (or run's) rows are contiguous and range
//! scans are cheap. Values are JSON bytes (see `model.rs`).

use redb::TableDefinition;

/// flow → cursor.
pub const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cursors");
/// (flow, batch) → `BatchMeta`.
pub const BATCHES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("batches");
/// (flow, batch, seq) → `RecordState`.
pub const RECORDS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("records");
/// run → `RunInfo`.
pub const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
/// (run, n) → `RecordOutcome`.
pub const RUN_RECORDS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("run_records");
/// id → `DeadLetter`.
pub const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// (scope, key) → bytes.
pub const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
/// name → counter.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The next id to hand out (runs, batches, dead letters, run-record rows share it).
pub const NEXT_ID: &str = "next_id";
