//! What travels to and from a room's owner: requests from sessions ([`RoomOp`]), REST-side
//! calls ([`RoomCall`]) and what the owner sends back to nodes with members' sessions
//! ([`RoomDelivery`]).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::NodeId;
use super::room::{Action, CallAnswer, VoiceOp};
use crate::ErrorBody;
use crate::ids::Snowflake;
use crate::room::RoomRecord;
use crate::v1::client::SendMessage;

/// Requests to a room's owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum RoomOp {
    /// `room:join` from a session on the origin node.
    Join {
        /// The session (cluster-unique id).
        session_id: u64,
        /// Its user.
        user_id: Snowflake,
        /// Their username.
        username: String,
        /// Last room-log seq the client saw.
        since: Option<u64>,
        /// The log epoch of `since`.
        epoch: Option<u64>,
        /// Whether the ack lists the members.
        members: bool,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// `room:leave`, or the session closed.
    Leave {
        /// The session.
        session_id: u64,
        /// Its user (a non-member's leave is refused).
        user_id: Snowflake,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// `message:send` from a session.
    Post {
        /// The session (for the ack).
        session_id: u64,
        /// Author id.
        user_id: Snowflake,
        /// Author name.
        username: String,
        /// The `message:send` payload.
        post: SendMessage,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// An edit, deletion, reaction or read marker from a session.
    Act {
        /// The session (for the ack).
        session_id: u64,
        /// Who.
        user_id: Snowflake,
        /// Their username.
        username: String,
        /// The action.
        action: Action,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A `voice:*` request from a session (the channel's media lives on its owner).
    Voice {
        /// The session (acks and signalling go back to it).
        session_id: u64,
        /// Its user.
        user_id: Snowflake,
        /// Their username.
        username: String,
        /// The voice op.
        op: VoiceOp,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A user's presence changed (from their presence actor).
    Presence {
        /// The user.
        user_id: Snowflake,
        /// The status.
        status: crate::v1::rich::PresenceStatus,
        /// Last seen, once offline.
        last_seen: Option<u64>,
        /// Orders reports.
        version: u64,
        /// The reporting node.
        source: NodeId,
    },
    /// `typing:start` / `typing:stop`.
    Typing {
        /// The session (only a session subscribed to the room may type in it).
        session_id: u64,
        /// Who.
        user_id: Snowflake,
        /// Start or stop.
        start: bool,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A member's account was renamed: the room shows and stamps the new name.
    Renamed {
        /// Who.
        user_id: Snowflake,
        /// The new name.
        username: String,
    },
    /// A REST handler's request; the answer comes back as [`RoomDelivery::CallResult`].
    Call {
        /// Matches the answer to the waiting handler.
        call_id: u64,
        /// What.
        call: RoomCall,
    },
    /// The sender is about to start this room's actor: stop yours first (after finishing what
    /// it acknowledged). Answered by [`RoomDelivery::Released`].
    Release {
        /// Matches the answer.
        call_id: u64,
    },
}

/// REST-side requests to a room, each answered with the [`CallAnswer`] it names, or an
/// [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum RoomCall {
    /// Join by code: become a member. Answer: [`CallAnswer::Joined`].
    AddMember {
        /// User id.
        user_id: Snowflake,
        /// Username.
        username: String,
    },
    /// Leave the room for good, or be removed by an admin. Answer: [`CallAnswer::Done`].
    RemoveMember {
        /// User id.
        user_id: Snowflake,
        /// The admin who removed them (`None`: they left).
        removed_by: Option<Snowflake>,
    },
    /// Tombstone a message. Answer: [`CallAnswer::Done`].
    DeleteMessage {
        /// Message id.
        message_id: Snowflake,
        /// Who asks.
        by: Snowflake,
    },
    /// The stored room record changed. No answer (a `Done` nobody waits for).
    Updated {
        /// The record now.
        room: Box<RoomRecord>,
    },
    /// Delete the room. Answer: [`CallAnswer::Done`].
    DeleteRoom {
        /// Who asks.
        by: Snowflake,
    },
    /// The member list. Answer: [`CallAnswer::Members`].
    Members,
    /// A moderator disconnects `user_id` from the room's voice session, or moves them to
    /// `moved_to` (their sessions get `voice:moved` and join there). Answer:
    /// [`CallAnswer::Done`], or NOT_FOUND when they are not in it. Version 9.
    DisconnectVoice {
        /// Whom.
        user_id: Snowflake,
        /// The voice channel they go to, if any.
        moved_to: Option<Snowflake>,
        /// The moderator.
        by: Snowflake,
    },
}

/// What a room's owner sends to a node with members' sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum RoomDelivery {
    /// Frames for one session (acks, replay). `last` moves its resume point in this room.
    ToSession {
        /// The session.
        session_id: u64,
        /// Newest message id these frames bring the session to.
        last: Option<u64>,
        /// Encoded WebSocket frames.
        frames: Vec<u8>,
    },
    /// The session is now subscribed: the fan-outs after this include it.
    Subscribed {
        /// The session.
        session_id: u64,
    },
    /// The session no longer receives this room (removed, or the room was deleted).
    Forget {
        /// The session.
        session_id: u64,
    },
    /// One room event for every subscribed session on the receiving node.
    Fanout {
        /// Sessions of this user are skipped (their own typing, say).
        except_user: Option<Snowflake>,
        /// Newest message id in `frames`, if they carry messages.
        last: Option<u64>,
        /// Encoded WebSocket frames.
        frames: Vec<u8>,
    },
    /// The room's actor stopped here (handed off, or this node is draining): sessions re-join
    /// wherever the room lives now, from the last message they got.
    Closed,
    /// The answer to a [`RoomOp::Call`].
    CallResult {
        /// The call.
        call_id: u64,
        /// The answer the call names, or the client error.
        result: Result<CallAnswer, ErrorBody>,
    },
    /// A join the session's node sent by itself (a re-join, no client request) cannot be
    /// served yet (the room is moving, or storage is briefly out of reach): it should try
    /// again shortly rather than wait for its confirmation check.
    JoinLater {
        /// The session.
        session_id: u64,
    },
    /// The answer to a [`RoomOp::Release`].
    Released {
        /// The call.
        call_id: u64,
        /// `true`: the receiver is starting the room itself and wins; try again later.
        busy: bool,
    },
}
