//! Members' presence as the room shows it, and read markers.
//!
//! Presence lives with each user's presence actor (see [`crate::presence`]); a room keeps the
//! latest status each member's presence actor told it (newest version wins) and passes changes
//! on as `user:presence_changed`, at most one per user per [`PRESENCE_INTERVAL`]: a flapping
//! client cannot flood a room. Read markers only move forward; the receipts other members see
//! are batched over [`RECEIPT_DELAY`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use voiceflow_schema::ReadMarker;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::rich::{MessageRef, PresenceChanged, PresenceStatus, ReadReceipt};
use voiceflow_wire::v1::server::events;

use super::RoomState;
use crate::error::ActorError;
use crate::presence::PresenceNote;

/// Least time between two presence events about one user in one room.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// How long read receipts gather before they go out together.
pub const RECEIPT_DELAY: Duration = Duration::from_millis(500);

/// A member's presence as last reported by their presence actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PresenceEntry {
    /// The status.
    pub status: PresenceStatus,
    /// Last seen (set when offline).
    pub last_seen: Option<u64>,
    /// Orders reports (newer wins).
    pub version: u64,
    /// The node whose presence actor reported it.
    pub source: NodeId,
}

/// Presence and read-marker bookkeeping of one room.
#[derive(Debug, Default)]
pub(super) struct Social {
    presence: HashMap<Snowflake, PresenceEntry>,
    /// The status last broadcast for each user, and when.
    shown: HashMap<Snowflake, (PresenceStatus, Instant)>,
    /// Users whose change waits for the interval to pass.
    dirty: HashSet<Snowflake>,
    presence_flush: Option<Duration>,
    presence_flush_pending: bool,
    markers: HashMap<Snowflake, Snowflake>,
    receipts: Vec<(Snowflake, Snowflake)>,
    receipts_flush: bool,
    receipts_flush_pending: bool,
}

impl Social {
    /// What to show for `user` (`live`: they have a session subscribed here).
    pub(super) fn presence_of(&self, user: Snowflake, live: bool) -> (PresenceStatus, Option<u64>) {
        match self.presence.get(&user) {
            // A subscribed user is not offline, whatever a late report says.
            Some(e) if live && e.status == PresenceStatus::Offline => {
                (PresenceStatus::Online, None)
            }
            Some(e) => (e.status, e.last_seen),
            None if live => (PresenceStatus::Online, None),
            None => (PresenceStatus::Offline, None),
        }
    }

    /// Users whose latest report says they are not offline.
    pub(super) fn online(&self) -> impl Iterator<Item = Snowflake> + '_ {
        self.presence
            .iter()
            .filter(|(_, e)| e.status != PresenceStatus::Offline)
            .map(|(user, _)| *user)
    }

    /// Whether the room has heard nothing about `user` yet.
    pub(super) fn unknown(&self, user: Snowflake) -> bool {
        !self.presence.contains_key(&user)
    }
}

impl RoomState {
    /// A presence actor reported a member's status.
    pub fn handle_presence(&mut self, note: PresenceNote, now: Instant) {
        if !self.members.contains_key(&note.user_id) {
            return;
        }
        self.call_presence(note.user_id, note.status);
        if let Some(old) = self.social.presence.get(&note.user_id)
            && old.version >= note.version
        {
            return;
        }
        let entry = PresenceEntry {
            status: note.status,
            last_seen: note.last_seen,
            version: note.version,
            source: note.source,
        };
        self.social.presence.insert(note.user_id, entry);
        match self.social.shown.get(&note.user_id) {
            Some((shown, _)) if *shown == note.status => {
                self.social.dirty.remove(&note.user_id);
            }
            Some((_, at)) if now.duration_since(*at) < PRESENCE_INTERVAL => {
                self.social.dirty.insert(note.user_id);
                if !self.social.presence_flush_pending {
                    self.social.presence_flush_pending = true;
                    self.social.presence_flush = Some(PRESENCE_INTERVAL - now.duration_since(*at));
                }
            }
            _ => self.show_presence(note.user_id, now),
        }
    }

    fn show_presence(&mut self, user: Snowflake, now: Instant) {
        let (status, last_seen) = self.social.presence_of(user, false);
        self.social.shown.insert(user, (status, now));
        let event = PresenceChanged {
            user_id: user,
            status,
            last_seen,
        };
        self.broadcast(&frame::event(events::PRESENCE_CHANGED, &event));
    }

    /// The coalescing interval passed: show what changed meanwhile (if it still differs).
    pub fn handle_flush_presence(&mut self, now: Instant) {
        self.social.presence_flush_pending = false;
        let dirty: Vec<Snowflake> = self.social.dirty.drain().collect();
        for user in dirty {
            let current = self.social.presence_of(user, false).0;
            match self.social.shown.get(&user) {
                Some((shown, _)) if *shown == current => {}
                Some((_, at)) if now.duration_since(*at) < PRESENCE_INTERVAL => {
                    // Shown again meanwhile: wait for the rest of its interval.
                    self.social.dirty.insert(user);
                    if !self.social.presence_flush_pending {
                        self.social.presence_flush_pending = true;
                        self.social.presence_flush =
                            Some(PRESENCE_INTERVAL - now.duration_since(*at));
                    }
                }
                _ => self.show_presence(user, now),
            }
        }
    }

    /// A presence flush to schedule, once.
    pub fn take_presence_flush(&mut self) -> Option<Duration> {
        self.social.presence_flush.take()
    }

    /// Whether `user` is a member whose presence this room has not heard yet (asked on every
    /// join: one lookup, not a walk over the members).
    pub fn presence_unknown(&self, user: Snowflake) -> bool {
        self.members.contains_key(&user) && self.social.unknown(user)
    }

    /// Members whose presence came from `node` (it died: ask their new presence owner).
    pub fn presence_from(&self, node: NodeId) -> Vec<Snowflake> {
        self.social
            .presence
            .iter()
            .filter(|(_, e)| e.source == node)
            .map(|(u, _)| *u)
            .collect()
    }

    /// `message:read`: moves the member's marker forward (never past the newest message, never
    /// back) and queues a receipt for the others.
    pub async fn handle_read(
        &mut self,
        user: Snowflake,
        message_id: Snowflake,
    ) -> Result<MessageRef, ActorError> {
        if self.is_channel() && !self.members.contains_key(&user) {
            // A channel's room reads its members as they act, not at start.
            self.require(user, Permissions::VIEW_CHANNEL, "").await?;
        }
        if !self.members.contains_key(&user) {
            return Err(ActorError::Forbidden("not a member of this room"));
        }
        // Only a message of this room can be a marker here.
        if self.message_for(message_id).await?.is_none() {
            return Err(ActorError::MessageNotFound);
        }
        let current = match self.social.markers.get(&user) {
            Some(m) => *m,
            None => self
                .ctx
                .store
                .read_markers(user)
                .await?
                .into_iter()
                .find(|m| m.room_id == self.room.id)
                .map(|m| m.message_id)
                .unwrap_or_default(),
        };
        self.social.markers.insert(user, current);
        let target = message_id.min(self.last_message_id);
        if target <= current {
            return Ok(MessageRef {
                room_id: self.room.id,
                message_id: current,
            });
        }
        let marker = ReadMarker {
            user_id: user,
            room_id: self.room.id,
            message_id: target,
            at: now_ms(),
        };
        self.ctx.store.put_read_marker(&marker).await?;
        self.social.markers.insert(user, target);
        self.social.receipts.retain(|(u, _)| *u != user);
        self.social.receipts.push((user, target));
        if !self.social.receipts_flush_pending {
            self.social.receipts_flush_pending = true;
            self.social.receipts_flush = true;
        }
        Ok(MessageRef {
            room_id: self.room.id,
            message_id: target,
        })
    }

    /// Whether a receipt flush must be scheduled (once per batch).
    pub fn take_receipts_flush(&mut self) -> bool {
        std::mem::take(&mut self.social.receipts_flush)
    }

    /// Sends the gathered read receipts to everyone in the room.
    pub fn handle_flush_receipts(&mut self) {
        self.social.receipts_flush_pending = false;
        let frames: Vec<Frame> = self
            .social
            .receipts
            .drain(..)
            .map(|(user_id, message_id)| {
                let receipt = ReadReceipt {
                    room_id: self.room.id,
                    user_id,
                    message_id,
                };
                frame::event(events::READ_RECEIPT, &receipt)
            })
            .collect();
        if !frames.is_empty() {
            self.broadcast(&Frame::concat(&frames));
        }
    }
}
