//! Version 1 of the client protocol. Every client frame is
//! `{"type": EVENT, "id": N?, "data": {...}}`; every server frame is
//! `{"type": EVENT, "data": {...}}` or an ack `{"type":"ack","id":N,"ok":...}`.

pub mod call;
pub mod client;
pub mod community;
pub mod event;
pub mod files;
pub mod frame;
pub mod notify;
pub mod permissions;
pub mod push;
pub mod request;
pub mod rich;
pub mod search;
pub mod server;
pub mod voice;

/// The protocol version this module describes; sent in the `hello` event.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest message content, in Unicode scalar values.
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Longest client nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 64;

#[cfg(test)]
mod protocol_doc_tests;
