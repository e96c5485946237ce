//! Records as stored. Times are Unix milliseconds; ids are snowflakes.

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;

/// A user account (`users_by_id`, with `users_by_email` / `users_by_username` pointing at it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Primary key.
    pub id: Snowflake,
    /// Unique, 3–20 of letters, digits, underscore. Compared case-insensitively.
    pub username: String,
    /// Unique, stored lower-cased.
    pub email: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Optional avatar URL.
    pub avatar_url: Option<String>,
    /// Creation time.
    pub created_at: u64,
}

// The room record crosses nodes (a room's owner learns of edits), so it is defined in `wire`;
// storage keeps its name for it.
pub use voiceflow_wire::room::{RoomKind, RoomRecord, RoomSettings};

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May edit/delete the room and delete any message.
    Admin,
    /// Ordinary member.
    Member,
}

impl Role {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// A membership row (`members_by_room` and `rooms_by_user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The room.
    pub room_id: Snowflake,
    /// The user.
    pub user_id: Snowflake,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub joined_at: u64,
}

/// A message in a room's log (`messages` partitioned by (room_id, bucket), id descending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Snowflake id; orders the log.
    pub id: Snowflake,
    /// The room.
    pub room_id: Snowflake,
    /// Author.
    pub user_id: Snowflake,
    /// Author's username at send time.
    pub username: String,
    /// Text; empty once deleted.
    pub content: String,
    /// Kind.
    pub kind: MessageType,
    /// Client retry key, unique per (room, user).
    pub nonce: Option<String>,
    /// Creation time.
    pub created_at: u64,
    /// Set when the message became a tombstone.
    pub deleted_at: Option<u64>,
    /// Edits, replies, reactions, attachment and the log position (one JSON column in CQL).
    #[serde(default)]
    pub extra: MessageExtra,
}

/// The parts of a message that change after it is written, or that few messages have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageExtra {
    /// The room-log position of the message's latest change (creation, edit, delete, reaction).
    #[serde(default)]
    pub seq: u64,
    /// When the author last edited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    /// The message this one replies to (same room), as it was then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyRef>,
    /// Reactions, in the order each emoji was first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The attachment of a `file` / `voice_note` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<Snowflake>,
    /// It says `@everyone` or `@here` and its author may ping everyone (`mention_everyone` in
    /// a channel, an admin elsewhere); written by the room, never by the client.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_everyone: bool,
    /// With `mentions_everyone`: it says `@here` but not `@everyone`, so it reaches only those
    /// online when it was posted (a `user_mentions` row each).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_here: bool,
    /// Users it mentions (`<@id>`) who may read the room; written by the room on post and
    /// edit, emptied with the content on deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Snowflake>,
    /// Community roles it mentions (`<@&id>`) that exist in the channel's community.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_roles: Vec<Snowflake>,
}

/// The parent of a reply, copied when the reply is written (shown even if the parent is
/// edited or deleted later, like a quote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRef {
    /// The parent message.
    pub id: Snowflake,
    /// Its author.
    pub user_id: Snowflake,
    /// Its author's username.
    pub username: String,
    /// Its first 100 characters.
    pub snippet: String,
}

/// One emoji on a message and who put it there (each user at most once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji (1–32 bytes of text).
    pub emoji: String,
    /// Who reacted, oldest first.
    pub users: Vec<Snowflake>,
}

/// One entry of a room's event log: a change every member saw live, kept so a client that
/// reconnects gets the same events (`room_events`, partitioned by room and seq range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEventRecord {
    /// The room.
    pub room_id: Snowflake,
    /// Position in the room's log: 1, 2, 3… without gaps.
    pub seq: u64,
    /// The log's epoch; it changes only if the log had to start over.
    pub epoch: u64,
    /// The ownership epoch of the room actor that wrote the entry ([`crate::Store::claim_room`];
    /// 0 for entries written before ownership epochs existed). Readers resolve each seq to its
    /// entry of the highest ownership epoch, and an entry of an older ownership epoch never
    /// follows one of a newer: see ARCHITECTURE.md, "Storage-level fencing".
    #[serde(default)]
    pub owner_epoch: u64,
    /// The event name as sent (`message:received`, `message:updated`, …).
    pub event: String,
    /// The event's `data` object as sent, JSON.
    pub data: String,
    /// The message as this change left it, so storage can be repaired from the log.
    pub message: Option<MessageRecord>,
    /// When the change happened.
    pub at: u64,
}

/// The end of a room's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// The log's epoch.
    pub epoch: u64,
    /// The newest seq.
    pub seq: u64,
    /// The id of the message the newest entry carries, if any: a new owner reads the newest
    /// message beside the log's end and keeps the larger id.
    pub message: Option<Snowflake>,
}

/// How far a user has read in a room (`read_markers`); only ever moves forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMarker {
    /// The reader.
    pub user_id: Snowflake,
    /// The room.
    pub room_id: Snowflake,
    /// The newest message read.
    pub message_id: Snowflake,
    /// When the marker moved.
    pub at: u64,
}

/// A refresh token (`refresh_tokens`). Tokens rotate: each is used once; a family is every
/// token descended from one login, revoked as a whole when a used token comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// The token's `jti`.
    pub id: String,
    /// Owner.
    pub user_id: Snowflake,
    /// The login this token descends from.
    pub family_id: String,
    /// Expiry time.
    pub expires_at: u64,
    /// Set once the token was exchanged.
    pub used: bool,
    /// Set by logout or reuse detection.
    pub revoked: bool,
}

/// A page of public rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPage {
    /// Rooms on this page, newest first.
    pub rooms: Vec<RoomRecord>,
    /// Total public rooms.
    pub total: u64,
}
