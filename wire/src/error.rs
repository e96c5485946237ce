//! Stable error codes. Clients switch on `code`; `message` is for humans.

use serde::{Deserialize, Serialize};

/// Every error a client can see, REST or WebSocket. The string form never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// A field is missing, has the wrong type or breaks a rule; `details` names the field.
    ValidationError,
    /// Email or password wrong.
    InvalidCredentials,
    /// No token, or a token that is expired, forged or revoked.
    Unauthorized,
    /// Authenticated, but not allowed to do this (not a member, not the admin).
    Forbidden,
    /// The thing asked for does not exist.
    NotFound,
    /// The room does not exist (WebSocket events name rooms specifically).
    RoomNotFound,
    /// A unique value (username, email) is taken.
    Conflict,
    /// The room has reached `maxUsers`.
    RoomFull,
    /// Too many requests; `details.retryAfterMs` says when to try again.
    RateLimited,
    /// The frame was not valid JSON or not an object of the expected shape.
    InvalidFrame,
    /// The frame's `type` is not an event this server knows.
    UnknownEvent,
    /// The storage backend cannot be reached; nothing was written.
    StorageUnavailable,
    /// Something failed on the server; details are in its log, not here.
    InternalError,
}

impl ErrorCode {
    /// The HTTP status that goes with this code in REST replies.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::ValidationError | ErrorCode::InvalidFrame | ErrorCode::UnknownEvent => 400,
            ErrorCode::InvalidCredentials | ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::RoomNotFound => 404,
            ErrorCode::Conflict | ErrorCode::RoomFull => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::StorageUnavailable => 503,
            ErrorCode::InternalError => 500,
        }
    }

    /// The code as it appears on the wire, e.g. `"ROOM_FULL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::InvalidCredentials => "INVALID_CREDENTIALS",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::RoomNotFound => "ROOM_NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RoomFull => "ROOM_FULL",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::InvalidFrame => "INVALID_FRAME",
            ErrorCode::UnknownEvent => "UNKNOWN_EVENT",
            ErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// The `error` object of a REST failure body and of a failed ack / error event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains internals.
    pub message: String,
    /// Optional structured details, e.g. `{"field": "username"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A validation error naming the offending field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            code: ErrorCode::ValidationError,
            message: message.into(),
            details: Some(serde_json::json!({ "field": field })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_to_their_wire_names() {
        for code in [
            ErrorCode::RoomFull,
            ErrorCode::ValidationError,
            ErrorCode::StorageUnavailable,
        ] {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
