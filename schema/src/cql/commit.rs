//! Group commit of message appends, per room.
//!
//! Appends are queued per room. The first append of an idle room starts a writer task for it;
//! the task takes everything queued for the room (up to [`MAX_GROUP_MESSAGES`] messages and
//! [`MAX_GROUP_BYTES`] of text), writes it (`Cql::append`: index rows, then the room's
//! partition rows in one single-partition batch), answers each caller, and
//! repeats until the queue is empty. So one batch per room is in flight at a time, appends
//! that arrive meanwhile share the next round trip, and rooms never wait on each other. A
//! caller's future resolves only after the cluster acknowledged the batch holding its
//! messages. The writer is a task, not the caller, so a caller that gives up (drops its
//! future) does not stall the room's queue.
//!
//! One call larger than the limits is split into several batches; if one fails, the call
//! fails, and the messages of earlier batches may be stored without having been acknowledged
//! (a retry with the same nonces finds them).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use voiceflow_wire::Snowflake;

use super::Cql;
use super::messages::check;
use crate::model::MessageRecord;
use crate::store::{StoreError, StoreResult};

/// Most messages written as one group.
pub(crate) const MAX_GROUP_MESSAGES: usize = 128;
/// Most content bytes written as one group (ScyllaDB refuses batches over 1 MiB by default).
pub(crate) const MAX_GROUP_BYTES: usize = 256 * 1024;

/// One caller's messages for one room.
struct Pending {
    messages: Vec<MessageRecord>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// Per-room queues; a room is in the map exactly while its writer task runs.
#[derive(Default)]
pub(crate) struct GroupCommit {
    rooms: Mutex<HashMap<Snowflake, VecDeque<Pending>>>,
    idle: Notify,
}

/// Approximate size of a message in a batch.
fn weight(m: &MessageRecord) -> usize {
    m.content.len() + m.username.len() + m.nonce.as_ref().map_or(0, String::len) + 64
}

impl GroupCommit {
    /// Appends `messages` (any rooms) and waits until every room's batch is acknowledged.
    pub(crate) async fn append(
        self: &Arc<Self>,
        cql: &Arc<Cql>,
        messages: &[MessageRecord],
    ) -> StoreResult<()> {
        for m in messages {
            check(m)?;
        }
        let mut by_room: Vec<(Snowflake, Vec<MessageRecord>)> = Vec::new();
        for m in messages {
            match by_room.iter_mut().find(|(room, _)| *room == m.room_id) {
                Some((_, list)) => list.push(m.clone()),
                None => by_room.push((m.room_id, vec![m.clone()])),
            }
        }
        let mut waits = Vec::with_capacity(by_room.len());
        for (room, messages) in by_room {
            let (done, wait) = oneshot::channel();
            let start = {
                let mut rooms = self.rooms.lock();
                let start = !rooms.contains_key(&room);
                rooms
                    .entry(room)
                    .or_default()
                    .push_back(Pending { messages, done });
                start
            };
            if start {
                tokio::spawn(Arc::clone(self).drain(Arc::clone(cql), room));
            }
            waits.push(wait);
        }
        let mut result = Ok(());
        for wait in waits {
            let outcome = wait.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "CQL group-commit writer stopped".into(),
                ))
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Waits until no room has queued or in-flight appends.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.rooms.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes the next group of a room's queue, or removes the room (its writer is about to
    /// end) if nothing is queued. Both happen under the lock `append` takes to decide whether
    /// to start a writer, so a room never has two writers and no append is left unwritten.
    fn next_group(&self, room: Snowflake) -> Option<Vec<Pending>> {
        let mut rooms = self.rooms.lock();
        let queue = rooms.get_mut(&room)?;
        if queue.is_empty() {
            rooms.remove(&room);
            if rooms.is_empty() {
                self.idle.notify_waiters();
            }
            return None;
        }
        let (mut count, mut bytes, mut take) = (0usize, 0usize, 0usize);
        for pending in queue.iter() {
            let (n, b) = (
                pending.messages.len(),
                pending.messages.iter().map(weight).sum::<usize>(),
            );
            if take > 0 && (count + n > MAX_GROUP_MESSAGES || bytes + b > MAX_GROUP_BYTES) {
                break;
            }
            count += n;
            bytes += b;
            take += 1;
        }
        Some(queue.drain(..take).collect())
    }

    /// The writer task of one room.
    async fn drain(self: Arc<Self>, cql: Arc<Cql>, room: Snowflake) {
        let mut guard = WriterGuard {
            commit: Arc::clone(&self),
            room,
            armed: true,
        };
        // While a group is written the room stays in the map (its queue possibly empty), which
        // tells `append` that a writer is running.
        while let Some(group) = self.next_group(room) {
            let messages: Vec<MessageRecord> = group
                .iter()
                .flat_map(|p| p.messages.iter().cloned())
                .collect();
            let result = write_chunks(&cql, &messages).await;
            for pending in group {
                let outcome = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(clone_error(e)),
                };
                // The caller may have gone away; the write stands regardless.
                let _ = pending.done.send(outcome);
            }
        }
        guard.armed = false;
    }
}

/// Removes a room whose writer task ends abnormally (a panic, or the runtime shutting down
/// while a write is awaited): its queued callers then fail with "writer stopped" instead of
/// waiting forever, and the next append starts a new writer.
struct WriterGuard {
    commit: Arc<GroupCommit>,
    room: Snowflake,
    /// Cleared when the writer ended normally (its room is gone from the map already, and a
    /// new writer may own the room by now).
    armed: bool,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut rooms = self.commit.rooms.lock();
        if rooms.remove(&self.room).is_some() && rooms.is_empty() {
            self.commit.idle.notify_waiters();
        }
    }
}

/// Writes `messages` in batches within the size limits.
async fn write_chunks(cql: &Cql, messages: &[MessageRecord]) -> StoreResult<()> {
    let mut start = 0;
    while start < messages.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < messages.len()
            && (end == start
                || (end - start < MAX_GROUP_MESSAGES
                    && bytes + weight(&messages[end]) <= MAX_GROUP_BYTES))
        {
            bytes += weight(&messages[end]);
            end += 1;
        }
        let chunk = messages.get(start..end).unwrap_or_default();
        cql.append(chunk).await?;
        start = end;
    }
    Ok(())
}

/// A copy of a store error for each caller of a failed group.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict { field } => StoreError::Conflict { field },
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Fenced {
            room,
            mine,
            current,
        } => StoreError::Fenced {
            room: *room,
            mine: *mine,
            current: *current,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(messages: usize) -> (Pending, oneshot::Receiver<StoreResult<()>>) {
        let (done, wait) = oneshot::channel();
        let message = MessageRecord {
            id: Snowflake(1),
            room_id: Snowflake(1),
            user_id: Snowflake(1),
            username: "u".into(),
            content: "c".into(),
            kind: Default::default(),
            nonce: None,
            created_at: 0,
            deleted_at: None,
            extra: Default::default(),
        };
        let pending = Pending {
            messages: vec![message; messages],
            done,
        };
        (pending, wait)
    }

    #[test]
    fn groups_respect_the_limits_and_an_idle_room_is_removed() {
        let commit = GroupCommit::default();
        let room = Snowflake(1);
        let mut waits = Vec::new();
        for n in [100, 20, 20, 300] {
            let (p, w) = pending(n);
            commit.rooms.lock().entry(room).or_default().push_back(p);
            waits.push(w);
        }
        let sizes = |g: Vec<Pending>| g.iter().map(|p| p.messages.len()).collect::<Vec<_>>();
        // 100 + 20 fit; another 20 would pass 128; an oversized call goes alone.
        assert_eq!(commit.next_group(room).map(sizes), Some(vec![100, 20]));
        assert_eq!(commit.next_group(room).map(sizes), Some(vec![20]));
        assert_eq!(commit.next_group(room).map(sizes), Some(vec![300]));
        assert!(
            commit.rooms.lock().contains_key(&room),
            "busy while writing"
        );
        assert!(commit.next_group(room).is_none());
        assert!(commit.rooms.lock().is_empty());
    }

    #[test]
    fn an_abnormal_writer_end_frees_the_room_and_fails_its_callers() {
        let commit = Arc::new(GroupCommit::default());
        let room = Snowflake(9);
        let (p, mut wait) = pending(1);
        commit.rooms.lock().entry(room).or_default().push_back(p);
        drop(WriterGuard {
            commit: Arc::clone(&commit),
            room,
            armed: true,
        });
        assert!(commit.rooms.lock().is_empty());
        assert!(
            wait.try_recv().is_err(),
            "the caller sees the writer stopped"
        );
        // A writer that ended normally leaves a room a newer writer owns alone.
        let (p, _wait) = pending(1);
        commit.rooms.lock().entry(room).or_default().push_back(p);
        drop(WriterGuard {
            commit: Arc::clone(&commit),
            room,
            armed: false,
        });
        assert!(commit.rooms.lock().contains_key(&room));
    }
}
