//! Requests and events beyond posting: edits, deletions, reactions, read markers, presence.
//! Each request's ack payload is named by [`crate::v1::request::ClientEvent::reply_type`].

use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::ids::Snowflake;
use crate::v1::server::{MessageView, ReactionView};

/// Longest emoji, in bytes (a flag or a family sequence fits).
pub const MAX_EMOJI_BYTES: usize = 32;
/// Most distinct emoji on one message.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 20;

/// `message:update`: the author edits a message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMessage {
    /// The message's room (looked up from the message when absent).
    #[serde(default)]
    pub room_id: Option<Snowflake>,
    /// The message.
    pub message_id: Snowflake,
    /// New text, 1–4000 characters.
    pub content: String,
}

/// Ack payload of `message:update`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MessageReply {
    /// The message as it is now.
    pub message: MessageView,
}

/// `message:delete`: the author or a room admin turns a message into a tombstone.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMessage {
    /// The message's room (looked up from the message when absent).
    #[serde(default)]
    pub room_id: Option<Snowflake>,
    /// The message.
    pub message_id: Snowflake,
}

/// Names a message (ack of `message:delete`, `message:read`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    /// The room.
    pub room_id: Snowflake,
    /// The message.
    pub message_id: Snowflake,
}

/// `reaction:add` / `reaction:remove`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionRequest {
    /// The message's room (looked up from the message when absent).
    #[serde(default)]
    pub room_id: Option<Snowflake>,
    /// The message.
    pub message_id: Snowflake,
    /// The emoji, 1–32 bytes without spaces or control characters.
    pub emoji: String,
}

/// `reaction:updated`, and the ack of `reaction:add` / `reaction:remove`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionUpdated {
    /// The room.
    pub room_id: Snowflake,
    /// The message.
    pub message_id: Snowflake,
    /// The emoji that changed.
    pub emoji: String,
    /// Its count now.
    pub count: u32,
    /// Who added or removed it.
    pub user_id: Snowflake,
    /// Added (true) or removed (false).
    pub added: bool,
    /// Every reaction of the message now.
    pub reactions: Vec<ReactionView>,
    /// Position in the room log (0 when nothing changed: the user had already reacted so).
    pub seq: u64,
}

/// `message:read`: move the user's read marker in a room forward.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkRead {
    /// The room.
    pub room_id: Snowflake,
    /// The newest message the user has seen.
    pub message_id: Snowflake,
}

/// `message:read_receipt`: a member's read marker moved (coalesced).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    /// The room.
    pub room_id: Snowflake,
    /// The reader.
    pub user_id: Snowflake,
    /// Their newest read message.
    pub message_id: Snowflake,
}

/// A user's presence.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Deserialize,
    Serialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// Connected and active.
    Online,
    /// Connected, idle (or chose to look away).
    Away,
    /// Do not disturb.
    Dnd,
    /// In a voice channel or call (set by the server).
    InCall,
    /// No live connection.
    #[default]
    Offline,
}

impl PresenceStatus {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Online => "online",
            PresenceStatus::Away => "away",
            PresenceStatus::Dnd => "dnd",
            PresenceStatus::InCall => "in_call",
            PresenceStatus::Offline => "offline",
        }
    }
}

/// `presence:update`: the user chooses a status (online, away or dnd).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PresenceUpdate {
    /// The chosen status.
    pub status: PresenceStatus,
}

/// `user:presence_changed`: a user's presence, to the members of every room they share.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChanged {
    /// The user.
    pub user_id: Snowflake,
    /// Their status now.
    pub status: PresenceStatus,
    /// When one of their sessions was last heard from (Unix ms): about now while they are
    /// connected, the moment they left once offline; absent if unknown (the node that tracked
    /// them died with their sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
}

/// Validates an emoji: 1–32 bytes, no whitespace or control characters.
pub fn validate_emoji(emoji: &str) -> Result<(), ErrorBody> {
    if emoji.is_empty()
        || emoji.len() > MAX_EMOJI_BYTES
        || emoji.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ErrorBody::field(
            "emoji",
            "emoji must be 1-32 bytes without spaces or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_rules() {
        assert!(validate_emoji("👍").is_ok());
        assert!(validate_emoji("👨‍👩‍👧‍👦").is_ok());
        assert!(validate_emoji("").is_err());
        assert!(validate_emoji("a b").is_err());
        assert!(validate_emoji(&"x".repeat(33)).is_err());
        assert!(validate_emoji("\u{0007}").is_err());
    }

    #[test]
    fn presence_names() {
        let json = serde_json::to_string(&PresenceStatus::InCall).expect("json");
        assert_eq!(json, "\"in_call\"");
        let update: PresenceUpdate = serde_json::from_str(r#"{"status":"dnd"}"#).expect("parse");
        assert_eq!(update.status, PresenceStatus::Dnd);
        assert!(serde_json::from_str::<PresenceUpdate>(r#"{"status":"sleepy"}"#).is_err());
    }
}
