//! The writer thread: applies committed changes, catches rooms up from the store's room log,
//! and commits every `commit_interval` with the rooms' progress as the commit's payload.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use tantivy::IndexWriter;
use voiceflow_schema::{MessageRecord, Store};
use voiceflow_wire::Snowflake;

use crate::index::{document, encode_seqs, id_term, indexable};
use crate::{IndexedChange, Op, SearchConfig, Shared};

pub(crate) struct Writer {
    shared: Arc<Shared>,
    writer: IndexWriter,
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Handle,
    config: SearchConfig,
    rx: Receiver<Op>,
    /// Changes applied since the last commit.
    dirty: bool,
    /// Deletions applied since the last commit (forgotten by the filter once committed).
    deleted: Vec<u64>,
}

pub(crate) fn spawn(writer: Writer) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("search-writer".into())
        .spawn(move || writer.run())
        .map(|_| ())
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        writer: IndexWriter,
        store: Arc<dyn Store>,
        runtime: tokio::runtime::Handle,
        config: SearchConfig,
        rx: Receiver<Op>,
    ) -> Writer {
        Writer {
            shared,
            writer,
            store,
            runtime,
            config,
            rx,
            dirty: false,
            deleted: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut next_commit = Instant::now() + self.config.commit_interval;
        loop {
            let wait = next_commit.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Op::Changes { room, changes }) => self.changes(room, changes),
                Ok(Op::CatchUp { room, head, epoch }) => {
                    if self.catch_up(room, head) {
                        self.shared.checked.lock().insert(room.0, epoch);
                    }
                }
                Ok(Op::Flush(done)) => {
                    self.commit();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.commit();
                    next_commit = Instant::now() + self.config.commit_interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
            }
        }
    }

    fn last(&self, room: Snowflake) -> u64 {
        self.shared.seqs.lock().get(&room.0).copied().unwrap_or(0)
    }

    /// A committed batch: if entries before it are missing (a dropped batch, a room new
    /// here), read them from the log first; entries already indexed are skipped.
    fn changes(&mut self, room: Snowflake, changes: Vec<IndexedChange>) {
        let Some(first) = changes.first().map(|c| c.seq) else {
            return;
        };
        if first > self.last(room) + 1 {
            // Whether it got there is checked just below.
            let _ = self.catch_up(room, first - 1);
            if self.last(room) + 1 < first {
                // The log could not be read: leave the room's progress where it is, so its
                // next start (or the next batch) tries again.
                return;
            }
        }
        for change in changes {
            if change.seq > self.last(room) {
                self.apply(&change.message);
                self.shared.seqs.lock().insert(room.0, change.seq);
            }
        }
    }

    /// Index the room's log from the index's last seq up to `head`; whether it got there
    /// (or to the log's end).
    fn catch_up(&mut self, room: Snowflake, head: u64) -> bool {
        let mut last = self.last(room);
        // Known from now on, even with an empty log (a search does not ask again).
        self.shared.seqs.lock().entry(room.0).or_insert(0);
        while last < head {
            let page = self.config.catch_up_page.max(1);
            let read = self
                .runtime
                .block_on(self.store.events_after(room, last, page));
            let events = match read {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(%room, error = %e, "search: cannot read the room log");
                    return false;
                }
            };
            let Some(end) = events.last().map(|e| e.seq) else {
                break;
            };
            for event in &events {
                if let Some(message) = &event.message {
                    self.apply(message);
                }
            }
            metrics::counter!("voiceflow_search_caught_up_total").increment(events.len() as u64);
            last = end.max(last + 1);
            self.shared.seqs.lock().insert(room.0, last);
        }
        true
    }

    /// A message as a change left it: its document replaced, or removed if it is deleted.
    fn apply(&mut self, message: &MessageRecord) {
        let f = &self.shared.fields;
        self.writer.delete_term(id_term(f, message.id));
        if indexable(message) {
            if let Err(e) = self.writer.add_document(document(f, message)) {
                tracing::warn!(error = %e, "search: cannot index a message");
            }
        } else {
            self.deleted.push(message.id.0);
        }
        self.dirty = true;
    }

    fn commit(&mut self) {
        if !self.dirty {
            return;
        }
        let payload = encode_seqs(&self.shared.seqs.lock());
        let committed = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        if let Err(e) = committed.and_then(|_| self.shared.reader.reload()) {
            tracing::warn!(error = %e, "search: commit failed");
            return;
        }
        self.dirty = false;
        let mut filter = self.shared.deleted.lock();
        for id in self.deleted.drain(..) {
            filter.remove(&id);
        }
    }
}
