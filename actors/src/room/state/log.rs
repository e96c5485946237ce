//! The room log pipeline. Every change to the room's history (a message posted, edited,
//! deleted, reacted to) is queued as a [`Change`]; when storage is free the queued changes
//! get the next seqs (1, 2, 3… without gaps), are encoded once, and are written as one batch
//! (one write in flight per room, so batches commit in order). Only once the batch is durable
//! is it broadcast and acknowledged. A failed write fails everything queued and marks the log
//! for a resync: before the next write the room re-reads the log's end from storage, and
//! broadcasts whatever of the failed batch did land, so live members never miss a seq.
//!
//! Storage-level fencing: the room took its ownership epoch from storage when it started
//! (`Store::claim_room`) and writes it into every entry. A write refused as `Fenced` means
//! another node owns the room now: everything queued fails with "retry" (clients resend with
//! their nonces to the new owner) and the room retires without writing again. A resync after
//! a failed write first renews the epoch, so the failed write's entries, if they land later,
//! are an older owner's and never replace or follow what the room writes next.

use std::collections::HashMap;

use voiceflow_schema::{LogHead, MessageRecord, RoomEventRecord, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::frame::Frame;
use voiceflow_wire::v1::server::events;

use super::change::frame_of;
pub(crate) use super::change::{Change, ChangeKind, ChangeReply, reaction_event};
use super::changes::make_tombstone;
use super::fanout::view_of;
use super::{Author, RoomState};
use crate::error::ActorError;
use crate::remote::Recipient;
use crate::room::SessionLink;

/// Most changes written in one storage batch.
pub(super) const MAX_BATCH: usize = 256;

/// Where the log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// In step with storage.
    Clean,
    /// A write failed: re-read the log's end before writing again.
    Needed,
    /// Re-reading it now.
    Running,
    /// A newer owner took the room over: nothing is written again.
    Fenced,
}

/// What a resync found in storage.
#[derive(Debug)]
pub struct ResyncData {
    /// The room's renewed ownership epoch.
    pub owner_epoch: u64,
    /// The log's end.
    pub head: Option<LogHead>,
    /// Entries after the room's head (landed although their write failed).
    pub events: Vec<RoomEventRecord>,
}

/// The room's log and the changes on their way into it.
pub(crate) struct Log {
    epoch: u64,
    owner_epoch: u64,
    head: u64,
    pending: Vec<Change>,
    in_flight: Option<Vec<Change>>,
    resync: Resync,
    /// Resyncs that failed in a row (storage unreachable): the next one waits
    /// [`resync_backoff`] first, so an outage is not a busy loop of failing reads that starves
    /// the node (a chaos run saw 27k failed renewals a second from one node).
    resync_failures: u32,
}

/// How long a resync waits after `failures` failed ones in a row: none after a success, then
/// 50 ms, doubling to at most 2 s.
pub fn resync_backoff(failures: u32) -> std::time::Duration {
    match failures {
        0 => std::time::Duration::ZERO,
        n => std::time::Duration::from_millis(50 << (n - 1).min(6))
            .min(std::time::Duration::from_secs(2)),
    }
}

impl Log {
    /// The log as storage has it, written by the owner of `owner_epoch`; a log never written
    /// starts a new epoch.
    pub(crate) fn new(
        head: Option<LogHead>,
        owner_epoch: u64,
        new_epoch: impl FnOnce() -> u64,
    ) -> Log {
        let (epoch, head) = match head {
            Some(h) => (h.epoch, h.seq),
            None => (new_epoch(), 0),
        };
        Log {
            epoch,
            owner_epoch,
            head,
            pending: Vec::new(),
            in_flight: None,
            resync: Resync::Clean,
            resync_failures: 0,
        }
    }

    /// Newest seq stored and broadcast.
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// The log's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Changes queued or in flight, newest last.
    pub(crate) fn queued(&self) -> impl DoubleEndedIterator<Item = &Change> {
        self.in_flight.iter().flatten().chain(self.pending.iter())
    }

    /// The queued change at `index` of [`Log::queued`].
    pub(crate) fn queued_mut(&mut self, index: usize) -> Option<&mut Change> {
        let in_flight = self.in_flight.as_ref().map_or(0, Vec::len);
        if index < in_flight {
            self.in_flight.as_mut().and_then(|b| b.get_mut(index))
        } else {
            self.pending.get_mut(index - in_flight)
        }
    }
}

impl RoomState {
    /// Queues a change for the log.
    pub(crate) fn queue_change(&mut self, change: Change) {
        self.log.pending.push(change);
    }

    /// Queues a system message about `subject` (joins, leaves).
    pub(super) fn queue_system_message(&mut self, subject: &Author, text: &str) {
        let id = self.next_message_id();
        let message = MessageRecord {
            id,
            room_id: self.room.id,
            user_id: subject.user_id,
            username: subject.username.clone(),
            content: format!("{} {text}", subject.username),
            kind: MessageType::System,
            nonce: None,
            created_at: id.timestamp_ms(),
            deleted_at: None,
            extra: Default::default(),
        };
        self.queue_change(Change::new(ChangeKind::Created, message));
    }

    /// The newest state of a message among queued changes and recently stored ones.
    pub(super) fn latest_message(&self, id: Snowflake) -> Option<&MessageRecord> {
        self.log
            .queued()
            .rev()
            .map(|c| &c.message)
            .find(|m| m.id == id)
            .or_else(|| self.recent_messages.get(&id))
    }

    /// Storage writes queued, in flight or being re-read: none.
    pub fn writes_done(&self) -> bool {
        self.log.pending.is_empty()
            && self.log.in_flight.is_none()
            && self.log.resync != Resync::Running
    }

    /// A write failed and nothing re-read the log since.
    pub fn needs_resync(&self) -> bool {
        self.log.resync == Resync::Needed
    }

    /// The resync starts; returns the head to read after, the ownership epoch to renew and
    /// how long to wait before reading (after failed resyncs).
    pub fn begin_resync(&mut self) -> (u64, u64, std::time::Duration) {
        self.log.resync = Resync::Running;
        let wait = resync_backoff(self.log.resync_failures);
        (self.log.head, self.log.owner_epoch, wait)
    }

    /// A newer owner took the room over (the room must retire).
    pub fn is_fenced(&self) -> bool {
        self.log.resync == Resync::Fenced
    }

    /// Fails everything queued: the room is fenced (clients resend to the new owner).
    fn fail_fenced(&mut self) {
        let error = ActorError::Unavailable.to_body();
        for change in self.log.pending.drain(..).collect::<Vec<_>>() {
            change.answer(Some(&error));
        }
    }

    /// Seals the next batch (up to [`MAX_BATCH`] changes, the next seqs) and returns its log
    /// entries, unless a write or resync is in progress.
    pub fn take_write_batch(&mut self) -> Option<Vec<RoomEventRecord>> {
        if self.log.resync == Resync::Fenced {
            self.fail_fenced();
            return None;
        }
        let log = &mut self.log;
        if log.in_flight.is_some() || log.pending.is_empty() || log.resync != Resync::Clean {
            return None;
        }
        let take = log.pending.len().min(MAX_BATCH);
        let mut batch: Vec<Change> = log.pending.drain(..take).collect();
        let (head, epoch, owner) = (log.head, log.epoch, log.owner_epoch);
        let keep = self.room.settings.record_messages;
        let records = batch
            .iter_mut()
            .enumerate()
            .map(|(i, c)| c.seal(head + 1 + i as u64, (epoch, owner), keep))
            .collect();
        log.in_flight = Some(batch);
        Some(records)
    }

    /// The in-flight batch is durable (broadcast and ack it) or failed (fail it and
    /// everything queued behind it, and resync before the next write).
    pub fn handle_committed(&mut self, result: Result<(), StoreError>) {
        let Some(batch) = self.log.in_flight.take() else {
            return;
        };
        if let Err(e) = result {
            let fenced = matches!(e, StoreError::Fenced { .. });
            let error = if fenced {
                tracing::info!(room = %self.room.id, error = %e, "room fenced by a newer owner");
                ActorError::Unavailable.to_body()
            } else {
                tracing::warn!(room = %self.room.id, error = %e, "room log write failed");
                ActorError::Store(e).to_body()
            };
            let pending: Vec<Change> = self.log.pending.drain(..).collect();
            for change in batch.into_iter().chain(pending) {
                change.answer(Some(&error));
            }
            self.log.resync = if fenced {
                metrics::counter!("voiceflow_rooms_fenced_total").increment(1);
                Resync::Fenced
            } else {
                Resync::Needed
            };
            return;
        }
        // Encoded once; every member gets the same bytes, one queue entry for the whole batch.
        let frames: Vec<Frame> = batch.iter().filter_map(|c| c.frame.clone()).collect();
        let last = batch.last().map_or(self.log.head, |c| c.message.extra.seq);
        self.log.head = self.log.head.max(last);
        self.fan_out(None, Some(last), &Frame::concat(&frames));
        let created = batch
            .iter()
            .filter(|c| c.kind == ChangeKind::Created)
            .count();
        metrics::counter!("voiceflow_messages_total").increment(created as u64);
        // Sessions on other nodes are counted there, when their node fans the batch out.
        let local = self
            .live
            .values()
            .filter(|l| matches!(l.to, Recipient::Local(_)))
            .count();
        metrics::counter!("voiceflow_deliveries_total").increment((batch.len() * local) as u64);
        if !self.room.settings.record_messages {
            self.keep_unrecorded(&batch);
        } else if let Some(search) = &self.ctx.search {
            // A bounded queue to the indexer thread: never waits (a full queue drops the
            // batch; the indexer reads it from the log when the next batch shows the gap).
            let changes = batch
                .iter()
                .map(|c| voiceflow_search::IndexedChange {
                    seq: c.message.extra.seq,
                    message: c.message.clone(),
                })
                .collect();
            search.committed(self.room.id, changes);
        }
        for change in batch {
            match &change.kind {
                ChangeKind::Created => {
                    self.announce_mentions(&change.message, None);
                    self.announce_direct(&change.message);
                }
                ChangeKind::Edited | ChangeKind::Deleted => {
                    let before = change.before.clone().unwrap_or_default();
                    self.announce_mentions(&change.message, Some(before));
                }
                ChangeKind::Reaction { .. } => {}
            }
            self.settle(&change.kind, &change.message);
            change.answer(None);
        }
    }

    /// Remembers a stored batch's frames, with their content, for replay within the window
    /// (a room that keeps no messages).
    fn keep_unrecorded(&mut self, batch: &[Change]) {
        for change in batch {
            if let Some(frame) = &change.frame {
                let at = (change.message.extra.seq, change.message.id);
                let deleted = change.kind == ChangeKind::Deleted;
                self.unrecorded.keep(at, frame.clone(), deleted);
            }
        }
        let max = self.ctx.config.replay_limit as usize;
        self.unrecorded.trim(self.ctx.config.unrecorded_window, max);
    }

    /// Remembers what a stored change left behind.
    fn settle(&mut self, kind: &ChangeKind, message: &MessageRecord) {
        if *kind == ChangeKind::Created {
            self.last_message_id = self.last_message_id.max(message.id);
            self.remember_nonce(message);
        }
        self.remember_message(message.clone());
    }

    /// The resync read storage: broadcast entries that landed although their write failed,
    /// and continue from the log's real end.
    pub fn handle_resynced(&mut self, result: Result<ResyncData, StoreError>) {
        let data = match result {
            Ok(data) => data,
            Err(e) => {
                if matches!(e, StoreError::Fenced { .. }) {
                    tracing::info!(room = %self.room.id, error = %e, "room fenced by a newer owner");
                    metrics::counter!("voiceflow_rooms_fenced_total").increment(1);
                    self.log.resync = Resync::Fenced;
                    self.fail_fenced();
                    return;
                }
                self.log.resync_failures = self.log.resync_failures.saturating_add(1);
                tracing::warn!(room = %self.room.id, error = %e, failures = self.log.resync_failures, "room log resync failed");
                let error = ActorError::Store(e).to_body();
                for change in self.log.pending.drain(..).collect::<Vec<_>>() {
                    change.answer(Some(&error));
                }
                self.log.resync = Resync::Needed;
                return;
            }
        };
        // Only this room's own failed write can have landed after its head: entries of older
        // owners there are stale and will be replaced by what the room writes next.
        let failed_owner = std::mem::replace(&mut self.log.owner_epoch, data.owner_epoch);
        if let Some(head) = data.head {
            let landed: Vec<&RoomEventRecord> = data
                .events
                .iter()
                .filter(|e| e.seq > self.log.head)
                .enumerate()
                .take_while(|(i, e)| {
                    e.epoch == self.log.epoch
                        && e.owner_epoch == failed_owner
                        && e.seq == self.log.head + 1 + *i as u64
                })
                .map(|(_, e)| e)
                .collect();
            if let Some(last) = landed.last().map(|e| e.seq) {
                let frames: Vec<Frame> =
                    landed.iter().map(|e| frame_of(&e.event, &e.data)).collect();
                self.fan_out(None, Some(last), &Frame::concat(&frames));
                for e in &landed {
                    if let Some(m) = &e.message {
                        let kind = if e.event == events::MESSAGE_RECEIVED {
                            ChangeKind::Created
                        } else {
                            ChangeKind::Edited
                        };
                        self.settle(&kind, m);
                    }
                }
            }
            if let Some(last) = landed.last() {
                self.log.head = last.seq;
            }
            // A post resent while the room resynced may be one that just landed: answer it
            // with the landed message instead of storing it twice.
            let adopted: Vec<MessageRecord> = landed
                .iter()
                .filter(|e| e.event == events::MESSAGE_RECEIVED)
                .filter_map(|e| e.message.clone())
                .filter(|m| m.nonce.is_some())
                .collect();
            if !adopted.is_empty() {
                let pending = std::mem::take(&mut self.log.pending);
                for mut change in pending {
                    let twin = adopted.iter().find(|m| {
                        change.kind == ChangeKind::Created
                            && m.user_id == change.message.user_id
                            && m.nonce == change.message.nonce
                    });
                    match twin {
                        Some(m) => {
                            change.message = m.clone();
                            change.answer(None);
                        }
                        None => self.log.pending.push(change),
                    }
                }
            }
            tracing::debug!(room = %self.room.id, stored = head.seq, head = self.log.head, "resynced");
        }
        self.log.resync = Resync::Clean;
        self.log.resync_failures = 0;
    }

    /// Pushes logged events in (since, head] to the session, oldest first. Too many to
    /// replay, or another epoch → nothing is pushed and the reply says so (the client pages
    /// history instead).
    pub(super) async fn replay(
        &self,
        session: &SessionLink,
        since: u64,
        epoch: Option<u64>,
    ) -> Result<(u32, bool), ActorError> {
        let head = self.log.head;
        let other_epoch = epoch.is_some_and(|e| e != self.log.epoch);
        if since > head || (other_epoch && since > 0) {
            return Ok((0, true));
        }
        if since == head {
            return Ok((0, false));
        }
        let limit = self.ctx.config.replay_limit;
        let stored = self
            .ctx
            .store
            .events_after(self.room.id, since, limit.saturating_add(1))
            .await?;
        let stored: Vec<_> = stored.into_iter().filter(|e| e.seq <= head).collect();
        if stored.len() > limit as usize {
            return Ok((0, true));
        }
        let mut frames = replay_frames(&stored);
        if !self.room.settings.record_messages {
            // Within the window, the messages as they were sent (a deleted one was taken out
            // of the window when it was deleted).
            let kept = self.unrecorded.frames(self.ctx.config.unrecorded_window);
            for (frame, entry) in frames.iter_mut().zip(&stored) {
                if let Some(sent) = kept.get(&entry.seq) {
                    *frame = (*sent).clone();
                }
            }
        }
        if let Some(last) = stored.last() {
            session
                .to
                .push_room_messages(self.room.id, last.seq, &frames);
        }
        Ok((frames.len() as u32, false))
    }
}

/// The frames that replay `entries`: each entry as it was sent, except that a message deleted
/// later in `entries` is replayed as the tombstone it became (its earlier `message:received`
/// and `message:updated` carry no content, file or reactions, and replies to it quote no
/// snippet). A client that missed both the post and its deletion never sees what was deleted.
fn replay_frames(entries: &[RoomEventRecord]) -> Vec<Frame> {
    let deleted: HashMap<Snowflake, u64> = entries
        .iter()
        .filter(|e| e.event == events::MESSAGE_DELETED)
        .filter_map(|e| e.message.as_ref())
        .map(|m| (m.id, m.deleted_at.unwrap_or_default()))
        .collect();
    entries
        .iter()
        .map(|e| {
            let shows_message =
                e.event == events::MESSAGE_RECEIVED || e.event == events::MESSAGE_UPDATED;
            let Some(message) = e.message.as_ref().filter(|_| shows_message) else {
                return frame_of(&e.event, &e.data);
            };
            let gone = deleted.get(&message.id).copied();
            let parent_gone = message
                .extra
                .reply_to
                .as_ref()
                .is_some_and(|r| deleted.contains_key(&r.id));
            if gone.is_none() && !parent_gone {
                return frame_of(&e.event, &e.data);
            }
            let mut message = message.clone();
            if let Some(at) = gone {
                make_tombstone(&mut message, at);
            }
            if parent_gone && let Some(parent) = message.extra.reply_to.as_mut() {
                parent.snippet.clear();
            }
            message.extra.seq = e.seq;
            // Plain data structs always serialize.
            let data = serde_json::to_string(&view_of(&message)).unwrap_or_else(|_| "{}".into());
            frame_of(&e.event, &data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_resyncs_back_off_to_two_seconds() {
        let ms = |n| super::resync_backoff(n).as_millis();
        assert_eq!((ms(0), ms(1), ms(2), ms(3)), (0, 50, 100, 200));
        assert_eq!((ms(6), ms(7), ms(1000)), (1600, 2000, 2000));
    }

    #[test]
    fn a_new_log_starts_a_new_epoch_and_an_old_one_continues() {
        let fresh = Log::new(None, 1, || 42);
        assert_eq!((fresh.epoch(), fresh.head()), (42, 0));
        let old = Log::new(
            Some(LogHead {
                epoch: 7,
                seq: 99,
                message: None,
            }),
            1,
            || 42,
        );
        assert_eq!((old.epoch(), old.head()), (7, 99));
    }

    #[test]
    fn stored_event_json_becomes_the_same_frame() {
        let f = frame_of(
            "message:deleted",
            r#"{"roomId":"1","messageId":"2","seq":3}"#,
        );
        assert_eq!(
            f.as_str(),
            r#"{"type":"message:deleted","data":{"roomId":"1","messageId":"2","seq":3}}"#
        );
        let broken = frame_of("x", "{not json");
        assert_eq!(broken.as_str(), r#"{"type":"x","data":{}}"#);
    }
}
