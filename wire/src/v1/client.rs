//! Frames a client sends: the envelope ([`ClientFrame`]) and the payloads of the requests.
//! Which event carries which payload, and what its ack carries, is the table of
//! [`crate::v1::request::ClientRequest`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ErrorBody, ErrorCode};
use crate::ids::Snowflake;
use crate::v1::server::MessageView;

/// The envelope of every client frame, with `data` left unparsed until `type` is known.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    /// Event name, e.g. `message:send`.
    #[serde(rename = "type")]
    pub event: &'a str,
    /// Present when the client wants an ack.
    #[serde(default)]
    pub id: Option<u64>,
    /// Event payload; absent means `{}`.
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// Why a client frame could not be turned into an event. Becomes an error frame or failed ack.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// The ack id, when the envelope was readable enough to have one.
    pub id: Option<u64>,
    /// What to tell the client.
    pub error: ErrorBody,
}

impl<'a> ClientFrame<'a> {
    /// Parses the envelope of a text frame.
    pub fn parse(text: &'a str) -> Result<ClientFrame<'a>, FrameError> {
        serde_json::from_str(text).map_err(|e| FrameError {
            id: salvage_id(text),
            error: ErrorBody::new(ErrorCode::InvalidFrame, format!("malformed frame: {e}")),
        })
    }

    /// Parses `data` as a request's payload `R`; a wrong shape names the problem.
    pub fn payload<R: DeserializeOwned>(&self) -> Result<R, FrameError> {
        let raw = self.data.map(RawValue::get).unwrap_or("{}");
        crate::error::parse_json(raw).map_err(|error| FrameError { id: self.id, error })
    }
}

/// Best effort: find the ack id of a frame whose envelope did not parse as a whole.
fn salvage_id(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct OnlyId {
        id: Option<u64>,
    }
    serde_json::from_str::<OnlyId>(text).ok().and_then(|f| f.id)
}

/// `room:join`: subscribe this connection to a room's live events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRoom {
    /// The room to join.
    pub room_id: Snowflake,
    /// The last room-log `seq` the client has seen; newer events are replayed before live ones.
    #[serde(default)]
    pub since: Option<u64>,
    /// The log epoch `since` belongs to (from the previous join ack); a different epoch means
    /// nothing can be replayed.
    #[serde(default)]
    pub epoch: Option<u64>,
    /// Whether the ack lists the members (`participants`). A client that subscribes to every
    /// room it is in sends `false` and fetches the list of the room on screen when it needs
    /// it (`GET /rooms/:id/members`); the ack's counts come either way.
    #[serde(default = "listed_by_default")]
    pub members: bool,
}
fn listed_by_default() -> bool {
    true
}

/// `room:leave`: stop receiving a room's live events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveRoom {
    /// The room to leave.
    pub room_id: Snowflake,
}

/// Ack payload naming a room.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    /// The room concerned.
    pub room_id: Snowflake,
}

/// Message kinds. `system` is only ever produced by the server.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Deserialize,
    Serialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// Plain text.
    #[default]
    Text,
    /// A file reference.
    File,
    /// A recorded voice note.
    VoiceNote,
    /// Joins, leaves, calls: written by the server.
    System,
}

impl MessageType {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::File => "file",
            MessageType::VoiceNote => "voice_note",
            MessageType::System => "system",
        }
    }

    /// Inverse of [`MessageType::as_str`].
    pub fn parse(s: &str) -> Option<MessageType> {
        Some(match s {
            "text" => MessageType::Text,
            "file" => MessageType::File,
            "voice_note" => MessageType::VoiceNote,
            "system" => MessageType::System,
            _ => return None,
        })
    }
}

/// `message:send`: post a message. Acked only once it is durably stored.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// Target room.
    pub room_id: Snowflake,
    /// 1–4000 characters.
    pub content: String,
    /// Defaults to `text`; `system` is refused.
    #[serde(default, rename = "type")]
    pub kind: MessageType,
    /// Client-chosen retry key: the same nonce from the same user in the same room yields the
    /// same message.
    #[serde(default)]
    pub nonce: Option<String>,
    /// The message this one replies to (in the same room).
    #[serde(default)]
    pub reply_to: Option<Snowflake>,
    /// The attachment (`POST /api/v1/files`) of a `file` or `voice_note` message.
    #[serde(default)]
    pub file_id: Option<Snowflake>,
}

/// Ack payload of `message:send`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SentReply {
    /// The stored message (the original one when the nonce was seen before).
    pub message: MessageView,
}

/// `auth:refresh`: extends the connection with a fresh access token of the same user (the
/// connection closes with 4001 when its token expires otherwise).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuthRefresh {
    /// A valid access token (from `POST /auth/refresh`).
    pub token: String,
}

/// Ack payload of `auth:refresh`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRefreshed {
    /// When the connection's authentication now ends (Unix ms).
    pub expires_at: u64,
}

/// `typing:start` / `typing:stop`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    /// The room being typed in.
    pub room_id: Snowflake,
}

/// `ping`: application-level keepalive, answered by `pong`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Ping {}

/// Payload of `pong` (also the ack of `ping`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    /// Server wall clock, Unix milliseconds.
    pub server_time: u64,
}

/// Validates message content: 1–4000 characters, not only whitespace.
pub fn validate_content(content: &str) -> Result<(), ErrorBody> {
    let chars = content.chars().count();
    if content.trim().is_empty() {
        return Err(ErrorBody::field("content", "content must not be empty"));
    }
    if chars > crate::v1::MAX_CONTENT_CHARS {
        return Err(ErrorBody::field(
            "content",
            "content is longer than 4000 characters",
        ));
    }
    Ok(())
}

/// Validates the caption of a file or voice note: like content, but it may be empty.
pub fn validate_caption(content: &str) -> Result<(), ErrorBody> {
    if content.trim().is_empty() {
        return Ok(());
    }
    validate_content(content)
}

/// Validates a client nonce: 1–64 bytes of printable ASCII.
pub fn validate_nonce(nonce: &str) -> Result<(), ErrorBody> {
    if nonce.is_empty()
        || nonce.len() > crate::v1::MAX_NONCE_LEN
        || !nonce.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ErrorBody::field(
            "nonce",
            "nonce must be 1-64 printable ASCII characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_payload_parse() {
        let text =
            r#"{"type":"message:send","id":7,"data":{"roomId":"42","content":"hi","nonce":"n1"}}"#;
        let frame = ClientFrame::parse(text).expect("envelope");
        assert_eq!(frame.event, "message:send");
        assert_eq!(frame.id, Some(7));
        let send: SendMessage = frame.payload().expect("payload");
        assert_eq!(send.room_id, Snowflake(42));
        assert_eq!(send.kind, MessageType::Text);
    }

    #[test]
    fn malformed_json_keeps_nothing_but_a_clear_error() {
        let err = ClientFrame::parse("{not json").expect_err("must fail");
        assert_eq!(err.error.code, ErrorCode::InvalidFrame);
        assert_eq!(err.id, None);
    }

    #[test]
    fn wrong_payload_names_the_field() {
        let frame = ClientFrame::parse(r#"{"type":"message:send","id":3,"data":{"roomId":"1"}}"#)
            .expect("envelope");
        let err = frame.payload::<SendMessage>().expect_err("must fail");
        assert_eq!(err.id, Some(3));
        assert_eq!(err.error.code, ErrorCode::ValidationError);
        assert_eq!(
            err.error.details,
            Some(serde_json::json!({"field": "content"}))
        );
    }

    #[test]
    fn content_rules() {
        assert!(validate_content("hello").is_ok());
        assert!(validate_content("   ").is_err());
        assert!(validate_content(&"é".repeat(4000)).is_ok());
        assert!(validate_content(&"é".repeat(4001)).is_err());
        assert!(validate_caption("").is_ok());
        assert!(validate_caption(&"é".repeat(4001)).is_err());
        assert!(validate_nonce("abc-123").is_ok());
        assert!(validate_nonce("has space").is_err());
    }
}
