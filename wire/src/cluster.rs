//! The inter-node protocol: versioned bincode frames over QUIC streams (mutual TLS).
//!
//! Framing: `[u32 big-endian length][u8 version][body]`, the length counting the version byte
//! and the body. A frame of a version the node does not speak, longer than the receiver's
//! limit, or whose body does not decode is refused with a [`PeerFrameError`]; the receiver
//! logs it and closes that peer's connection, nothing else.
//!
//! Streams: each node opens one control stream to every peer (a [`PeerMsg::Hello`] first,
//! then heartbeats) and one unidirectional stream per room it talks to on that peer, so one
//! room's traffic never waits behind another's. Room events travel as the already-encoded
//! WebSocket frames, which the receiving node pushes to its local sessions as they are (one
//! copy per node: the Manifold pattern).
//!
//! Encoding (version 8): bincode 2's native `Encode`/`Decode`, every payload typed: ids are
//! [`Snowflake`]s (a varint), posts are [`SendMessage`](crate::v1::client::SendMessage)s,
//! actions and voice ops the types of [`room`], room records
//! [`RoomRecord`](crate::room::RoomRecord)s, and each [`RoomCall`] is answered by the
//! [`room::CallAnswer`] variant it names, or an [`ErrorBody`]. Native derives, not serde:
//! the client types these reuse are shaped for JSON (`#[serde(tag)]`, `skip_serializing_if`,
//! `serde_json::Value`), which a non-self-describing format cannot carry. The one exception
//! is free-form client JSON (an ICE candidate, an error's details), which travels as its
//! text ([`crate::json_text`]).
//!
//! Versions: a node speaks every version from [`MIN_PROTOCOL_VERSION`] to its configured
//! maximum (at most [`PROTOCOL_VERSION`]). A link speaks the highest version both ends know,
//! settled by the QUIC handshake's ALPN (one protocol name per version, see the node's
//! `cluster::tls`), never in-band: a node of the release before version 8 closes the
//! connection on the first frame of another version. [`encode_at`] writes a frame of the
//! link's version (downgraded by [`v7::downgrade`] for a version 7 link; refused when the
//! version cannot carry the message, see [`v8`] and [`v9`]), and [`decode_within`] reads any version in
//! the node's range (version 7 upgraded by [`v7::upgrade`]). Members announce their range in
//! [`MemberInfo::protocols`].
//!
//! Changing the protocol: a field or variant added to any type reachable from [`PeerMsg`]
//! (including the client types it reuses, and enums such as `ErrorCode`, whose variants are
//! encoded by index) changes the encoding, so it is a new version: bump
//! [`PROTOCOL_VERSION`], keep the previous version's types in a module like [`v7`] (copied
//! as they were) with conversions both ways, and give it an ALPN name. Drop the oldest
//! module (raising [`MIN_PROTOCOL_VERSION`]) one release later, once no cluster runs it.

mod frame;
pub mod room;
mod room_ops;
pub mod swim;
mod user;
pub mod v10;
pub mod v7;
pub mod v8;
pub mod v9;

pub use frame::{check_len, decode, decode_within, encode, encode_at};
pub use room_ops::{RoomCall, RoomDelivery, RoomOp};
pub use user::{ChosenStatus, PresenceOp, UserOp};

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ErrorBody;
use crate::ids::Snowflake;
use crate::v1::search::{IndexQuery, SearchHit};
use room::VoiceOp;

/// The newest version of the inter-node protocol this build speaks (the version byte).
/// (2: room logs with seq/epoch, message actions, presence; 5: account changes for a user's
/// sessions, acknowledged typing, leaves naming their user, renames; 6: joins say whether
/// the ack lists the members; 7: a node's own re-join that cannot be served yet is answered
/// with `JoinLater`; 8: typed payloads instead of JSON text, ids as snowflakes, members
/// announce the versions they speak; 9: `RoomCall::DisconnectVoice`, see [`v8`]; 10:
/// `PeerMsg::Search` and `PeerMsg::SearchAnswer`, see [`v9`]; `PresenceOp::FocusUntimed` and
/// `PresenceOp::PushUntimed`, in [`v8`]'s `needs`; 11: `PeerMsg::Swim` and `PeerMsg::HandedOff`,
/// `VoiceOp::Media` and `VoiceOp::Subscribe` (video), `PresenceOp::Focus` and `PresenceOp::Push`
/// with their times (version 10's, untimed, keep their places), see [`v10`].)
pub const PROTOCOL_VERSION: u8 = 11;

/// The oldest version this build still speaks (see [`v7`]): a node talks to a peer at the
/// highest version both speak, so a cluster is upgraded one node at a time.
pub const MIN_PROTOCOL_VERSION: u8 = 7;

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
    /// The message has a part that the link's version cannot carry (it was added since).
    #[error("a version {version} link cannot carry this message (it needs version {needs})")]
    TooNew {
        /// The link's version.
        version: u8,
        /// The oldest version that carries the message.
        needs: u8,
    },
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
    /// The protocol versions it speaks, `(min, max)` (`(7, 7)` for a node heard through
    /// version 7, which cannot say).
    pub protocols: (u8, u8),
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
    /// A message search over `rooms`, which the receiver owns (it indexes them); the sender
    /// checked that its user may read them. Answer: [`PeerMsg::SearchAnswer`] with the same
    /// `call_id`. Version 10.
    Search {
        /// Matches the answer to the request.
        call_id: u64,
        /// The rooms to search.
        rooms: Vec<Snowflake>,
        /// What to look for.
        query: IndexQuery,
    },
    /// The hits of a [`PeerMsg::Search`], or why it failed. Version 10.
    SearchAnswer {
        /// The request's id.
        call_id: u64,
        /// Hits in the query's order.
        result: Result<Vec<SearchHit>, ErrorBody>,
    },
    // ---- Version 11 (branch `swim`): SWIM membership. Appended last; keep these together
    // (another branch may append its own version 11 variants after them). ----
    /// A packet of the SWIM membership (`cluster.membership = "swim"`): foca's bytes, encoded
    /// by [`swim::SwimCodec`] (probes, acks, announces, gossip). Sent on the control stream;
    /// lost ones are part of SWIM's model (a probe unanswered in time). Version 11.
    Swim {
        /// The encoded foca packet.
        packet: Vec<u8>,
    },
    /// Bounded hand-off: the sender ran `room` until placement moved it to the receiver, and
    /// has now stopped it (everything it acknowledged is written); the receiver starts it at
    /// once rather than at its next request. Version 11.
    HandedOff {
        /// The room.
        room: Snowflake,
    },
    // ---- end of version 11 (swim) ----
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
        bytes[4] = PROTOCOL_VERSION + 1;
        assert_eq!(
            decode(&bytes[4..]),
            Err(PeerFrameError::Version(PROTOCOL_VERSION + 1))
        );
        assert!(matches!(
            decode(&[PROTOCOL_VERSION, 0xff, 0xff, 0xff]),
            Err(PeerFrameError::Decode(_))
        ));
        assert_eq!(decode(&[]), Err(PeerFrameError::Empty));
    }
}
