//! The group-committing writer: one OS thread owns every write transaction.
//!
//! A writer blocks for the first queued write, takes every other write already queued (up to
//! `MAX_GROUP`), applies them all in one transaction and commits it with
//! `Durability::Immediate` (one fsync), then acknowledges each. Writes that arrive while a
//! commit syncs form the next group, so throughput grows with concurrency instead of being
//! capped at one fsync per write.
//!
//! Each commit also persists the id allocator's value (`bump_next_id`), once for the group
//! rather than once per write that used an id.
//!
//! Metrics: `qiao_store_commits_total`, `qiao_store_commit_writes` (writes per commit,
//! histogram) and `qiao_store_commit_seconds` (apply + commit + fsync, histogram).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use crate::StoreError;

/// One write: applied inside the group's transaction.
pub(crate) type Op = Box<dyn FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send>;

struct Job {
    op: Op,
    done: oneshot::Sender<Result<(), StoreError>>,
}

const MAX_GROUP: usize = 4096;
/// How long a commit waits for more writes when others are already queued behind it.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(1000);

pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread. `next_id` is the store's id allocator: every id a write uses
    /// was taken from it before the write was queued.
    pub fn start(db: Arc<Database>, next_id: Arc<AtomicU64>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("qiao-store-writer".into())
            .spawn(move || run(&db, &rx, &next_id))?;
        Ok(Writer { tx: Some(tx), thread: Some(thread) })
    }

    /// Queues `op` and waits until it is durable.
    pub async fn write(&self, op: Op) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(Job { op, done }).map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Writer {
    /// Lets the thread finish the queued writes and close the database file, so the state
    /// can be reopened as soon as the last handle is gone.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, rx: &mpsc::Receiver<Job>, next_id: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        take_queued(rx, &mut group);
        if group.len() > 1 {
            // Writers are queueing up: linger briefly so this commit carries more of them.
            // Each commit costs a fixed ~0.5 ms of CPU (dirty B-tree paths, checksums, page
            // writes, fsync), so under load fewer, larger commits free CPU for the writers.
            // A plain sleep, not `recv_timeout`: a thread parked in `recv` is woken by every
            // send (a futex wake and a context switch each, ~14 per commit at 5k writes/s);
            // a sleeping one is not, and takes what queued up in one go when it wakes.
            std::thread::sleep(COMMIT_DELAY);
            take_queued(rx, &mut group);
        }
        let (ops, acks): (Vec<Op>, Vec<_>) = group.into_iter().map(|j| (j.op, j.done)).unzip();
        let started = std::time::Instant::now();
        let result = (|| -> Result<(), StoreError> {
            let txn = db.begin_write()?;
            for op in ops {
                op(&txn)?;
            }
            // Read after the group was taken from the channel, so it covers every id its
            // writes use (each was allocated before its write was sent).
            crate::store::bump_next_id(&txn, next_id.load(Ordering::Acquire))?;
            txn.commit()?;
            Ok(())
        })();
        // Looked up per commit, not cached: the store opens before a server installs its
        // recorder, and a handle taken earlier would record nowhere.
        metrics::counter!("qiao_store_commits_total").increment(1);
        metrics::histogram!("qiao_store_commit_writes").record(acks.len() as f64);
        metrics::histogram!("qiao_store_commit_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = acks.len(), "state store commit failed; the writes of this group are not stored");
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// Moves every write already queued into `group`, up to `MAX_GROUP`.
fn take_queued(rx: &mpsc::Receiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
}
