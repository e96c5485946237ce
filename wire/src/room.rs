//! A room's stored record: what storage keeps and what a room's owner is told when it changes
//! (`RoomCall::Updated`), so it is part of the cluster protocol and lives here; `schema`
//! re-exports it. Its JSON form (storage) and its bincode form (cluster) are independent: a
//! field added here changes the cluster protocol (see `cluster`'s module docs).

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;

/// Room-level switches chosen by the admin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct RoomSettings {
    /// Listed by `GET /rooms` and joinable by anyone who has the id.
    pub is_public: bool,
    /// Reserved for guest accounts.
    pub allow_guests: bool,
    /// Reserved for admin-approved joins.
    pub require_approval: bool,
    /// Whether messages are kept in the log.
    pub record_messages: bool,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            is_public: true,
            allow_guests: false,
            require_approval: false,
            record_messages: true,
        }
    }
}

/// A room (`rooms_by_id`, with `rooms_by_code` pointing at it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct RoomRecord {
    /// Primary key; its timestamp is the room's creation time (the floor for history walks).
    pub id: Snowflake,
    /// 3–100 characters.
    pub name: String,
    /// Up to 500 characters.
    pub description: String,
    /// 2–500 members.
    pub max_users: u32,
    /// Switches.
    pub settings: RoomSettings,
    /// Unique short join code.
    pub join_code: String,
    /// The creator (first admin).
    pub created_by: Snowflake,
    /// Creation time.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
    /// Text, voice channel or stage (fixed at creation).
    #[serde(default)]
    pub kind: RoomKind,
    /// Users banned from the room: they cannot become members again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned: Vec<Snowflake>,
}

/// What a room is for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// A chat room.
    #[default]
    Text,
    /// A voice channel: its members talk over the SFU (and chat beside it).
    Voice,
    /// A stage: hosts and speakers talk, listeners listen and raise hands.
    Stage,
    /// A direct conversation between two users (and their 1:1 calls).
    Dm,
}

impl RoomKind {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Text => "text",
            RoomKind::Voice => "voice",
            RoomKind::Stage => "stage",
            RoomKind::Dm => "dm",
        }
    }

    /// Inverse of [`RoomKind::as_str`].
    pub fn parse(s: &str) -> Option<RoomKind> {
        Some(match s {
            "text" => RoomKind::Text,
            "voice" => RoomKind::Voice,
            "stage" => RoomKind::Stage,
            "dm" => RoomKind::Dm,
            _ => return None,
        })
    }
}
