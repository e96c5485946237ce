//! The room actor's messages ([`RoomMsg`]) and what they carry: the subscriber
//! ([`SessionLink`]), the author of a post ([`Author`]) and where an answer goes ([`Reply`]).

use ractor::RpcReplyPort;
use voiceflow_schema::{RoomRecord, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::v1::client::{RoomRef, SendMessage, SentReply};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::server::{JoinReply, Participant};

use super::{ActReply, Action, ResyncData, VoiceOp};
use crate::error::ActorError;
use crate::presence::PresenceNote;
use crate::remote::Recipient;

/// A live subscriber: one WebSocket session of a user.
#[derive(Debug, Clone)]
pub struct SessionLink {
    /// Node-unique session id.
    pub session_id: u64,
    /// The session's user.
    pub user_id: Snowflake,
    /// Their username.
    pub username: String,
    /// Where the room pushes frames for this session.
    pub to: Recipient,
}

/// The author of a post.
#[derive(Debug, Clone)]
pub struct Author {
    /// User id.
    pub user_id: Snowflake,
    /// Username at send time.
    pub username: String,
}

/// Where the answer to a request goes: an ack frame in a session's outbox, or a reply port
/// (REST handlers).
#[derive(Debug)]
pub enum Reply<T> {
    /// Push `{"type":"ack","id":..}` to this session (nothing if the request had no id).
    Session {
        /// The session.
        to: Recipient,
        /// Its id (cluster-unique).
        session_id: u64,
        /// The client frame's id.
        req_id: Option<u64>,
    },
    /// Answer through a port.
    Port(RpcReplyPort<Result<T, ActorError>>),
}

impl<T: serde::Serialize> Reply<T> {
    /// Delivers the outcome.
    pub fn send(self, result: Result<T, ActorError>) {
        match self {
            Reply::Session { to, req_id, .. } => match (result, req_id) {
                (Ok(value), Some(id)) => to.push(frame::ack_ok(id, &value)),
                (Ok(_), None) => {}
                (Err(e), id) => to.push(frame::failure(id, &e.to_body())),
            },
            Reply::Port(port) => {
                let _ = port.send(result);
            }
        }
    }
}

/// Messages a room actor handles.
#[derive(Debug)]
pub enum RoomMsg {
    /// Subscribe a session to live events (`room:join`), replaying logged events after `since`.
    Join {
        /// The session.
        session: SessionLink,
        /// Last room-log seq the client saw.
        since: Option<u64>,
        /// The log epoch of `since`.
        epoch: Option<u64>,
        /// Whether the reply lists the members.
        members: bool,
        /// Where the join reply goes.
        reply: Reply<JoinReply>,
    },
    /// Unsubscribe a session (`room:leave`, or its connection closed).
    Leave {
        /// The session.
        session_id: u64,
        /// Its user: a leave from someone who is neither subscribed nor a member is refused.
        user_id: Snowflake,
        /// Where the ack goes, if anyone waits.
        reply: Option<Reply<RoomRef>>,
    },
    /// A member posts a message (`message:send` or `POST /messages`).
    Post {
        /// Who posts.
        author: Author,
        /// What.
        post: SendMessage,
        /// Where the stored message goes.
        reply: Reply<SentReply>,
    },
    /// An edit, deletion, reaction or read marker from a member.
    Act {
        /// Who.
        author: Author,
        /// What.
        action: Action,
        /// Where the ack goes.
        reply: Reply<ActReply>,
    },
    /// The storage write this room started has finished.
    Committed(Result<(), StoreError>),
    /// The log's end as storage has it, after a failed write.
    Resynced(Result<ResyncData, StoreError>),
    /// A member's presence actor reports their status.
    Presence(PresenceNote),
    /// Presence changes held back by the coalescing interval may go out now.
    FlushPresence,
    /// Gathered read receipts go out.
    FlushReceipts,
    /// Ask these members' presence actors again (the node that reported them died).
    Reprobe(Vec<Snowflake>),
    /// Member lists asked for right after start may be answered now.
    AnswerMembers,
    /// A `voice:*` request from a session.
    Voice {
        /// The session.
        session: SessionLink,
        /// What.
        op: VoiceOp,
        /// Where the ack goes.
        reply: Reply<serde_json::Value>,
    },
    /// An event from the voice channel's SFU session.
    VoiceEvent(voiceflow_media::SfuEvent),
    /// What the call actor of this conversation decided.
    CallReport(crate::call::CallReport),
    /// Periodic (voice channels): speaking changes due, participants' heartbeats.
    VoiceTick,
    /// The SFU accepted this session's offer.
    VoiceJoined(u64),
    /// `typing:start` / `typing:stop` from a session; refused unless it is subscribed.
    Typing {
        /// The session.
        session_id: u64,
        /// Its user.
        user_id: Snowflake,
        /// Start or stop.
        start: bool,
        /// Where the ack goes, if anyone waits.
        reply: Option<Reply<RoomRef>>,
    },
    /// A member's account was renamed (`PATCH /users/me`): member lists, live sessions and
    /// the messages they post from now on carry the new name.
    Renamed {
        /// Who.
        user_id: Snowflake,
        /// The new name.
        username: String,
    },
    /// A typing indicator's time ran out (ignored if a newer `typing:start` came since).
    TypingExpired {
        /// Who was typing.
        user_id: Snowflake,
        /// Which `typing:start` this timer belongs to.
        generation: u64,
    },
    /// Make a user a member (`POST /rooms/:code/join`).
    AddMember {
        /// The user.
        author: Author,
        /// The members list, or ROOM_FULL.
        reply: RpcReplyPort<Result<JoinReply, ActorError>>,
    },
    /// Remove a member (`POST /rooms/:id/leave`, or an admin's `DELETE
    /// /rooms/:id/members/:userId`); their sessions stop receiving the room (and, when an
    /// admin removed them, get `room:removed`).
    RemoveMember {
        /// The user.
        user_id: Snowflake,
        /// The admin who removed them; `None` when they left.
        removed_by: Option<Snowflake>,
        /// Done.
        reply: RpcReplyPort<Result<(), ActorError>>,
    },
    /// Tombstone a message (author or admin; `DELETE /messages/:id`), answered once stored.
    DeleteMessage {
        /// The message.
        message_id: Snowflake,
        /// Who asks.
        by: Snowflake,
        /// Done, or FORBIDDEN / NOT_FOUND.
        reply: RpcReplyPort<Result<(), ActorError>>,
    },
    /// The room record was edited (`PATCH /rooms/:id`).
    Updated(Box<RoomRecord>),
    /// Delete the room (admin only): tell everyone, drop it from storage, stop.
    DeleteRoom {
        /// Who asks.
        by: Snowflake,
        /// Done, or FORBIDDEN.
        reply: RpcReplyPort<Result<(), ActorError>>,
    },
    /// All members with roles and online flags (`GET /rooms/:id/members`).
    Members(RpcReplyPort<Result<Vec<Participant>, ActorError>>),
    /// A moderator takes `user_id` out of the voice session (into `moved_to`, if any).
    DisconnectVoice {
        /// Whom.
        user_id: Snowflake,
        /// The voice channel they go to.
        moved_to: Option<Snowflake>,
        /// The moderator.
        by: Snowflake,
        /// Done, or NOT_FOUND when they are not in the voice session.
        reply: RpcReplyPort<Result<(), ActorError>>,
    },
    /// Periodic: stop if nobody used the room for a while.
    IdleCheck,
    /// Stop taking requests through the directory, finish what is queued and written, then
    /// stop (hand-off to another node, a release, idle, or shutdown).
    Retire,
    /// Everything queued before [`RoomMsg::Retire`] was handled.
    RetireMarker,
    /// A node died: drop its sessions from the live set.
    NodeDown(NodeId),
    /// The directory now routes to this actor. A channel reads its community's permissions
    /// again: a change sent while it was starting (after its first read, before anything
    /// could reach it) was lost on the way, but is in storage by now.
    Registered,
}

impl RoomMsg {
    /// Whether this message is someone using the room, which postpones its idle stop. The
    /// room's own timers (idle check, voice tick, flushes), storage completions and presence
    /// notes are not: they arrive periodically or as a consequence of earlier use, and if
    /// they counted, a room would never go idle (the idle check itself would reset it).
    pub fn is_use(&self) -> bool {
        match self {
            RoomMsg::Join { .. }
            | RoomMsg::Leave { .. }
            | RoomMsg::Post { .. }
            | RoomMsg::Act { .. }
            | RoomMsg::Voice { .. }
            | RoomMsg::VoiceJoined(_)
            | RoomMsg::CallReport(_)
            | RoomMsg::Typing { .. }
            | RoomMsg::AddMember { .. }
            | RoomMsg::RemoveMember { .. }
            | RoomMsg::DeleteMessage { .. }
            | RoomMsg::Updated(_)
            | RoomMsg::DeleteRoom { .. }
            | RoomMsg::Members(_)
            | RoomMsg::DisconnectVoice { .. } => true,
            RoomMsg::Committed(_)
            | RoomMsg::Resynced(_)
            | RoomMsg::Presence(_)
            | RoomMsg::FlushPresence
            | RoomMsg::FlushReceipts
            | RoomMsg::Reprobe(_)
            | RoomMsg::AnswerMembers
            | RoomMsg::VoiceEvent(_)
            | RoomMsg::VoiceTick
            | RoomMsg::TypingExpired { .. }
            | RoomMsg::Renamed { .. }
            | RoomMsg::IdleCheck
            | RoomMsg::Retire
            | RoomMsg::RetireMarker
            | RoomMsg::NodeDown(_)
            | RoomMsg::Registered => false,
        }
    }
}
