//! VoiceFlow wire formats: what crosses a socket.
//!
//! Layout:
//! - [`error`]: the stable error codes shared by REST bodies and WebSocket frames.
//! - [`v1`]: version 1 of the client protocol (JSON over WebSocket and REST), see `PROTOCOL.md`.
//!   - [`v1::client`]: frames a client sends, each request type naming its reply type.
//!   - [`v1::server`]: events and acks the server sends, plus the shared views (message, member).
//!   - [`v1::frame`]: encoding a server frame once into shareable bytes.
//! - [`ids`]: snowflake ids (milliseconds + node id + sequence) rendered as strings on the wire.
//! - [`cluster`]: the inter-node protocol (versioned bincode frames over QUIC).

pub mod cluster;
pub mod error;
pub mod ids;
pub mod v1;

#[cfg(test)]
mod fuzzing;

pub use error::{ErrorBody, ErrorCode};
pub use ids::{Snowflake, SnowflakeGenerator};
