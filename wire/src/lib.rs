//! VoiceFlow wire formats: what crosses a socket.
//!
//! Layout:
//! - [`error`]: the stable error codes shared by REST bodies and WebSocket frames.
//! - [`v1`]: version 1 of the client protocol (JSON over WebSocket and REST), see `PROTOCOL.md`.
//!   - [`v1::request`]: every client event as one enum ([`v1::request::ClientRequest`]), each
//!     naming its payload and its reply type; frames are parsed into it once, at the front door.
//!   - [`v1::client`]: the client frame's envelope and the payloads of the basic requests.
//!   - [`v1::event`]: every server event as one enum ([`v1::event::ServerEvent`]).
//!   - [`v1::server`]: the payloads of server events and acks, plus the shared views (message,
//!     member).
//!   - [`v1::frame`]: encoding a server frame once into shareable bytes.
//! - [`ids`]: snowflake ids (milliseconds + node id + sequence) rendered as strings on the wire.
//! - [`time`]: times as clients read them (RFC 3339, UTC, milliseconds).
//! - [`cluster`]: the inter-node protocol (versioned bincode frames over QUIC);
//!   [`cluster::room`]: the room requests and answers it carries.
//! - [`room`]: the stored room record (it crosses nodes too; `schema` re-exports it).
//! - [`json_text`]: free-form client JSON inside binary frames.

pub mod cluster;
pub mod error;
pub mod ids;
pub mod json_text;
pub mod room;
pub mod time;
pub mod v1;

#[cfg(test)]
mod fuzzing;

pub use error::{ErrorBody, ErrorCode};
pub use ids::{Snowflake, SnowflakeGenerator};
