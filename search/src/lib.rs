//! Full-text message search: each node's [tantivy](https://docs.rs/tantivy) index of the
//! rooms it owns.
//!
//! Rooms hand each committed batch to [`SearchIndex::committed`] (a `try_send` into a bounded
//! channel: the room's hot path never waits for the index). One writer thread applies the
//! changes (an edit replaces the message's document, a deletion removes it) and commits every
//! `commit_interval`; each commit stores, as its payload, the last indexed log seq of every
//! room, so the index and its progress are durable together. A room that starts on a node
//! calls [`SearchIndex::catch_up`] with its log head: whatever the index lacks (the room
//! moved here, the node restarted, a batch was dropped because the channel was full) is read
//! from the store's room log and indexed, and nothing else is re-indexed.

mod index;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use parking_lot::Mutex;
use voiceflow_schema::{MessageRecord, Store};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::search::{IndexQuery, SearchHit};

pub use index::Fields;

/// Sizes and timings of a node's index (`[search]` in the node's config).
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// The writer's memory budget in bytes (tantivy needs at least 15 MB per thread).
    pub heap_bytes: usize,
    /// Indexing threads of the writer.
    pub writer_threads: usize,
    /// How often indexed changes are committed (and become searchable).
    pub commit_interval: Duration,
    /// Committed batches waiting for the writer; a full queue drops the batch (its room is
    /// caught up from the store when the next batch reveals the gap, or on its next start).
    pub queue_batches: usize,
    /// Log entries read from the store per page while catching a room up.
    pub catch_up_page: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            heap_bytes: 50_000_000,
            writer_threads: 1,
            commit_interval: Duration::from_millis(500),
            queue_batches: 4096,
            catch_up_page: 500,
        }
    }
}

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed (a corrupt or unreadable index, a full disk).
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be opened.
    #[error("search index directory: {0}")]
    Dir(String),
    /// The writer thread is gone.
    #[error("the search index is shutting down")]
    Closed,
}

/// A change of a committed batch: the message as its log entry `seq` left it.
#[derive(Debug, Clone)]
pub struct IndexedChange {
    /// The log seq.
    pub seq: u64,
    /// The message after the change (a tombstone after a deletion).
    pub message: MessageRecord,
}

pub(crate) enum Op {
    Changes {
        room: Snowflake,
        changes: Vec<IndexedChange>,
    },
    CatchUp {
        room: Snowflake,
        head: u64,
        /// The placement epoch when it was asked for (recorded in `checked` once done).
        epoch: u64,
    },
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Shared between the handle and the writer thread.
pub(crate) struct Shared {
    pub(crate) fields: Fields,
    pub(crate) reader: tantivy::IndexReader,
    pub(crate) index: tantivy::Index,
    /// Messages deleted but maybe still in the last committed index: filtered out of hits so
    /// a deleted message is never found, even before the next commit.
    pub(crate) deleted: Mutex<HashSet<u64>>,
    /// The last seq the writer indexed per room (committed or not).
    pub(crate) seqs: Mutex<HashMap<u64, u64>>,
    /// Bumped whenever the cluster's placement changes: a room this node indexed may have
    /// been run (and written) elsewhere since, even if it is placed here again now.
    pub(crate) placement: AtomicU64,
    /// Per room, the placement epoch at which its log was last read to its end here (or its
    /// actor started here, after which its batches keep the index current). A search reads
    /// a room's log again before it trusts its index in a later epoch.
    pub(crate) checked: Mutex<HashMap<u64, u64>>,
}

/// A node's search index; cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    shared: Arc<Shared>,
    tx: SyncSender<Op>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir` and starts its writer thread, which reads room
    /// logs from `store` through `runtime` when it catches rooms up.
    pub fn open(
        dir: &Path,
        config: &SearchConfig,
        store: Arc<dyn Store>,
        runtime: tokio::runtime::Handle,
    ) -> Result<SearchIndex, SearchError> {
        let (index, fields, seqs) = index::open(dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(
            config.writer_threads.max(1),
            config
                .heap_bytes
                .max(15_000_000 * config.writer_threads.max(1)),
        )?;
        let shared = Arc::new(Shared {
            fields,
            reader,
            index,
            deleted: Mutex::new(HashSet::new()),
            seqs: Mutex::new(seqs),
            placement: AtomicU64::new(0),
            checked: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_batches.max(1));
        writer::spawn(writer::Writer::new(
            shared.clone(),
            writer,
            store,
            runtime,
            config.clone(),
            rx,
        ))
        .map_err(|e| SearchError::Dir(e.to_string()))?;
        Ok(SearchIndex { shared, tx })
    }

    /// A room's committed batch (seqs ascending). Never blocks: a full queue drops it.
    pub fn committed(&self, room: Snowflake, changes: Vec<IndexedChange>) {
        if changes.is_empty() {
            return;
        }
        {
            let mut deleted = self.shared.deleted.lock();
            for c in &changes {
                if c.message.deleted_at.is_some() {
                    deleted.insert(c.message.id.0);
                }
            }
        }
        self.send(Op::Changes { room, changes });
    }

    /// A room started here with its log at `head`: index whatever of it the index lacks.
    pub fn catch_up(&self, room: Snowflake, head: u64) {
        let epoch = self.shared.placement.load(Ordering::Acquire);
        self.send(Op::CatchUp { room, head, epoch });
    }

    /// The cluster's placement changed: rooms may have moved away and back (A→B→A) while no
    /// actor of theirs ran here, so before a search trusts this index for a room again it
    /// reads the room's log from its last indexed seq (one log read per room, once).
    pub fn placement_changed(&self) {
        self.shared.placement.fetch_add(1, Ordering::AcqRel);
    }

    /// Every room the index has entries of is read from its last indexed seq to its log's
    /// end (after a restart: what a crash kept from the index). One log read per room, on
    /// the writer thread.
    pub fn catch_up_known(&self) {
        let rooms: Vec<u64> = self.shared.seqs.lock().keys().copied().collect();
        for room in rooms {
            self.catch_up(Snowflake(room), u64::MAX);
        }
    }

    fn send(&self, op: Op) {
        match self.tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("voiceflow_search_dropped_total").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The last log seq indexed for `room` (0: none).
    pub fn last_seq(&self, room: Snowflake) -> u64 {
        self.shared.seqs.lock().get(&room.0).copied().unwrap_or(0)
    }

    /// Commits what is queued now and returns once it is searchable (tests, benchmarks,
    /// shutdown).
    pub async fn flush(&self) -> Result<(), SearchError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx_op = self.tx.clone();
        // The queue may be full: wait for room off the async threads.
        tokio::task::spawn_blocking(move || tx_op.send(Op::Flush(tx)))
            .await
            .map_err(|_| SearchError::Closed)?
            .map_err(|_| SearchError::Closed)?;
        rx.await.map_err(|_| SearchError::Closed)
    }

    /// Messages of `rooms` matching `query`, in its order, at most `query.limit`. Rooms whose
    /// log was not read to its end since the placement last changed (placed on this node by a
    /// move, maybe back from another node, and not started here since) are read from their
    /// logs first.
    pub async fn search(
        &self,
        rooms: Vec<Snowflake>,
        query: IndexQuery,
    ) -> Result<Vec<SearchHit>, SearchError> {
        let unknown: Vec<Snowflake> = {
            let epoch = self.shared.placement.load(Ordering::Acquire);
            let checked = self.shared.checked.lock();
            rooms
                .iter()
                .filter(|r| checked.get(&r.0) != Some(&epoch))
                .copied()
                .collect()
        };
        if !unknown.is_empty() {
            for room in unknown {
                self.catch_up(room, u64::MAX);
            }
            self.flush().await?;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || index::search(&shared, &rooms, &query))
            .await
            .map_err(|_| SearchError::Closed)?
    }

    /// Bytes the index takes on disk (benchmarks).
    pub fn disk_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
