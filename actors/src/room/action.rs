//! What a member can do to existing messages, as one serializable type: the session builds
//! it from a client frame, the cluster forwards it as JSON, the room applies it.

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::rich::{MessageRef, MessageReply, ReactionUpdated};

/// A member's request about a message of the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The ack payload of an [`Action`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ActReply {
    /// `message:update`: the message now.
    Message(MessageReply),
    /// `message:delete`, `message:read`: the message concerned.
    Ref(MessageRef),
    /// `reaction:add` / `reaction:remove`: the reactions now.
    Reaction(ReactionUpdated),
}

/// A voice request from a session (`voice:*`), forwarded between nodes as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        candidate: Option<serde_json::Value>,
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
}

/// What a `call:*` request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
