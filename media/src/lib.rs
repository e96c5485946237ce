//! VoiceFlow media: the server-side SFU of voice channels, stage rooms and calls.
//!
//! Layout:
//! - [`announce`]: candidates name the node's public address behind 1:1 NAT.
//! - [`engine`]: building peer connections (Opus + RFC 6464 audio level, interceptors, UDP
//!   ports from the configured range).
//! - [`sfu`]: one channel's SFU session: a connection per participant, forwarding, signalling
//!   (client offer → server answer, then server offers), mute/deafen/speak rights.
//! - [`signal`]: checks on client signalling before webrtc-rs gets it (UDP candidates only).
//! - [`speaking`]: speaking detection from audio levels, with hysteresis and a throttle.
//! - [`testing`]: an in-process client peer and a harness, for tests and `sfubench`.
//! - [`turn`]: the embedded TURN server and its short-lived credentials.

pub mod announce;
pub mod engine;
pub mod sfu;
pub mod signal;
pub mod speaking;
pub mod testing;
pub mod turn;

pub use engine::{MediaConfig, PortPool};
pub use sfu::{Channel, PeerId, Rights, RtcpStats, SfuEvent};
pub use webrtc::peer_connection::RTCIceCandidateInit;

/// Media failures, turned into client errors by the voice actor.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The SDP (or its type) was not acceptable.
    #[error("invalid session description: {0}")]
    Sdp(String),
    /// An ICE candidate was not acceptable.
    #[error("invalid ICE candidate: {0}")]
    Candidate(String),
    /// The WebRTC stack failed.
    #[error("media error: {0}")]
    WebRtc(String),
    /// No UDP port of the configured range is free.
    #[error("no free media port")]
    NoPort,
    /// The participant already has a connection in this channel.
    #[error("already in the channel")]
    AlreadyJoined,
    /// The participant has no connection in this channel.
    #[error("not in the channel")]
    NotJoined,
    /// An answer came but no offer was sent.
    #[error("no offer is waiting for an answer")]
    NoOfferPending,
    /// The connection has no local description after negotiating.
    #[error("no local description")]
    NoDescription,
    /// The TURN server could not start or sign.
    #[error("TURN: {0}")]
    Turn(String),
}

impl MediaError {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> MediaError {
        MediaError::WebRtc(e.to_string())
    }

    pub(crate) fn sdp(e: impl std::fmt::Display) -> MediaError {
        MediaError::Sdp(e.to_string())
    }

    pub(crate) fn turn(e: impl std::fmt::Display) -> MediaError {
        MediaError::Turn(e.to_string())
    }

    pub(crate) fn candidate(e: impl std::fmt::Display) -> MediaError {
        MediaError::Candidate(e.to_string())
    }
}
