//! Version 7 of the inter-node protocol, exactly as the previous release speaks it (serde
//! bincode; ids as `u64`; posts, actions, voice ops, room records and call answers as JSON
//! text), and its conversions to and from version 8: a frame of version 7 is upgraded when it
//! is decoded, and a node whose link negotiated version 7 downgrades what it sends. Delete
//! this module (and `MIN_PROTOCOL_VERSION` becomes 8) once no cluster runs the release
//! before version 8.

mod convert;

use serde::{Deserialize, Serialize};

// Unchanged since version 7 (copy them here before changing them in version 8+).
use super::{ChosenStatus, MemberState, NodeId};
use crate::v1::rich::PresenceStatus;

pub use convert::{downgrade, upgrade};

/// One member of the cluster, as gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node id.
    pub node_id: NodeId,
    /// Start time (Unix ms): a restarted node has a newer incarnation and replaces the old.
    pub incarnation: u64,
    /// Where its QUIC endpoint listens.
    pub quic_addr: String,
    /// Where its HTTP/WebSocket front door listens.
    pub http_addr: String,
    /// State, as the sender sees it.
    pub state: MemberState,
    /// Room actors it runs (its own figure, gossiped).
    pub rooms: u32,
    /// Client sessions connected to it.
    pub sessions: u32,
}

/// Everything one node sends another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// First frame of a control stream: who is dialling.
    Hello(MemberInfo),
    /// Periodic liveness, carrying the sender's view of every member (gossip).
    Heartbeat {
        /// The sender, as it sees itself.
        from: MemberInfo,
        /// Every member it knows.
        members: Vec<MemberInfo>,
    },
    /// A request for the room `room`, which the receiver owns (or should).
    ToRoom {
        /// Room id.
        room: u64,
        /// The node whose session or handler asked, where answers go.
        origin: NodeId,
        /// Forwarding hops so far (a request bouncing between disagreeing views stops).
        hops: u8,
        /// The request.
        op: RoomOp,
    },
    /// Something the owner of `room` sends a node where members' sessions live.
    FromRoom {
        /// Room id.
        room: u64,
        /// What.
        delivery: RoomDelivery,
    },
    /// For the presence actor of `user`, which the receiver owns (or should).
    ToPresence {
        /// The user.
        user: u64,
        /// What.
        op: PresenceOp,
    },
    /// Frames for every session of `user` on the receiver (calls ring all of a user's
    /// devices, whichever rooms they follow).
    ToUser {
        /// The user.
        user: u64,
        /// Encoded server frames, newline-separated.
        frames: Vec<u8>,
    },
    /// Something about the account of `user` that every one of their sessions on the receiver
    /// must know now (a rename, a logout).
    ForUser {
        /// The user.
        user: u64,
        /// What.
        op: UserOp,
    },
}

/// Account changes a user's live sessions follow, on every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserOp {
    /// The account was renamed: sessions speak under the new name from now on.
    Renamed {
        /// The new username.
        username: String,
    },
    /// Sign-in revoked (logout, refresh-token reuse): close the sessions that were opened
    /// with tokens of `family` (all of the user's sessions when `None`) with this close code.
    Close {
        /// The refresh-token family (one sign-in) whose sessions end.
        family: Option<String>,
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// Requests to a user's presence actor, from that user's sessions (or a room asking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PresenceOp {
    /// A session of the user connected.
    Attach {
        /// The session (cluster-unique id).
        session_id: u64,
    },
    /// A session is alive (every 15 s); `idle_ms`: time since the client last did something.
    Beat {
        /// The session.
        session_id: u64,
        /// Milliseconds since the client's last action.
        idle_ms: u64,
        /// The status this session last chose, so a presence actor that took over (its
        /// predecessor's node died or placement changed) learns it again.
        chosen: Option<ChosenStatus>,
    },
    /// A session ended.
    Detach {
        /// The session.
        session_id: u64,
    },
    /// The user chose a status (online, away, dnd).
    Set {
        /// The status and when it was chosen.
        chosen: ChosenStatus,
    },
    /// From a voice channel, a stage or a conversation's call: the user is in it (sent again
    /// every heartbeat while they are, so it lapses if the channel's node dies) or left it.
    InCall {
        /// The channel's room.
        channel: u64,
        /// In it now.
        on: bool,
        /// When the room said so (Unix ms): ops travel on separate tasks, so a confirmation
        /// sent just before a leave may arrive after it; the newer one wins (a leave on a tie).
        at_ms: u64,
    },
    /// A room wants the user's current status (it started, or lost its source).
    Probe {
        /// The room.
        room: u64,
    },
}

/// Requests to a room's owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoomOp {
    /// `room:join` from a session on the origin node.
    Join {
        /// The session (cluster-unique id).
        session_id: u64,
        /// Its user.
        user_id: u64,
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
        user_id: u64,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// `message:send` from a session.
    Post {
        /// The session (for the ack).
        session_id: u64,
        /// Author id.
        user_id: u64,
        /// Author name.
        username: String,
        /// The `message:send` payload as JSON.
        post_json: String,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// An edit, deletion, reaction or read marker from a session.
    Act {
        /// The session (for the ack).
        session_id: u64,
        /// Who.
        user_id: u64,
        /// Their username.
        username: String,
        /// The action as JSON.
        action_json: String,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A `voice:*` request from a session (the channel's media lives on its owner).
    Voice {
        /// The session (acks and signalling go back to it).
        session_id: u64,
        /// Its user.
        user_id: u64,
        /// Their username.
        username: String,
        /// The voice op as JSON.
        op_json: String,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A user's presence changed (from their presence actor).
    Presence {
        /// The user.
        user_id: u64,
        /// The status.
        status: PresenceStatus,
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
        user_id: u64,
        /// Start or stop.
        start: bool,
        /// The client frame id to acknowledge.
        req_id: Option<u64>,
    },
    /// A member's account was renamed: the room shows and stamps the new name.
    Renamed {
        /// Who.
        user_id: u64,
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

/// REST-side requests to a room (each answered with JSON or an error body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoomCall {
    /// Join by code: become a member. Answer: `JoinReply`.
    AddMember {
        /// User id.
        user_id: u64,
        /// Username.
        username: String,
    },
    /// Leave the room for good, or be removed by an admin. Answer: `null`.
    RemoveMember {
        /// User id.
        user_id: u64,
        /// The admin who removed them (`None`: they left).
        #[serde(default)]
        removed_by: Option<u64>,
    },
    /// Tombstone a message. Answer: `null`.
    DeleteMessage {
        /// Message id.
        message_id: u64,
        /// Who asks.
        by: u64,
    },
    /// The stored room record changed (its JSON). No answer.
    Updated {
        /// The `RoomRecord` as JSON.
        room_json: String,
    },
    /// Delete the room. Answer: `null`.
    DeleteRoom {
        /// Who asks.
        by: u64,
    },
    /// The member list. Answer: `[Participant]`.
    Members,
}

/// What a room's owner sends to a node with members' sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        except_user: Option<u64>,
        /// Newest message id in `frames`, if they carry messages.
        last: Option<u64>,
        /// Encoded WebSocket frames.
        frames: Vec<u8>,
    },
    /// The room's actor stopped here (handed off, or this node is draining): sessions re-join
    /// wherever the room lives now, from the last message they got.
    Closed,
    /// The answer to a [`RoomOp::Call`]: JSON, or a client error body as JSON.
    CallResult {
        /// The call.
        call_id: u64,
        /// `Ok(json)` or `Err(error body json)`.
        result: Result<String, String>,
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
