//! A change on its way into the room log ([`super::log`]): what it did to its message, who
//! waits for its outcome, and how it becomes a log entry once it has a seq.

use ractor::RpcReplyPort;
use serde_json::value::RawValue;
use voiceflow_schema::{MessageRecord, RoomEventRecord};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::SentReply;
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::rich::{MessageRef, MessageReply, ReactionUpdated};
use voiceflow_wire::v1::server::{MessageDeleted, events};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::fanout::{reaction_views, view_of};
use crate::error::ActorError;
use crate::room::{ActReply, Reply};

/// What a change did to its message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChangeKind {
    /// Posted (`message:received`).
    Created,
    /// Edited by its author (`message:updated`).
    Edited,
    /// Turned into a tombstone (`message:deleted`).
    Deleted,
    /// A reaction added or removed (`reaction:updated`).
    Reaction {
        /// The emoji.
        emoji: String,
        /// Who.
        user: Snowflake,
        /// Added or removed.
        added: bool,
    },
}

/// Who waits for a change to be stored.
pub(crate) enum ChangeReply {
    /// A `message:send` (ack: the message).
    Sent(Reply<SentReply>),
    /// An [`crate::room::Action`] (ack: per action).
    Act(Reply<ActReply>),
    /// A REST request that only needs to know it is done.
    Done(RpcReplyPort<Result<(), ActorError>>),
}

/// A change on its way into the log.
pub(crate) struct Change {
    pub(crate) kind: ChangeKind,
    /// The message as the change leaves it.
    pub(crate) message: MessageRecord,
    pub(crate) replies: Vec<ChangeReply>,
    /// An edit's or deletion's message's mentions before it, so that those it newly
    /// reaches or no longer reaches are found once it is stored.
    pub(crate) before: Option<super::mention_delivery::MentionReach>,
    /// Set when the change joins a batch: the encoded event.
    pub(super) frame: Option<Frame>,
}

impl Change {
    /// A change nobody has asked for yet.
    pub(crate) fn new(kind: ChangeKind, message: MessageRecord) -> Change {
        Change {
            kind,
            message,
            replies: Vec::new(),
            before: None,
            frame: None,
        }
    }

    /// The event name clients see.
    fn event(&self) -> &'static str {
        match self.kind {
            ChangeKind::Created => events::MESSAGE_RECEIVED,
            ChangeKind::Edited => events::MESSAGE_UPDATED,
            ChangeKind::Deleted => events::MESSAGE_DELETED,
            ChangeKind::Reaction { .. } => events::REACTION_UPDATED,
        }
    }

    /// The event's `data` for `message` as this change leaves it, JSON.
    fn data(&self, message: &MessageRecord) -> String {
        let json = match &self.kind {
            ChangeKind::Created | ChangeKind::Edited => serde_json::to_string(&view_of(message)),
            ChangeKind::Deleted => serde_json::to_string(&MessageDeleted {
                room_id: message.room_id,
                message_id: message.id,
                seq: message.extra.seq,
            }),
            ChangeKind::Reaction { emoji, user, added } => {
                serde_json::to_string(&reaction_event(message, emoji, *user, *added))
            }
        };
        // Plain data structs always serialize.
        json.unwrap_or_else(|_| "{}".into())
    }

    /// Gives the change its seq and encodes it once: the log entry and the frame. In a room
    /// that keeps no messages (`keep` false) the entry holds the message's tombstone while
    /// the frame sent live holds the message ([`super::unrecorded`]).
    pub(super) fn seal(
        &mut self,
        seq: u64,
        (epoch, owner_epoch): (u64, u64),
        keep: bool,
    ) -> RoomEventRecord {
        self.message.extra.seq = seq;
        let data = self.data(&self.message);
        self.frame = Some(frame_of(self.event(), &data));
        let (data, message) = match keep {
            true => (data, self.message.clone()),
            false => {
                let stored = super::unrecorded::stored_copy(&self.message);
                (self.data(&stored), stored)
            }
        };
        RoomEventRecord {
            room_id: self.message.room_id,
            seq,
            epoch,
            owner_epoch,
            event: self.event().to_owned(),
            data,
            message: Some(message),
            at: now_ms(),
        }
    }

    /// Tells everyone waiting how it went: `None` is success, else the error to send.
    pub(crate) fn answer(self, failed: Option<&ErrorBody>) {
        let message = &self.message;
        for reply in self.replies {
            if let Some(body) = failed {
                let err = ActorError::Client(body.clone());
                match reply {
                    ChangeReply::Sent(r) => r.send(Err(err)),
                    ChangeReply::Act(r) => r.send(Err(err)),
                    ChangeReply::Done(port) => {
                        let _ = port.send(Err(err));
                    }
                }
                continue;
            }
            match reply {
                ChangeReply::Sent(r) => r.send(Ok(SentReply {
                    message: view_of(message),
                })),
                ChangeReply::Done(port) => {
                    let _ = port.send(Ok(()));
                }
                ChangeReply::Act(r) => r.send(Ok(match &self.kind {
                    ChangeKind::Created | ChangeKind::Edited => {
                        ActReply::Message(Box::new(MessageReply {
                            message: view_of(message),
                        }))
                    }
                    ChangeKind::Deleted => ActReply::Ref(MessageRef {
                        room_id: message.room_id,
                        message_id: message.id,
                    }),
                    ChangeKind::Reaction { emoji, user, added } => {
                        ActReply::Reaction(reaction_event(message, emoji, *user, *added))
                    }
                })),
            }
        }
    }
}

/// `reaction:updated` for a message as it is now.
pub(crate) fn reaction_event(
    message: &MessageRecord,
    emoji: &str,
    user: Snowflake,
    added: bool,
) -> ReactionUpdated {
    let reactions = reaction_views(message);
    let count = reactions
        .iter()
        .find(|r| r.emoji == emoji)
        .map_or(0, |r| r.count);
    ReactionUpdated {
        room_id: message.room_id,
        message_id: message.id,
        emoji: emoji.to_owned(),
        count,
        user_id: user,
        added,
        reactions,
        seq: message.extra.seq,
    }
}

/// `{"type": event, "data": <data>}` from stored JSON.
pub(super) fn frame_of(event: &str, data: &str) -> Frame {
    match RawValue::from_string(data.to_owned()) {
        Ok(raw) => frame::event(event, &raw),
        Err(_) => frame::event(event, &serde_json::json!({})),
    }
}
