//! Events and views the server sends.

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;
use crate::v1::client::MessageType;

/// A message as clients see it (`message:received`, history pages, acks).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Snowflake id, time-ordered.
    pub id: Snowflake,
    /// Room it belongs to.
    pub room_id: Snowflake,
    /// Author.
    pub user_id: Snowflake,
    /// Author's username when the message was written.
    pub username: String,
    /// Text, or empty for a deleted message.
    pub content: String,
    /// Message kind.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The client's retry key, echoed back so the sender can match its optimistic copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// True for a deleted message (a tombstone: content is empty, the id keeps history gap-free).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The room-log position of this state of the message (its creation, or its latest edit,
    /// deletion or reaction).
    #[serde(default)]
    pub seq: u64,
    /// RFC 3339 time of the latest edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// The message this one answers, with a snippet of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyView>,
    /// Reactions, each emoji once with its count and who reacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionView>,
    /// The attachment of a `file` or `voice_note` message (`GET /api/v1/files/:id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<Snowflake>,
    /// It says `@everyone` or `@here` and its author may ping everyone (decided by the server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_everyone: bool,
    /// With `mentionsEveryone`: it said `@here` (not `@everyone`), so it pinged only those
    /// online then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_here: bool,
    /// Users mentioned as `<@id>` who may read the room (decided by the server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Snowflake>,
    /// Community roles mentioned as `<@&id>` (community channels only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_roles: Vec<Snowflake>,
}

/// The parent of a reply, as it was when the reply was written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyView {
    /// The parent message.
    pub id: Snowflake,
    /// Its author.
    pub user_id: Snowflake,
    /// Its author's username.
    pub username: String,
    /// Its first 100 characters.
    pub snippet: String,
}

/// One emoji on a message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionView {
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: u32,
    /// Who, oldest first.
    pub user_ids: Vec<Snowflake>,
}

/// A room member as listed in join replies and `GET /rooms/:id/members`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The member.
    pub user_id: Snowflake,
    /// Current username.
    pub username: String,
    /// `admin` or `member`.
    pub role: String,
    /// Whether the user has a connection subscribed to the room right now.
    pub online: bool,
    /// The user's presence.
    pub status: crate::v1::rich::PresenceStatus,
    /// When the user was last seen (Unix ms), once they have been offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
}

/// Ack payload of `room:join` (and body of `POST /rooms/:code/join`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    /// The room joined.
    pub room_id: Snowflake,
    /// Its members (empty when the join asked for `members: false`).
    pub participants: Vec<Participant>,
    /// How many members the room has.
    #[serde(default)]
    pub member_count: u32,
    /// How many of them have a connection subscribed to it now.
    #[serde(default)]
    pub online_count: u32,
    /// How many stored messages newer than `since` were replayed before this ack (0 if none).
    #[serde(default)]
    pub replayed: u32,
    /// True when more than the replay limit was missed, or `epoch` changed: nothing was
    /// replayed, and the client should page history (`GET /rooms/:id/messages`) instead.
    #[serde(default)]
    pub replay_truncated: bool,
    /// The room log's newest seq (after the replay).
    #[serde(default)]
    pub seq: u64,
    /// The room log's epoch; `since` is only meaningful within one epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Who is in the room's voice session now (voice channels, stages, calls); live changes
    /// follow as `voice:user_joined` / `voice:user_left` / `voice:state`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voice: Vec<crate::v1::voice::VoiceMember>,
}

/// `room:user_joined` / `room:user_left`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPresenceInRoom {
    /// The room.
    pub room_id: Snowflake,
    /// Who came or went.
    pub user_id: Snowflake,
    /// Their username.
    pub username: String,
    /// Unix milliseconds.
    pub timestamp: u64,
}

/// `user:typing` / `user:stopped_typing`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    /// The room.
    pub room_id: Snowflake,
    /// Who is (or stopped) typing.
    pub user_id: Snowflake,
}

/// `message:deleted`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    /// The room.
    pub room_id: Snowflake,
    /// The message that is now a tombstone.
    pub message_id: Snowflake,
    /// Position in the room log.
    #[serde(default)]
    pub seq: u64,
}

/// `room:deleted`: the room is gone; the client should drop it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDeleted {
    /// The room.
    pub room_id: Snowflake,
}

/// `room:removed`: a room admin removed you from the room; your sessions have left it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRemoved {
    /// The room.
    pub room_id: Snowflake,
    /// The admin who removed you.
    pub by: Snowflake,
}

/// `hello`: first frame on a new connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// Protocol version, see [`crate::v1::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Identifies this connection in logs.
    pub session_id: String,
    /// The authenticated user.
    pub user_id: Snowflake,
    /// Seconds of silence after which the server closes the connection.
    pub idle_timeout_secs: u64,
    /// Largest file `POST /api/v1/files` accepts, bytes (so clients refuse bigger ones before
    /// uploading them).
    #[serde(default)]
    pub max_upload_bytes: u64,
    /// Largest WebSocket frame the server reads, bytes.
    #[serde(default)]
    pub max_frame_bytes: u64,
}

/// Server event names, in one place so no typo reaches a client.
pub mod events {
    use crate::v1::event::ServerEventKind;

    /// Acknowledgement of a client frame that carried an `id`.
    pub const ACK: &str = "ack";
    /// Error for a frame that had no `id`.
    pub const ERROR: &str = ServerEventKind::Error.name();
    /// First frame on a connection.
    pub const HELLO: &str = ServerEventKind::Hello.name();
    /// Reply to `ping`.
    pub const PONG: &str = ServerEventKind::Pong.name();
    /// A new message in a joined room.
    pub const MESSAGE_RECEIVED: &str = ServerEventKind::MessageReceived.name();
    /// A message became a tombstone.
    pub const MESSAGE_DELETED: &str = ServerEventKind::MessageDeleted.name();
    /// Someone subscribed to the room.
    pub const USER_JOINED: &str = ServerEventKind::UserJoined.name();
    /// Someone left the room.
    pub const USER_LEFT: &str = ServerEventKind::UserLeft.name();
    /// The room was deleted by its admin.
    pub const ROOM_DELETED: &str = ServerEventKind::RoomDeleted.name();
    /// A room admin removed the receiving user from the room.
    pub const ROOM_REMOVED: &str = ServerEventKind::RoomRemoved.name();
    /// Someone started typing.
    pub const USER_TYPING: &str = ServerEventKind::UserTyping.name();
    /// Someone stopped typing (or their typing expired).
    pub const USER_STOPPED_TYPING: &str = ServerEventKind::UserStoppedTyping.name();
    /// A message was edited (data: the message).
    pub const MESSAGE_UPDATED: &str = ServerEventKind::MessageUpdated.name();
    /// A reaction was added or removed.
    pub const REACTION_UPDATED: &str = ServerEventKind::ReactionUpdated.name();
    /// A member's read marker moved.
    pub const READ_RECEIPT: &str = ServerEventKind::ReadReceipt.name();
    /// A member's presence changed.
    pub const PRESENCE_CHANGED: &str = ServerEventKind::PresenceChanged.name();
}
