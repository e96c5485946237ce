//! Stable error codes. Clients switch on `code`; `message` is for humans.

use serde::{Deserialize, Serialize};

/// Every error a client can see, REST or WebSocket. The string form never changes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
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
    /// A body, file or frame is larger than the configured limit; `details.limit` gives it in
    /// bytes.
    PayloadTooLarge,
    /// The frame was not valid JSON or not an object of the expected shape.
    InvalidFrame,
    /// The frame's `type` is not an event this server knows.
    UnknownEvent,
    /// The user's storage quota (`[files] quota_bytes`) has no room for this upload;
    /// `details.quota` and `details.used` give it in bytes.
    QuotaExceeded,
    /// A request body stopped arriving (no bytes for the configured timeout); nothing of it
    /// was kept.
    RequestTimeout,
    /// The storage backend cannot be reached; nothing was written.
    StorageUnavailable,
    /// Nothing was done, and the same request should succeed when sent again after
    /// `details.retryAfterMs`: the room's owner was briefly out of reach (it moved to another
    /// node, its node went away before answering, it was starting). Unlike INTERNAL_ERROR
    /// this is not a bug, so clients retry it without telling the user.
    Unavailable,
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
            ErrorCode::PayloadTooLarge | ErrorCode::QuotaExceeded => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::RateLimited => 429,
            ErrorCode::StorageUnavailable | ErrorCode::Unavailable => 503,
            ErrorCode::InternalError => 500,
        }
    }

    /// Whether the same request may succeed if tried again soon: the storage backend or the
    /// room's owner was briefly out of reach (a restart, a hand-off), as opposed to a refusal
    /// that stands.
    pub fn is_transient(self) -> bool {
        match self {
            ErrorCode::StorageUnavailable | ErrorCode::Unavailable | ErrorCode::InternalError => {
                true
            }
            ErrorCode::ValidationError
            | ErrorCode::InvalidCredentials
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::RoomNotFound
            | ErrorCode::Conflict
            | ErrorCode::RoomFull
            | ErrorCode::RateLimited
            | ErrorCode::PayloadTooLarge
            | ErrorCode::InvalidFrame
            | ErrorCode::UnknownEvent
            | ErrorCode::QuotaExceeded
            | ErrorCode::RequestTimeout => false,
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
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::InvalidFrame => "INVALID_FRAME",
            ErrorCode::UnknownEvent => "UNKNOWN_EVENT",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// How long a client waits before sending an UNAVAILABLE request again: about the time a
/// room takes to start on its new owner after a hand-off or a node's departure.
pub const UNAVAILABLE_RETRY_AFTER_MS: u64 = 1000;

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

// Natively for the cluster protocol: `details` is free-form JSON, carried as its text.
impl bincode::Encode for ErrorBody {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.code.encode(encoder)?;
        self.message.encode(encoder)?;
        // As `Option<OpaqueJson>` encodes (a tag byte, then the text), without a copy.
        match &self.details {
            None => 0u8.encode(encoder),
            Some(details) => {
                1u8.encode(encoder)?;
                crate::json_text::encode(details, encoder)
            }
        }
    }
}

impl<C> bincode::Decode<C> for ErrorBody {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(ErrorBody {
            code: ErrorCode::decode(decoder)?,
            message: String::decode(decoder)?,
            details: Option::<crate::json_text::OpaqueJson>::decode(decoder)?.map(|d| d.0),
        })
    }
}

bincode::impl_borrow_decode!(ErrorBody);

impl ErrorBody {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// UNAVAILABLE: nothing was done, send the same request again after
    /// [`UNAVAILABLE_RETRY_AFTER_MS`] (in `details.retryAfterMs`, as RATE_LIMITED carries it).
    /// Every "retry later" answer is built here, so the code and its details cannot diverge.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ErrorBody {
            code: ErrorCode::Unavailable,
            message: message.into(),
            details: Some(serde_json::json!({ "retryAfterMs": UNAVAILABLE_RETRY_AFTER_MS })),
        }
    }

    /// `details.retryAfterMs`, when the error says when to try again.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.details.as_ref()?.get("retryAfterMs")?.as_u64()
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

/// The part of an error path before its first unknown segment: serde_path_to_error writes `?`
/// for a position whose key was not read yet (input cut short inside an object), which names
/// no field; `.` is the root.
fn known_path(path: &str) -> String {
    let known = path.split('?').next().unwrap_or_default();
    match known.trim_end_matches(['.', '[']) {
        "" => ".".to_owned(),
        known => known.to_owned(),
    }
}

/// Parses JSON into `T`; a failure is a [`ErrorCode::ValidationError`] whose `details.field`
/// names the offending field: its path (`settings.isPublic`, `ids[2]`) for a wrong type or
/// value, the field itself for a missing one. Unknown fields are ignored unless `T` says
/// otherwise.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ErrorBody> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = known_path(&e.path().to_string());
        let inner = e.into_inner();
        let text = inner.to_string();
        // serde names a missing field (at the path of its parent) as "missing field `x`".
        let field = match text.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                if path == "." {
                    Some(name.to_owned())
                } else {
                    Some(format!("{path}.{name}"))
                }
            }
            None if path != "." => Some(path),
            None => None,
        };
        let message = match &field {
            Some(f) => format!("invalid data: `{f}`: {text}"),
            None => format!("invalid data: {text}"),
        };
        ErrorBody {
            code: ErrorCode::ValidationError,
            message,
            details: field.map(|f| serde_json::json!({ "field": f })),
        }
    })
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Sample {
        room_id: u64,
        content: String,
        #[serde(default)]
        settings: Option<Settings>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Settings {
        is_public: bool,
    }

    #[test]
    fn parse_errors_name_the_field() {
        let field = |text: &str| {
            parse_json::<Sample>(text)
                .expect_err("must fail")
                .details
                .and_then(|d| d["field"].as_str().map(str::to_owned))
        };
        assert_eq!(
            field(r#"{"roomId": 1, "content": 5}"#).as_deref(),
            Some("content")
        );
        assert_eq!(
            field(r#"{"roomId": "x", "content": "a"}"#).as_deref(),
            Some("roomId")
        );
        assert_eq!(field(r#"{"roomId": 1}"#).as_deref(), Some("content"));
        assert_eq!(
            field(r#"{"roomId": 1, "content": "a", "settings": {"isPublic": "yes"}}"#).as_deref(),
            Some("settings.isPublic")
        );
        assert_eq!(
            field(r#"{"roomId": 1, "content": "a", "settings": {}}"#).as_deref(),
            Some("settings.isPublic")
        );
        let ok: Sample = parse_json(r#"{"roomId": 1, "content": "a", "extra": [1, {"x": 2}]}"#)
            .expect("unknown fields are ignored");
        assert_eq!(ok.room_id, 1);
        assert_eq!(
            parse_json::<Sample>("[").expect_err("eof").code,
            ErrorCode::ValidationError
        );
    }

    /// Regression (found by `error::fuzz_tests`): input cut short inside an object named the
    /// field `?`.
    #[test]
    fn input_cut_short_names_no_unknown_field() {
        let e = parse_json::<Sample>("{").expect_err("eof");
        assert_eq!(e.details, None, "{e:?}");
        let e = parse_json::<Sample>(r#"{"roomId": 1, "settings": {"#).expect_err("eof");
        assert_eq!(e.details, Some(serde_json::json!({"field": "settings"})));
    }

    #[test]
    fn unavailable_is_transient_503_and_says_when_to_retry() {
        let body = ErrorBody::unavailable("room temporarily unavailable, retry");
        assert_eq!(body.code.as_str(), "UNAVAILABLE");
        assert_eq!(body.code.http_status(), 503);
        assert!(body.code.is_transient());
        assert_eq!(body.retry_after_ms(), Some(UNAVAILABLE_RETRY_AFTER_MS));
        let json = serde_json::to_value(&body).expect("serialize");
        assert_eq!(json["details"]["retryAfterMs"], UNAVAILABLE_RETRY_AFTER_MS);
    }

    #[test]
    fn codes_serialize_to_their_wire_names() {
        for code in [
            ErrorCode::RoomFull,
            ErrorCode::ValidationError,
            ErrorCode::StorageUnavailable,
            ErrorCode::Unavailable,
        ] {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
