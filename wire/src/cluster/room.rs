//! The room requests and answers that cross nodes with their own types: message actions,
//! voice ops, call and stage actions (a session builds them from a client frame, the room's
//! owner applies them, wherever it runs), and the answers to REST-side room calls.
//!
//! Their JSON forms (`#[serde(tag = "op")]`) are what version 7 of the cluster protocol carried
//! as text, kept so `v7` frames still convert; version 8 encodes them natively with bincode.

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;
use crate::json_text::OpaqueJson;
use crate::v1::server::{JoinReply, Participant};

/// A member's request about a message of the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// `message:update` (author only).
    Edit {
        /// The message.
        message_id: Snowflake,
        /// New text.
        content: String,
    },
    /// `message:delete` (author or room admin).
    Delete {
        /// The message.
        message_id: Snowflake,
    },
    /// `reaction:add` / `reaction:remove`.
    React {
        /// The message.
        message_id: Snowflake,
        /// The emoji.
        emoji: String,
        /// Add (true) or remove (false).
        add: bool,
    },
    /// `message:read`: move the member's read marker forward.
    Read {
        /// The newest message seen.
        message_id: Snowflake,
    },
}

/// A voice request from a session (`voice:*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VoiceOp {
    /// `voice:join` with the client's offer.
    Join {
        /// The SDP offer.
        sdp: String,
    },
    /// `voice:signal`: an ICE candidate, or the answer to the server's offer.
    Signal {
        /// The candidate (`{candidate, sdpMid, sdpMLineIndex}`).
        candidate: Option<OpaqueJson>,
        /// The SDP answer.
        sdp: Option<String>,
    },
    /// `voice:state`: mute / deafen.
    State {
        /// Mute, if given.
        muted: Option<bool>,
        /// Deafen, if given.
        deafened: Option<bool>,
    },
    /// `voice:leave`, or the session ended.
    Leave,
    /// `voice:ice_servers`: STUN/TURN servers with fresh credentials, before a join.
    IceServers,
    /// The session is alive (every heartbeat interval).
    Beat,
    /// `stage:*`: hands, roles, removal, the end of the stage.
    Stage {
        /// What.
        action: StageAction,
        /// Whom (promote, demote, kick, ban).
        user_id: Option<Snowflake>,
    },
    /// `call:*` in a direct conversation.
    Call {
        /// What.
        action: CallAction,
    },
    // Version 11 (video, issue 20): appended last so every other op encodes as in 10; a
    // node sends them only to peers of 11 (`v8::needs`).
    /// `voice:state` naming `video` or `screen` (with mute/deafen, as `State`).
    Media {
        /// Mute, if given.
        muted: Option<bool>,
        /// Deafen, if given.
        deafened: Option<bool>,
        /// Publish the camera, if given.
        video: Option<bool>,
        /// Publish the screen share, if given.
        screen: Option<bool>,
    },
    /// `voice:subscribe`: pause or resume a participant's video.
    Subscribe {
        /// Whose video.
        user_id: Snowflake,
        /// Which.
        track: crate::v1::voice::VideoTrack,
        /// Paused or not.
        paused: bool,
        /// The largest camera layer wanted, if the client said.
        layer: Option<crate::v1::voice::VideoLayer>,
    },
}

/// What a `call:*` request does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum CallAction {
    /// The caller starts a call.
    Start,
    /// The callee answers.
    Accept,
    /// The callee refuses.
    Decline,
    /// The caller gives up before an answer.
    Cancel,
    /// Either side ends the call.
    Hangup,
}

/// What a `stage:*` request does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum StageAction {
    /// A listener asks to speak.
    HandRaise,
    /// They no longer do.
    HandLower,
    /// A host lets a listener speak.
    Promote,
    /// A host makes a speaker a listener again.
    Demote,
    /// A host removes someone from the stage.
    Kick,
    /// A host removes someone from the stage and the room for good.
    Ban,
    /// A host ends the stage: everyone is disconnected.
    End,
}

impl StageAction {
    /// The wire name (`stage:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            StageAction::HandRaise => "hand_raise",
            StageAction::HandLower => "hand_lower",
            StageAction::Promote => "promote",
            StageAction::Demote => "demote",
            StageAction::Kick => "kick",
            StageAction::Ban => "ban",
            StageAction::End => "end",
        }
    }
}

/// The answer to a [`super::RoomCall`]; each call names the variant it is answered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub enum CallAnswer {
    /// `AddMember`: the join reply (with the members).
    Joined(JoinReply),
    /// `RemoveMember`, `DeleteMessage`, `DeleteRoom`, `Updated`: done.
    Done,
    /// `Members`: the member list.
    Members(Vec<Participant>),
}

/// A reply type a [`CallAnswer`] carries: the waiting side takes its own out of the answer.
pub trait FromAnswer: Sized {
    /// `None` when the answer is of another kind (a peer that answered the wrong call).
    fn from_answer(answer: CallAnswer) -> Option<Self>;
}

impl FromAnswer for JoinReply {
    fn from_answer(answer: CallAnswer) -> Option<Self> {
        match answer {
            CallAnswer::Joined(reply) => Some(reply),
            _ => None,
        }
    }
}

impl FromAnswer for () {
    fn from_answer(answer: CallAnswer) -> Option<Self> {
        matches!(answer, CallAnswer::Done).then_some(())
    }
}

impl FromAnswer for Vec<Participant> {
    fn from_answer(answer: CallAnswer) -> Option<Self> {
        match answer {
            CallAnswer::Members(members) => Some(members),
            _ => None,
        }
    }
}
