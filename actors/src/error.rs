//! Errors raised by room and session logic.

use voiceflow_schema::StoreError;
use voiceflow_wire::{ErrorBody, ErrorCode};

/// What can go wrong handling a client request inside the actors.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// The room does not exist (or was deleted).
    #[error("room not found")]
    RoomNotFound,
    /// The message does not exist in that room.
    #[error("message not found")]
    MessageNotFound,
    /// The user may not do this (not a member, not the author or an admin).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The room has reached its member limit.
    #[error("room is full")]
    RoomFull,
    /// A request failed with this client-facing error (a broken field rule, or a storage
    /// failure already turned into its body).
    #[error("{}", .0.message)]
    Client(ErrorBody),
    /// Storage failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The actor system could not deliver the request (actor stopped mid-way).
    #[error("room unavailable, retry")]
    Unavailable,
}

impl ActorError {
    /// Whether the same request may succeed if tried again soon (storage or the room's owner
    /// was briefly unavailable), as opposed to a refusal that stands.
    pub fn is_transient(&self) -> bool {
        match self {
            ActorError::Unavailable => true,
            ActorError::Store(e) => match e {
                StoreError::Unavailable(_) | StoreError::Fenced { .. } => true,
                StoreError::Conflict { .. } | StoreError::Corrupt(_) => false,
            },
            ActorError::RoomNotFound
            | ActorError::MessageNotFound
            | ActorError::Forbidden(_)
            | ActorError::RoomFull
            | ActorError::Client(_) => false,
        }
    }

    /// The client-facing error body. Internals (storage messages) are logged, not sent.
    pub fn to_body(&self) -> ErrorBody {
        match self {
            ActorError::RoomNotFound => ErrorBody::new(ErrorCode::RoomNotFound, "room not found"),
            ActorError::MessageNotFound => ErrorBody::new(ErrorCode::NotFound, "message not found"),
            ActorError::Forbidden(why) => ErrorBody::new(ErrorCode::Forbidden, *why),
            ActorError::RoomFull => ErrorBody::new(ErrorCode::RoomFull, "room is full"),
            ActorError::Client(body) => body.clone(),
            ActorError::Store(StoreError::Conflict { field }) => ErrorBody {
                code: ErrorCode::Conflict,
                message: format!("{field} is already taken"),
                details: Some(serde_json::json!({ "field": field })),
            },
            ActorError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "storage unavailable");
                ErrorBody::new(
                    ErrorCode::StorageUnavailable,
                    "storage is unavailable, nothing was saved",
                )
            }
            ActorError::Store(StoreError::Corrupt(e)) => {
                tracing::error!(error = %e, "corrupt record");
                ErrorBody::new(ErrorCode::InternalError, "internal error")
            }
            // Another node owns the room now (or will shortly): the client resends there.
            ActorError::Unavailable | ActorError::Store(StoreError::Fenced { .. }) => {
                ErrorBody::unavailable("room temporarily unavailable, retry")
            }
        }
    }
}
