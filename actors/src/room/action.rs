//! What a member can do to existing messages and voice channels. The request types cross
//! nodes, so they are defined in `wire` (one place for the cluster protocol) and re-exported
//! here; the ack payload of a message action stays local.

use serde::Serialize;
pub use voiceflow_wire::cluster::room::{Action, CallAction, StageAction, VoiceOp};
use voiceflow_wire::v1::rich::{MessageRef, MessageReply, ReactionUpdated};

/// The ack payload of an [`Action`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ActReply {
    /// `message:update`: the message now (boxed: a message view is far larger than the rest).
    Message(Box<MessageReply>),
    /// `message:delete`, `message:read`: the message concerned.
    Ref(MessageRef),
    /// `reaction:add` / `reaction:remove`: the reactions now.
    Reaction(ReactionUpdated),
}
