//! The store's API. Writes are async (they wait for the group commit); reads are synchronous
//! snapshot reads that take microseconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;
use crate::model::{
    BatchMeta, Completion, DeadLetter, DeadLetterId, PendingBatch, RecordOutcome, RecordState, RecordStatus,
    RecordWrite, RunId, RunInfo,
};
use crate::tables::{BATCHES, CURSORS, DEAD_LETTERS, KV, META, NEXT_ID, RECORDS, RUN_RECORDS, RUNS};
use crate::writer::Writer;

/// redb's page cache. Its default (1 GiB) lets a long-running server's memory grow with the
/// state file; the working set — batches in flight, cursors, the newest run history — is
/// small, and reads of older history go to the OS page cache.
const CACHE_BYTES: usize = 64 << 20;

/// Handle to the state file. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    writer: Writer,
    /// The id allocator, shared with the writer, which persists it with each commit.
    next_id: Arc<AtomicU64>,
    path: PathBuf,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Decode { what: "value", message: e.to_string() })
}

/// Decodes a stored value. serde_json's nesting limit is lifted: what is stored was encoded
/// here from values parsed under that limit (connector outputs, webhook bodies, API input),
/// then wrapped a few levels deeper (a record's state, a dead letter), and the limit would
/// refuse exactly those levels, leaving a record that can never be read back. The depth
/// stays bounded by the parse limit plus the wrapping.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    T::deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| StoreError::Decode { what, message: e.to_string() })
}

/// The key prefix of a dead letter made from a stored record that could not be read
/// ([`Store::quarantine_unreadable`]).
const UNREADABLE_KEY: &str = "unreadable/";

/// Raises the persisted id counter to at least `next`. The writer calls it once per commit
/// with the allocator's value, which is above every id the commit's writes use: each was
/// allocated before its write was queued.
pub(crate) fn bump_next_id(txn: &WriteTransaction, next: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let current = meta.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(1);
    if next > current {
        meta.insert(NEXT_ID, next)?;
    }
    Ok(())
}

/// Inserts a new batch (its metadata and records, sequence numbers 0..n) inside `txn`.
pub(crate) fn insert_batch(
    txn: &WriteTransaction,
    flow: &str,
    id: u64,
    meta: &[u8],
    records: &[impl AsRef<[u8]>],
) -> Result<(), StoreError> {
    txn.open_table(BATCHES)?.insert((flow, id), meta)?;
    let mut table = txn.open_table(RECORDS)?;
    for (seq, bytes) in records.iter().enumerate() {
        table.insert((flow, id, seq as u64), bytes.as_ref())?;
    }
    Ok(())
}

/// Completes one batch inside `txn` (see [`Store::complete_batches`]): deletes it with its
/// records (sequence numbers below `records`, or all when 0) and commits its cursor.
fn complete_in(txn: &WriteTransaction, flow: &str, batch: u64, records: u64) -> Result<(), StoreError> {
    let meta: BatchMeta = {
        let mut batches = txn.open_table(BATCHES)?;
        let Some(bytes) = batches.remove((flow, batch))? else {
            return Err(StoreError::NotFound(format!("batch {batch} of flow {flow:?}")));
        };
        decode("batch", bytes.value())?
    };
    let mut table = txn.open_table(RECORDS)?;
    if records == 0 {
        table.retain_in((flow, batch, 0)..=(flow, batch, u64::MAX), |_, _| false)?;
    } else {
        for seq in 0..records {
            table.remove((flow, batch, seq))?;
        }
    }
    if let Some(cursor) = &meta.next_cursor {
        txn.open_table(CURSORS)?.insert(flow, cursor.as_str())?;
    }
    Ok(())
}

/// A record write, encoded (see [`Store::encode_writes`]).
struct EncodedWrite {
    batch: u64,
    seq: u64,
    /// `None`: the batch completes in the same transaction.
    state: Option<Vec<u8>>,
    dead_letter: Option<(DeadLetterId, Vec<u8>)>,
    outcome: Option<(RunId, u64, Vec<u8>)>,
}

/// Applies encoded writes inside `txn`.
fn apply_writes(txn: &WriteTransaction, flow: &str, writes: &[EncodedWrite]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut records = txn.open_table(RECORDS)?;
    let mut dead_letters = txn.open_table(DEAD_LETTERS)?;
    let mut run_records = txn.open_table(RUN_RECORDS)?;
    for e in writes {
        if let Some(state) = &e.state {
            records.insert((flow, e.batch, e.seq), state.as_slice())?;
        }
        if let Some((id, bytes)) = &e.dead_letter {
            dead_letters.insert(*id, bytes.as_slice())?;
        }
        if let Some((run, n, bytes)) = &e.outcome {
            run_records.insert((*run, *n), bytes.as_slice())?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) `<dir>/qiao.redb`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("qiao.redb");
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked { path: path.display().to_string() });
            }
            Err(e) => return Err(e.into()),
        };
        // Create every table so reads never meet a missing one.
        let txn = db.begin_write()?;
        txn.open_table(CURSORS)?;
        txn.open_table(BATCHES)?;
        txn.open_table(RECORDS)?;
        txn.open_table(RUNS)?;
        txn.open_table(RUN_RECORDS)?;
        txn.open_table(DEAD_LETTERS)?;
        txn.open_table(KV)?;
        crate::admin::create_tables(&txn)?;
        let next_id = txn.open_table(META)?.get(NEXT_ID)?.map(|v| v.value()).unwrap_or(1);
        txn.commit()?;
        let db = Arc::new(db);
        let next_id = Arc::new(AtomicU64::new(next_id));
        let writer = Writer::start(db.clone(), next_id.clone())
            .map_err(|e| StoreError::Db(format!("cannot start writer: {e}")))?;
        Ok(Store { inner: Arc::new(Inner { db, writer, next_id, path }) })
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The database, for the server-side tables (`admin.rs`).
    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub(crate) fn allocate(&self, n: u64) -> u64 {
        self.inner.next_id.fetch_add(n, Ordering::Relaxed)
    }

    pub(crate) async fn write(
        &self,
        op: impl FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.inner.writer.write(Box::new(op)).await
    }

    // ----- cursors and batches -------------------------------------------------------------

    /// The committed cursor of `flow`.
    pub fn cursor(&self, flow: &str) -> Result<Option<String>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(CURSORS)?;
        Ok(table.get(flow)?.map(|v| v.value().to_string()))
    }

    /// Persists a batch taken from a trigger: its records (sequence numbers 0..n, each at step
    /// 0) and the cursor to commit when they are all terminal. Returns the batch id.
    pub async fn enqueue_batch(
        &self,
        flow: &str,
        meta: BatchMeta,
        records: &[RecordState],
    ) -> Result<u64, StoreError> {
        let id = self.allocate(1);
        let flow = flow.to_string();
        let meta_bytes = encode(&meta)?;
        let encoded: Vec<Vec<u8>> = records.iter().map(encode).collect::<Result<_, _>>()?;
        self.write(move |txn| insert_batch(txn, &flow, id, &meta_bytes, &encoded)).await?;
        Ok(id)
    }

    /// Stores a record's progress (or its terminal state) and, when given, its outcome in the
    /// run history and its dead letter, all in one transaction. Returns the dead letter's id.
    pub async fn save_record(
        &self,
        flow: &str,
        batch: u64,
        seq: u64,
        state: &RecordState,
        outcome: Option<(RunId, RecordOutcome)>,
        dead_letter: Option<DeadLetter>,
    ) -> Result<Option<DeadLetterId>, StoreError> {
        let ids = self
            .save_records(flow, vec![RecordWrite { batch, seq, state: state.clone(), outcome, dead_letter }])
            .await?;
        Ok(ids.into_iter().next().flatten())
    }

    /// [`Store::save_record`] for many records in one transaction (a group after a bulk
    /// action). Returns the dead-letter id of each write, in order.
    pub async fn save_records(
        &self,
        flow: &str,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<Option<DeadLetterId>>, StoreError> {
        let (encoded, ids) = self.encode_writes(writes, &Default::default())?;
        let flow = flow.to_string();
        self.write(move |txn| apply_writes(txn, &flow, &encoded)).await?;
        Ok(ids)
    }

    /// Marks a record `Split` and adds its children to the same batch, atomically.
    pub async fn split_record(
        &self,
        flow: &str,
        batch: u64,
        seq: u64,
        parent: &RecordState,
        children: Vec<(u64, RecordState)>,
    ) -> Result<(), StoreError> {
        let flow = flow.to_string();
        let parent_bytes = encode(parent)?;
        let children: Vec<(u64, Vec<u8>)> =
            children.iter().map(|(s, c)| Ok((*s, encode(c)?))).collect::<Result<_, StoreError>>()?;
        self.write(move |txn| {
            let mut table = txn.open_table(RECORDS)?;
            table.insert((flow.as_str(), batch, seq), parent_bytes.as_slice())?;
            for (s, bytes) in &children {
                table.insert((flow.as_str(), batch, *s), bytes.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    /// Ends a batch whose records are all terminal: commits its cursor (if it has one) and
    /// deletes the batch with its records, in one transaction.
    pub async fn complete_batch(&self, flow: &str, batch: u64) -> Result<(), StoreError> {
        self.complete_batches(flow, vec![Completion { batch, records: 0, outcomes: Vec::new() }]).await
    }

    /// [`Store::complete_batch`] for several batches of one flow, in order, in one
    /// transaction (the last cursor wins), together with the run-history outcomes of records
    /// whose terminal state was not written on its own (records that ended without an
    /// action: re-running them after a crash has no effect outside, so they are not
    /// checkpointed one by one). The caller vouches that every record of these batches is
    /// terminal.
    pub async fn complete_batches(&self, flow: &str, batches: Vec<Completion>) -> Result<(), StoreError> {
        self.commit(flow, Vec::new(), batches).await
    }

    /// Terminal writes ([`Store::save_records`]) and batch completions
    /// ([`Store::complete_batches`]) in one transaction. A write whose batch completes in the
    /// same transaction keeps only its outcome and dead letter: the record row is deleted
    /// with the batch anyway.
    pub async fn commit(
        &self,
        flow: &str,
        writes: Vec<RecordWrite>,
        batches: Vec<Completion>,
    ) -> Result<(), StoreError> {
        let completed: std::collections::HashSet<u64> = batches.iter().map(|c| c.batch).collect();
        let mut ids = Vec::with_capacity(batches.len());
        let mut outcomes = Vec::new();
        for c in batches {
            ids.push((c.batch, c.records));
            for (run, o) in c.outcomes {
                outcomes.push((run, self.allocate(1), encode(&o)?));
            }
        }
        let (encoded, _) = self.encode_writes(writes, &completed)?;
        let flow = flow.to_string();
        self.write(move |txn| {
            apply_writes(txn, &flow, &encoded)?;
            for (batch, records) in ids {
                complete_in(txn, &flow, batch, records)?;
            }
            if !outcomes.is_empty() {
                let mut run_records = txn.open_table(RUN_RECORDS)?;
                for (run, n, bytes) in &outcomes {
                    run_records.insert((*run, *n), bytes.as_slice())?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Encodes writes for [`apply_writes`], allocating ids for outcomes and dead letters;
    /// the state of a write whose batch is in `completed` is left out. Returns the encoded
    /// writes and the dead-letter id of each.
    fn encode_writes(
        &self,
        writes: Vec<RecordWrite>,
        completed: &std::collections::HashSet<u64>,
    ) -> Result<(Vec<EncodedWrite>, Vec<Option<DeadLetterId>>), StoreError> {
        let mut encoded = Vec::with_capacity(writes.len());
        let mut ids = Vec::with_capacity(writes.len());
        for w in writes {
            let dead_letter = match &w.dead_letter {
                Some(dl) => Some((self.allocate(1), encode(dl)?)),
                None => None,
            };
            let dl_id = dead_letter.as_ref().map(|(id, _)| *id);
            let outcome = match w.outcome {
                Some((run, mut o)) => {
                    o.dead_letter = dl_id;
                    Some((run, self.allocate(1), encode(&o)?))
                }
                None => None,
            };
            ids.push(dl_id);
            let state = if completed.contains(&w.batch) { None } else { Some(encode(&w.state)?) };
            encoded.push(EncodedWrite { batch: w.batch, seq: w.seq, state, dead_letter, outcome });
        }
        Ok((encoded, ids))
    }

    /// Every batch of `flow` still in flight, oldest first, with all its records.
    pub fn pending_batches(&self, flow: &str) -> Result<Vec<PendingBatch>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let records = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for row in batches.range((flow, 0)..=(flow, u64::MAX))? {
            let (k, v) = row?;
            let id = k.value().1;
            let meta: BatchMeta = decode("batch", v.value())?;
            let mut recs = Vec::new();
            for r in records.range((flow, id, 0)..=(flow, id, u64::MAX))? {
                let (rk, rv) = r?;
                recs.push((rk.value().2, decode("record", rv.value())?));
            }
            out.push(PendingBatch { id, meta, records: recs });
        }
        Ok(out)
    }

    /// [`Store::pending_batches`] at a flow's start: when a stored row does not decode, the
    /// unreadable rows are first moved out of the way ([`Store::quarantine_unreadable`],
    /// stamped `now`), so one bad row cannot stop the flow at every start. Every row is
    /// decoded once when all are readable (the usual case).
    pub async fn resume_batches(&self, flow: &str, now: u64) -> Result<Vec<PendingBatch>, StoreError> {
        match self.pending_batches(flow) {
            Err(StoreError::Decode { .. }) => {
                self.quarantine_unreadable(flow, now).await?;
                self.pending_batches(flow)
            }
            loaded => loaded,
        }
    }

    /// Moves every stored record of `flow` that can no longer be read (a bug, a damaged
    /// file, a format this version does not know) out of the way of its batch: each becomes
    /// a dead letter holding its stored bytes as text, under the class
    /// [`DeadLetter::UNREADABLE`], and its
    /// row turns terminal, so the batch can complete and the flow can start. A batch whose
    /// metadata cannot be read keeps its records and loses only its cursor (it is unknown).
    /// Dead letters are stamped `now` (ms since the epoch). Returns their ids. Without this,
    /// one unreadable row would stop the flow at every start.
    pub async fn quarantine_unreadable(&self, flow: &str, now: u64) -> Result<Vec<DeadLetterId>, StoreError> {
        let (metas, rows) = self.unreadable(flow)?;
        if metas.is_empty() && rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut letters = Vec::with_capacity(rows.len());
        for (batch, seq, run_id, raw, error) in rows {
            tracing::error!(flow, batch, seq, error = %error, "stored record cannot be read; moved to the dead letters");
            let key = format!("{UNREADABLE_KEY}{batch}/{seq}");
            let state = RecordState {
                key,
                data: serde_json::Value::String(String::from_utf8_lossy(&raw).into_owned()),
                next_step: 0,
                outputs: Default::default(),
                status: RecordStatus::DeadLettered,
            };
            let letter = DeadLetter {
                flow: flow.to_string(),
                run_id,
                state: state.clone(),
                step: String::new(),
                class: DeadLetter::UNREADABLE.into(),
                error: format!("the stored record cannot be read: {error}"),
                attempts: 0,
                at_ms: now,
            };
            let id = self.allocate(1);
            ids.push(id);
            letters.push((batch, seq, id, encode(&letter)?, encode(&state)?));
        }
        let fresh_meta = encode(&BatchMeta { run_id: 0, next_cursor: None, created_ms: now })?;
        for (batch, error) in &metas {
            tracing::error!(flow, batch, error = %error, "stored batch metadata cannot be read; the batch keeps its records and loses its cursor");
        }
        let flow = flow.to_string();
        self.write(move |txn| {
            let mut batches = txn.open_table(BATCHES)?;
            for (batch, _) in &metas {
                batches.insert((flow.as_str(), *batch), fresh_meta.as_slice())?;
            }
            let mut records = txn.open_table(RECORDS)?;
            let mut dead_letters = txn.open_table(DEAD_LETTERS)?;
            for (batch, seq, id, letter, state) in &letters {
                dead_letters.insert(*id, letter.as_slice())?;
                records.insert((flow.as_str(), *batch, *seq), state.as_slice())?;
            }
            Ok(())
        })
        .await?;
        Ok(ids)
    }

    /// The batches of `flow` whose metadata does not decode, and the records that do not
    /// (batch, seq, the batch's run if known, the stored bytes, the error).
    #[allow(clippy::type_complexity)]
    fn unreadable(
        &self,
        flow: &str,
    ) -> Result<(Vec<(u64, String)>, Vec<(u64, u64, RunId, Vec<u8>, String)>), StoreError> {
        let txn = self.inner.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let records = txn.open_table(RECORDS)?;
        let (mut metas, mut rows) = (Vec::new(), Vec::new());
        for row in batches.range((flow, 0)..=(flow, u64::MAX))? {
            let (k, v) = row?;
            let id = k.value().1;
            let run_id = match decode::<BatchMeta>("batch", v.value()) {
                Ok(meta) => meta.run_id,
                Err(e) => {
                    metas.push((id, e.to_string()));
                    0
                }
            };
            for r in records.range((flow, id, 0)..=(flow, id, u64::MAX))? {
                let (rk, rv) = r?;
                if let Err(e) = decode::<RecordState>("record", rv.value()) {
                    rows.push((id, rk.value().2, run_id, rv.value().to_vec(), e.to_string()));
                }
            }
        }
        Ok((metas, rows))
    }

    // ----- runs -----------------------------------------------------------------------------

    /// Records the start of a run and returns its id.
    pub async fn start_run(&self, info: &RunInfo) -> Result<RunId, StoreError> {
        let id = self.allocate(1);
        let bytes = encode(info)?;
        self.write(move |txn| {
            txn.open_table(RUNS)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    /// Replaces a run's info (counts, status, end).
    pub async fn update_run(&self, id: RunId, info: &RunInfo) -> Result<(), StoreError> {
        let bytes = encode(info)?;
        self.write(move |txn| {
            txn.open_table(RUNS)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Runs, newest first, optionally of one flow, at most `limit`.
    pub fn list_runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<(RunId, RunInfo)>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(RUNS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev() {
            let (k, v) = row?;
            let info: RunInfo = decode("run", v.value())?;
            if flow.is_none_or(|f| f == info.flow) {
                out.push((k.value(), info));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One run with its per-record outcomes, in the order they happened.
    pub fn get_run(&self, id: RunId) -> Result<(RunInfo, Vec<RecordOutcome>), StoreError> {
        let txn = self.inner.db.begin_read()?;
        let runs = txn.open_table(RUNS)?;
        let info: RunInfo = match runs.get(id)? {
            Some(v) => decode("run", v.value())?,
            None => return Err(StoreError::NotFound(format!("run {id}"))),
        };
        let outcomes = txn.open_table(RUN_RECORDS)?;
        let mut out = Vec::new();
        for row in outcomes.range((id, 0)..=(id, u64::MAX))? {
            out.push(decode("record outcome", row?.1.value())?);
        }
        Ok((info, out))
    }

    // ----- dead letters ---------------------------------------------------------------------

    /// Dead letters, oldest first, optionally of one flow.
    pub fn list_dead_letters(
        &self,
        flow: Option<&str>,
    ) -> Result<Vec<(DeadLetterId, DeadLetter)>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let dl: DeadLetter = decode("dead letter", v.value())?;
            if flow.is_none_or(|f| f == dl.flow) {
                out.push((k.value(), dl));
            }
        }
        Ok(out)
    }

    /// One dead letter.
    pub fn get_dead_letter(&self, id: DeadLetterId) -> Result<DeadLetter, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTERS)?;
        match table.get(id)? {
            Some(v) => decode("dead letter", v.value()),
            None => Err(StoreError::NotFound(format!("dead letter {id}"))),
        }
    }

    /// Deletes a dead letter for good.
    pub async fn drop_dead_letter(&self, id: DeadLetterId) -> Result<(), StoreError> {
        self.write(move |txn| {
            let removed = txn.open_table(DEAD_LETTERS)?.remove(id)?.is_some();
            if removed { Ok(()) } else { Err(StoreError::NotFound(format!("dead letter {id}"))) }
        })
        .await
    }

    /// Moves a dead letter back into its flow as a new one-record batch that resumes at the
    /// step that failed; the next run of the flow processes it. Returns the flow and batch id.
    pub async fn replay_dead_letter(
        &self,
        id: DeadLetterId,
        now_ms: u64,
    ) -> Result<(String, u64), StoreError> {
        let dl = self.get_dead_letter(id)?;
        if dl.class == DeadLetter::UNREADABLE {
            // Its data is the unreadable bytes as text: run through the flow's steps, a map
            // would make nulls of every field and an action could book them.
            return Err(StoreError::Conflict(format!(
                "dead letter {id} holds a stored record that could not be read, kept as text for \
                 inspection; it cannot run as it is: send the record again from its source, then \
                 drop this dead letter"
            )));
        }
        let batch = self.allocate(1);
        let mut state = dl.state.clone();
        state.status = RecordStatus::Pending;
        let meta = encode(&BatchMeta { run_id: dl.run_id, next_cursor: None, created_ms: now_ms })?;
        let rec = encode(&state)?;
        let flow = dl.flow.clone();
        self.write(move |txn| {
            if txn.open_table(DEAD_LETTERS)?.remove(id)?.is_none() {
                return Err(StoreError::NotFound(format!("dead letter {id}")));
            }
            txn.open_table(BATCHES)?.insert((flow.as_str(), batch), meta.as_slice())?;
            txn.open_table(RECORDS)?.insert((flow.as_str(), batch, 0), rec.as_slice())?;
            Ok(())
        })
        .await?;
        Ok((dl.flow, batch))
    }

    // ----- connector kv ---------------------------------------------------------------------

    /// A connector kv value.
    pub fn kv_get(&self, scope: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(KV)?;
        Ok(table.get((scope, key))?.map(|v| v.value().to_vec()))
    }

    /// Sets a connector kv value.
    pub async fn kv_set(&self, scope: &str, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.write(move |txn| {
            txn.open_table(KV)?.insert((scope.as_str(), key.as_str()), value.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Deletes a connector kv value.
    pub async fn kv_delete(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.write(move |txn| {
            txn.open_table(KV)?.remove((scope.as_str(), key.as_str()))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{RunCounts, RunStatus};
    use serde_json::json;

    fn rec(key: &str) -> RecordState {
        RecordState {
            key: key.into(),
            data: json!({"k": key}),
            next_step: 0,
            outputs: Default::default(),
            status: RecordStatus::Pending,
        }
    }

    fn run_info() -> RunInfo {
        RunInfo {
            flow: "f".into(),
            trigger: "poll".into(),
            started_ms: 1,
            ended_ms: None,
            status: RunStatus::Running,
            counts: RunCounts::default(),
            error: None,
        }
    }

    #[tokio::test]
    async fn unreadable_rows_become_dead_letters_and_their_batches_load() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let good = encode(&rec("a"))?;
        let garbage = b"\xff\xfe{\"key\": broken".to_vec();
        let meta = encode(&BatchMeta { run_id: 7, next_cursor: Some("c1".into()), created_ms: 1 })?;
        let (b1, b2) = (store.allocate(1), store.allocate(1));
        let rows = vec![good.clone(), garbage.clone()];
        store
            .write(move |txn| {
                insert_batch(txn, "f", b1, &meta, &rows)?;
                insert_batch(txn, "f", b2, b"not a batch", &[good])
            })
            .await?;
        assert!(store.pending_batches("f").is_err(), "one unreadable row fails the whole load");
        let ids = store.quarantine_unreadable("f", 1).await?;
        assert_eq!(ids.len(), 1);
        let pending = store.pending_batches("f")?;
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].meta.next_cursor.as_deref(), Some("c1"), "a readable batch keeps its cursor");
        assert_eq!(pending[0].records[0].1, rec("a"));
        assert_eq!(pending[0].records[1].1.status, RecordStatus::DeadLettered);
        assert_eq!(
            pending[1].meta.next_cursor, None,
            "unreadable metadata: the records stay, the cursor is gone"
        );
        assert_eq!(pending[1].records[0].1, rec("a"));
        let dl = store.get_dead_letter(ids[0])?;
        assert_eq!((dl.flow.as_str(), dl.run_id, dl.class.as_str()), ("f", 7, DeadLetter::UNREADABLE));
        assert!(dl.error.contains("cannot be read"), "{}", dl.error);
        assert_eq!(dl.state.key, format!("unreadable/{b1}/1"));
        assert!(
            dl.state.data.as_str().is_some_and(|t| t.contains("broken")),
            "the stored bytes are kept as text"
        );
        assert!(store.quarantine_unreadable("f", 1).await?.is_empty(), "nothing left to move");
        let refused = store.replay_dead_letter(ids[0], 2).await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("cannot run as it is")),
            "replaying an unreadable record must be refused: {refused:?}"
        );
        assert!(store.get_dead_letter(ids[0]).is_ok(), "a refused replay keeps the dead letter");
        assert!(store.allocate(1) > ids[0]);
        Ok(())
    }

    #[tokio::test]
    async fn resume_batches_moves_unreadable_rows_only_when_a_load_fails() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let meta = BatchMeta { run_id: 1, next_cursor: None, created_ms: 1 };
        store.enqueue_batch("f", meta.clone(), &[rec("a")]).await?;
        assert_eq!(store.resume_batches("f", 1).await?, store.pending_batches("f")?);
        assert!(store.list_dead_letters(Some("f"))?.is_empty());
        let b = store.allocate(1);
        let meta = encode(&meta)?;
        store.write(move |txn| insert_batch(txn, "f", b, &meta, &[b"\xff not json".to_vec()])).await?;
        let pending = store.resume_batches("f", 1).await?;
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[1].records[0].1.status, RecordStatus::DeadLettered);
        assert_eq!(store.list_dead_letters(Some("f"))?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn cursor_commits_only_with_a_completed_batch() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let meta = BatchMeta { run_id: 1, next_cursor: Some("c1".into()), created_ms: 0 };
        let batch = store.enqueue_batch("f", meta, &[rec("a"), rec("b")]).await?;
        assert_eq!(store.cursor("f")?, None);
        assert_eq!(store.pending_batches("f")?.len(), 1);
        let mut done = rec("a");
        done.status = RecordStatus::Done;
        store.save_record("f", batch, 0, &done, None, None).await?;
        assert_eq!(store.cursor("f")?, None, "a terminal record alone commits nothing");
        let outcome = RecordOutcome {
            key: "b".into(),
            status: RecordStatus::Filtered,
            step: Some("only-pm".into()),
            error: None,
            dead_letter: None,
            at_ms: 3,
        };
        store
            .complete_batches(
                "f",
                vec![Completion { batch, records: 2, outcomes: vec![(1, outcome.clone())] }],
            )
            .await?;
        assert_eq!(store.cursor("f")?.as_deref(), Some("c1"));
        assert!(store.pending_batches("f")?.is_empty());
        assert_eq!(store.get_run(1).map(|(_, o)| o).unwrap_or_default(), vec![]);
        let run = store.start_run(&run_info()).await?;
        let b2 = store
            .enqueue_batch(
                "f",
                BatchMeta { run_id: run, next_cursor: Some("c2".into()), created_ms: 0 },
                &[rec("c")],
            )
            .await?;
        store
            .complete_batches(
                "f",
                vec![Completion { batch: b2, records: 0, outcomes: vec![(run, outcome.clone())] }],
            )
            .await?;
        assert_eq!(store.get_run(run)?.1, vec![outcome], "the outcome is in the run history");
        assert_eq!(store.cursor("f")?.as_deref(), Some("c2"));
        assert!(store.complete_batch("f", b2).await.is_err(), "a completed batch is gone");
        Ok(())
    }

    #[tokio::test]
    async fn state_survives_reopen() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let batch = {
            let store = Store::open(dir.path())?;
            let meta = BatchMeta { run_id: 7, next_cursor: None, created_ms: 0 };
            let batch = store.enqueue_batch("f", meta, &[rec("a")]).await?;
            let mut s = rec("a");
            s.next_step = 2;
            s.outputs.insert("book".into(), json!({"id": 1}));
            store.save_record("f", batch, 0, &s, None, None).await?;
            store.kv_set("scope", "token", b"t".to_vec()).await?;
            batch
        };
        let store = Store::open(dir.path())?;
        let pending = store.pending_batches("f")?;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, batch);
        assert_eq!(pending[0].records[0].1.next_step, 2);
        assert_eq!(pending[0].records[0].1.outputs["book"], json!({"id": 1}));
        assert_eq!(store.kv_get("scope", "token")?, Some(b"t".to_vec()));
        // Ids keep growing across reopen.
        let run = store.start_run(&run_info()).await?;
        assert!(run > batch);
        Ok(())
    }

    #[tokio::test]
    async fn ids_are_not_handed_out_again_after_reopen() -> anyhow::Result<()> {
        // The writer persists the allocator once per commit, not each write: concurrent
        // writes share commits, and every id they used must stay used.
        let dir = tempfile::tempdir()?;
        let used = {
            let store = Store::open(dir.path())?;
            let meta = || BatchMeta { run_id: 1, next_cursor: None, created_ms: 0 };
            let mut writes = Vec::new();
            for i in 0..20 {
                let store = store.clone();
                let batch = meta();
                writes.push(tokio::spawn(async move {
                    store.enqueue_batch("f", batch, &[rec(&format!("r{i}"))]).await
                }));
            }
            let mut used = vec![store.start_run(&run_info()).await?];
            for w in writes {
                used.push(w.await??);
            }
            used
        };
        let store = Store::open(dir.path())?;
        let next = store.start_run(&run_info()).await?;
        let highest = used.iter().copied().max().unwrap_or(0);
        assert!(next > highest, "id {next} handed out again (ids used before: up to {highest})");
        Ok(())
    }

    #[tokio::test]
    async fn dead_letter_and_replay() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let run = store.start_run(&run_info()).await?;
        let batch = store
            .enqueue_batch("f", BatchMeta { run_id: run, next_cursor: None, created_ms: 0 }, &[rec("a")])
            .await?;
        let mut failed = rec("a");
        failed.next_step = 1;
        let dl = DeadLetter {
            flow: "f".into(),
            run_id: run,
            state: failed.clone(),
            step: "book".into(),
            class: "invalid-input".into(),
            error: "bad".into(),
            attempts: 1,
            at_ms: 5,
        };
        failed.status = RecordStatus::DeadLettered;
        let outcome = RecordOutcome {
            key: "a".into(),
            status: RecordStatus::DeadLettered,
            step: Some("book".into()),
            error: Some("bad".into()),
            dead_letter: None,
            at_ms: 5,
        };
        let id = store.save_record("f", batch, 0, &failed, Some((run, outcome)), Some(dl)).await?.unwrap();
        store.complete_batch("f", batch).await?;
        assert_eq!(store.list_dead_letters(Some("f"))?.len(), 1);
        let (_, outcomes) = store.get_run(run)?;
        assert_eq!(outcomes[0].dead_letter, Some(id));

        let (flow, replay_batch) = store.replay_dead_letter(id, 9).await?;
        assert_eq!(flow, "f");
        assert!(store.list_dead_letters(None)?.is_empty());
        let pending = store.pending_batches("f")?;
        assert_eq!(pending[0].id, replay_batch);
        assert_eq!(pending[0].records[0].1.status, RecordStatus::Pending);
        assert_eq!(pending[0].records[0].1.next_step, 1, "replay resumes at the failed step");
        assert!(store.drop_dead_letter(id).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_writes_are_grouped_and_all_durable() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..500 {
            let store = store.clone();
            tasks.spawn(async move { store.kv_set("s", &format!("k{i}"), vec![1]).await });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        drop(store);
        let store = Store::open(dir.path())?;
        for i in 0..500 {
            assert!(store.kv_get("s", &format!("k{i}"))?.is_some());
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_second_process_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let _first = Store::open(dir.path())?;
        // redb locks the file per process; inside one process a second open also fails.
        assert!(Store::open(dir.path()).is_err());
        Ok(())
    }
}
