//! The embedded store: an on-disk fjall database with group commit, the single-node default.
//!
//! - Layout (`tables`): one keyspace per access path, mirroring the CQL tables in
//!   `schema/cql/001_initial.cql`.
//! - Writes (`writer`, `ops`): every mutation goes to one writer thread, which applies
//!   whatever is queued as one atomic batch and fsyncs it once (`PersistMode::SyncAll`) before
//!   answering; a mutating future resolves only once its write is durable, and the runtime
//!   thread never waits on the fsync. Uniqueness checks and the refresh-token compare-and-set
//!   run on that thread, so they are race-free.
//! - Reads (`read`): directly on the caller's task.
//! - The [`Store`](crate::store::Store) trait (`store_impl`): each method either submits an op
//!   to the writer or reads.
//!
//! Dropping the store closes the writer's queue; the thread finishes what was queued and
//! exits, and the drop waits for it, so the directory can be reopened right after.

mod community;
mod member_names;
mod notify;
mod ops;
mod push;
mod read;
mod store_impl;
mod tables;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use fjall::Database;
use tokio::sync::oneshot;

use self::read::Reader;
use self::tables::{Tables, io};
use self::writer::{Counters, Job, Op, Reply};
use crate::store::{StoreError, StoreResult};

/// Group-commit counters since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Group commits (one fsync each, at most).
    pub groups: u64,
    /// Mutations applied in those groups.
    pub ops: u64,
}

/// The embedded [`Store`](crate::store::Store): fjall on local disk, durable group commit.
/// See the module docs.
pub struct EmbeddedStore {
    reader: Reader,
    /// `None` only while dropping.
    tx: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("stats", &self.commit_stats())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating it and the directory if needed) the store at `path` and starts its
    /// writer thread.
    ///
    /// Synchronous: recovery reads the journal and can take a fraction of a second, so call it
    /// at startup or from `tokio::task::spawn_blocking`. Fails with
    /// [`StoreError::Unavailable`] if the directory cannot be created, the database is locked
    /// by another process, or recovery fails; with [`StoreError::Corrupt`] if it was written
    /// by a newer layout version.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", path.display())))?;
        let db = Database::builder(path).open().map_err(io)?;
        let tables = Tables::open(&db)?;
        tables::check_version(&db, &tables)?;
        member_names::fill_once(&db, &tables)?;

        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = {
            let (db, tables, counters) = (db.clone(), tables.clone(), Arc::clone(&counters));
            std::thread::Builder::new()
                .name("voiceflow-store-writer".into())
                .spawn(move || writer::run(db, tables, rx, counters))
                .map_err(|e| StoreError::Unavailable(format!("spawn writer thread: {e}")))?
        };
        Ok(EmbeddedStore {
            reader: Reader { db, tables },
            tx: Some(tx),
            writer: Some(writer),
            counters,
        })
    }

    /// Group-commit counters since open (how many fsyncs the writes shared).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            ops: self.counters.ops.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` for the writer and waits (without blocking the thread) until it is durable.
    async fn submit(&self, op: Op) -> StoreResult<Reply> {
        let stopped = || StoreError::Unavailable("store writer stopped".into());
        let (reply, done) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { op, reply })
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// Like [`EmbeddedStore::submit`] for ops that answer nothing.
    async fn write(&self, op: Op) -> StoreResult<()> {
        self.submit(op).await.map(|_| ())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; waiting for it
        // releases its database handle before ours, so the directory can be reopened at once.
        drop(self.tx.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}
