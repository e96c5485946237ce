//! The `[search]` table: the node's message index and the limits of `GET /search`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use voiceflow_wire::v1::search::QueryLimits;

/// Message search: each node indexes the rooms it owns (tantivy, under its data directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Index messages and serve `GET /api/v1/search` (when false the endpoint answers 503
    /// UNAVAILABLE and nothing is indexed).
    pub enabled: bool,
    /// Where the index lives; relative paths are under `data_dir` (default `search`).
    pub dir: PathBuf,
    /// The index writer's memory budget, bytes (at least 15 MB per writer thread).
    pub heap_bytes: usize,
    /// Threads the index writer uses (1–8).
    pub writer_threads: usize,
    /// How often indexed messages are committed and become searchable, ms.
    pub commit_interval_ms: u64,
    /// Committed batches queued for the indexer; when full a batch is dropped (never
    /// waited for) and read back from the room's log later.
    pub queue_batches: usize,
    /// Log entries read per store request while catching a room up.
    pub catch_up_page: u32,
    /// Longest query `q`, characters.
    pub max_query_chars: usize,
    /// Most words, phrases and operators in one query.
    pub max_query_terms: usize,
    /// Largest `limit` a search may ask for (the default is 25).
    pub max_limit: u32,
    /// Most rooms one search covers (the caller's readable rooms beyond it are left out and
    /// the answer says `truncatedRooms: true`).
    pub max_rooms: usize,
    /// How long a search waits for another node's part of the answer, ms; rooms of a node
    /// that does not answer in time are listed in `unavailableRooms` (`partial: true`).
    pub peer_timeout_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            enabled: true,
            dir: PathBuf::from("search"),
            heap_bytes: 50_000_000,
            writer_threads: 1,
            commit_interval_ms: 500,
            queue_batches: 4096,
            catch_up_page: 500,
            max_query_chars: 512,
            max_query_terms: 32,
            max_limit: 100,
            max_rooms: 5000,
            peer_timeout_ms: 2000,
        }
    }
}

impl SearchConfig {
    /// The index directory of a node whose data directory is `data_dir`.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dir)
    }

    /// What the index itself is given.
    pub fn index_config(&self) -> voiceflow_search::SearchConfig {
        voiceflow_search::SearchConfig {
            heap_bytes: self.heap_bytes,
            writer_threads: self.writer_threads,
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            queue_batches: self.queue_batches,
            catch_up_page: self.catch_up_page,
        }
    }

    /// Limits of the query language.
    pub fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            max_chars: self.max_query_chars,
            max_terms: self.max_query_terms,
        }
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=8).contains(&self.writer_threads) {
            return Err("search.writer_threads must be 1-8".into());
        }
        if self.heap_bytes < 15_000_000 * self.writer_threads {
            return Err("search.heap_bytes must be at least 15000000 per writer thread".into());
        }
        if self.commit_interval_ms == 0 || self.queue_batches == 0 || self.catch_up_page == 0 {
            return Err(
                "search.commit_interval_ms, queue_batches and catch_up_page must be positive"
                    .into(),
            );
        }
        if self.max_query_chars == 0 || self.max_query_terms == 0 || self.max_limit == 0 {
            return Err("search query limits must be positive".into());
        }
        if self.max_rooms == 0 || self.peer_timeout_ms == 0 {
            return Err("search.max_rooms and peer_timeout_ms must be positive".into());
        }
        Ok(())
    }
}
