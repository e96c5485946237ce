//! Direct conversations and 1:1 calls. A call lives in a direct conversation (a room of kind
//! `dm`): the caller sends `call:start`, the callee's sessions get `call:incoming`, either side
//! follows the call through `call:state` and `call:ended`; once the callee accepts, both sides
//! join the conversation's voice session with the usual `voice:join` signalling.

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;

/// `POST /api/v1/dms`: the direct conversation with a user (created on first use).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenDm {
    /// The other person.
    pub user_id: Snowflake,
}

/// `call:start` / `call:accept` / `call:decline` / `call:cancel` / `call:hangup`: the call of a
/// direct conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRequest {
    /// The direct conversation.
    pub room_id: Snowflake,
}

/// Where a call is (the states of the call's state machine, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    /// Not started.
    Idle,
    /// Started; the callee has no session to ring yet.
    Dialing,
    /// The callee's sessions are ringing.
    Ringing,
    /// Accepted; media connections are being set up (or re-established).
    Connecting,
    /// Both sides' media is up.
    Connected,
    /// Over; the participants are being disconnected.
    Ending,
    /// Over.
    Ended,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Nobody answered in time.
    Missed,
    /// The callee declined.
    Declined,
    /// The caller gave up before an answer.
    Cancelled,
    /// The callee was already in a call.
    Busy,
    /// One side hung up.
    HungUp,
    /// One side's connection dropped and did not come back within the grace period.
    Disconnected,
    /// The media connections never came up.
    Failed,
}

impl EndReason {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Missed => "missed",
            EndReason::Declined => "declined",
            EndReason::Cancelled => "cancelled",
            EndReason::Busy => "busy",
            EndReason::HungUp => "hung_up",
            EndReason::Disconnected => "disconnected",
            EndReason::Failed => "failed",
        }
    }
}

/// A call as it is now: the ack of every `call:*` request and the `call:state` event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    /// The call.
    pub call_id: Snowflake,
    /// Its direct conversation.
    pub room_id: Snowflake,
    /// Where it is.
    pub state: CallPhase,
    /// Who called.
    pub caller_id: Snowflake,
    /// Who is called.
    pub callee_id: Snowflake,
    /// When both sides' media first came up (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
}

/// `call:incoming`: to every session of the callee.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallIncoming {
    /// The call.
    pub call_id: Snowflake,
    /// Its direct conversation.
    pub room_id: Snowflake,
    /// Who calls.
    pub caller_id: Snowflake,
    /// Their username.
    pub caller_name: String,
}

/// `call:ended`: to every session of both sides.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEnded {
    /// The call.
    pub call_id: Snowflake,
    /// Its direct conversation.
    pub room_id: Snowflake,
    /// Why.
    pub reason: EndReason,
    /// How long both sides were connected (0 if never).
    pub duration_ms: u64,
}

/// Server event names.
pub mod events {
    use crate::v1::event::ServerEventKind;

    /// To the callee's sessions when a call rings.
    pub const INCOMING: &str = ServerEventKind::CallIncoming.name();
    /// Every change of a call's state, to both sides.
    pub const STATE: &str = ServerEventKind::CallState.name();
    /// The call is over, to both sides.
    pub const ENDED: &str = ServerEventKind::CallEnded.name();
}
