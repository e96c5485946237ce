//! The inter-node protocol: versioned bincode frames over QUIC streams (mutual TLS).
//!
//! Framing: `[u32 big-endian length][u8 version][bincode body]`, the length counting the
//! version byte and the body. A frame of another version, longer than the receiver's limit, or
//! whose body does not decode is refused with a [`PeerFrameError`]; the receiver logs it and
//! closes that peer's connection, nothing else.
//!
//! Streams: each node opens one control stream to every peer (a [`PeerMsg::Hello`] first,
//! then heartbeats) and one unidirectional stream per room it talks to on that peer, so one
//! room's traffic never waits behind another's. Ids travel as plain `u64`; client payloads
//! (posts, replies, errors) travel as their JSON text, exactly as the client protocol defines
//! them, and room events as the already-encoded WebSocket frames, which the receiving node
//! pushes to its local sessions as they are (one copy per node: the Manifold pattern).

pub mod room;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ErrorBody;
use crate::ids::Snowflake;
use crate::room::RoomRecord;
use crate::v1::client::SendMessage;
use room::{Action, CallAnswer, VoiceOp};

/// The version byte of every inter-node frame this build speaks.
/// (2: room logs with seq/epoch, message actions, presence; 5: account changes for a user's
/// sessions, acknowledged typing, leaves naming their user, renames; 6: joins say whether
/// the ack lists the members; 7: a node's own re-join that cannot be served yet is answered
/// with `JoinLater`; 8: typed payloads instead of JSON text, ids as snowflakes.)
pub const PROTOCOL_VERSION: u8 = 8;

/// A node's id: the node-id bits of its snowflakes.
pub type NodeId = u16;

/// Why a received frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerFrameError {
    /// The frame is longer than the limit.
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// The peer speaks another protocol version.
    #[error("unknown protocol version {0}")]
    Version(u8),
    /// The frame has no version byte.
    #[error("empty frame")]
    Empty,
    /// The body does not decode as a [`PeerMsg`].
    #[error("undecodable frame: {0}")]
    Decode(String),
}

/// A member's state as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub enum MemberState {
    /// Heard from recently; owns rooms.
    Up,
    /// Draining: owns no rooms any more, still hands off what it had.
    Leaving,
    /// Left gracefully; forgotten for placement and quorum.
    Left,
    /// Not heard from within the failure timeout; owns no rooms, still counts for quorum.
    Down,
}

/// One member of the cluster, as gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
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
        room: Snowflake,
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
        room: Snowflake,
        /// What.
        delivery: RoomDelivery,
    },
    /// For the presence actor of `user`, which the receiver owns (or should).
    ToPresence {
        /// The user.
        user: Snowflake,
        /// What.
        op: PresenceOp,
    },
    /// Frames for every session of `user` on the receiver (calls ring all of a user's
    /// devices, whichever rooms they follow).
    ToUser {
        /// The user.
        user: Snowflake,
        /// Encoded server frames, newline-separated.
        frames: Vec<u8>,
    },
    /// Something about the account of `user` that every one of their sessions on the receiver
    /// must know now (a rename, a logout).
    ForUser {
        /// The user.
        user: Snowflake,
        /// What.
        op: UserOp,
    },
}

/// Account changes a user's live sessions follow, on every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
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

/// A status a user chose, and when (Unix ms): the newest choice wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ChosenStatus {
    /// Online, away or dnd.
    pub status: crate::v1::rich::PresenceStatus,
    /// When it was chosen.
    pub at_ms: u64,
}

/// Requests to a user's presence actor, from that user's sessions (or a room asking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
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
        channel: Snowflake,
        /// In it now.
        on: bool,
        /// When the room said so (Unix ms): ops travel on separate tasks, so a confirmation
        /// sent just before a leave may arrive after it; the newer one wins (a leave on a tie).
        at_ms: u64,
    },
    /// A room wants the user's current status (it started, or lost its source).
    Probe {
        /// The room.
        room: Snowflake,
    },
}

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

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a message as one length-prefixed frame.
pub fn encode(msg: &PeerMsg) -> Vec<u8> {
    // Plain data: encoding into a Vec cannot fail.
    let body = bincode::encode_to_vec(msg, config()).unwrap_or_default();
    let len = (body.len() + 1) as u32;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&body);
    out
}

/// Checks a frame's announced length (the 4-byte prefix) against `limit`.
pub fn check_len(prefix: [u8; 4], limit: usize) -> Result<usize, PeerFrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(PeerFrameError::TooLarge { len, limit });
    }
    if len == 0 {
        return Err(PeerFrameError::Empty);
    }
    Ok(len)
}

/// How much memory decoding a frame may claim, as a multiple of the frame's length.
///
/// bincode sizes a string from its announced length before reading it, so without a budget
/// a 14-byte frame announcing a string of 2^40 bytes aborts the process. Under this budget
/// (rounded up to a power of 16 from 64 KiB) such a claim fails as `LimitExceeded` instead;
/// legitimate frames claim at most 8 times their length (a one-byte varint decodes to a `u64`).
const DECODE_BUDGET_FACTOR: usize = 16;

/// Decodes a frame body as a [`PeerMsg`] within the [`DECODE_BUDGET_FACTOR`] budget.
fn decode_body(body: &[u8]) -> Result<(PeerMsg, usize), bincode::error::DecodeError> {
    // bincode's limit is a const generic: pick the smallest tier that fits the budget.
    fn within<const LIMIT: usize>(
        body: &[u8],
    ) -> Result<(PeerMsg, usize), bincode::error::DecodeError> {
        bincode::decode_from_slice(body, config().with_limit::<LIMIT>())
    }
    match body.len().saturating_mul(DECODE_BUDGET_FACTOR) {
        n if n <= 1 << 16 => within::<{ 1 << 16 }>(body),
        n if n <= 1 << 20 => within::<{ 1 << 20 }>(body),
        n if n <= 1 << 24 => within::<{ 1 << 24 }>(body),
        n if n <= 1 << 28 => within::<{ 1 << 28 }>(body),
        n if n <= 1 << 30 => within::<{ 1 << 30 }>(body),
        // Only frames over 64 MiB get here (the default frame limit is 16 MiB).
        _ => within::<{ usize::MAX }>(body),
    }
}

/// Decodes a frame's contents (the bytes after the length prefix).
pub fn decode(frame: &[u8]) -> Result<PeerMsg, PeerFrameError> {
    let (&version, body) = frame.split_first().ok_or(PeerFrameError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(PeerFrameError::Version(version));
    }
    let (msg, used) = decode_body(body).map_err(|e| PeerFrameError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(PeerFrameError::Decode(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod payloads;

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: PeerMsg) {
        let bytes = encode(&msg);
        let len = check_len(bytes[..4].try_into().expect("prefix"), 1 << 20).expect("len");
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(decode(&bytes[4..]).expect("decodes"), msg);
    }

    #[test]
    fn every_message_kind_roundtrips() {
        for msg in payloads::samples() {
            roundtrip(msg);
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(
            check_len(100u32.to_be_bytes(), 10),
            Err(PeerFrameError::TooLarge {
                len: 100,
                limit: 10
            })
        );
        assert_eq!(
            check_len(0u32.to_be_bytes(), 10),
            Err(PeerFrameError::Empty)
        );
        let mut bytes = encode(&PeerMsg::FromRoom {
            room: Snowflake(1),
            delivery: RoomDelivery::Closed,
        });
        bytes[4] = 9;
        assert_eq!(decode(&bytes[4..]), Err(PeerFrameError::Version(9)));
        assert!(matches!(
            decode(&[PROTOCOL_VERSION, 0xff, 0xff, 0xff]),
            Err(PeerFrameError::Decode(_))
        ));
        assert_eq!(decode(&[]), Err(PeerFrameError::Empty));
    }
}
