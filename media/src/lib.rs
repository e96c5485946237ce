//! VoiceFlow media: the server-side SFU of voice channels, stage rooms and calls.
//!
//! Layout:
//! - [`announce`]: candidates name the node's public address behind 1:1 NAT.
//! - [`demux`]: telling STUN, DTLS and RTP apart on the one media port; the ufrag of a check.
//! - [`engine`]: the media settings and the codec every leg negotiates (Opus + RFC 6464).
//! - [`plane`]: the node's media plane: one UDP socket, a loop on a thread of its own driving
//!   a sans-IO connection per participant, the forwarding path.
//! - [`sfu`]: one channel's SFU session as the room actor sees it (commands to the loop):
//!   signalling (client offer → server answer, then server offers), mute/deafen/speak rights.
//! - [`signal`]: checks on client signalling before webrtc-rs gets it (UDP candidates only).
//! - [`speaking`]: speaking detection from audio levels, with hysteresis and a throttle.
//! - [`testing`]: an in-process client peer and a harness, for tests and `sfubench`.
//! - [`turn`]: the embedded TURN server and its short-lived credentials.

pub mod announce;
pub mod demux;
pub mod engine;
#[doc(hidden)]
pub mod loadclient;
pub mod plane;
pub mod sfu;
pub mod signal;
pub mod speaking;
pub mod testing;
pub mod turn;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use engine::MediaConfig;
pub use plane::MediaPlane;
pub use sfu::{Channel, Layer, PeerId, Rights, RtcpStats, SfuEvent, Track};
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
    /// The media socket cannot be bound (or its thread started).
    #[error("cannot bind the media socket {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    /// The media loop is not running.
    #[error("the media loop stopped")]
    Stopped,
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

/// Why the media loop dropped a datagram (the `reason` label of
/// `voiceflow_voice_dropped_datagrams_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not STUN, DTLS or RTP/RTCP by its first byte, or too short to be.
    Garbage,
    /// A STUN packet naming a server ufrag nobody has (or none), from an unknown address.
    UnknownUfrag,
    /// DTLS or RTP from a 4-tuple no participant has proved to own.
    UnknownSource,
    /// The participant's connection refused it (bad DTLS, SRTP that does not authenticate).
    Rejected,
    /// The socket would not take an outgoing datagram.
    SendFailed,
    /// A media loop was too far behind to take more (`media_threads` > 1: its queue from the
    /// receiving thread was full), like a full socket buffer but counted; or media waited in
    /// a loop's backlog longer than is of use to a listener (100 ms).
    Overloaded,
    /// An RTX packet (RFC 4588) with nothing to forward: padding only, or nothing after the
    /// original sequence number (a browser's bandwidth probe).
    RtxPadding,
    /// An RTX packet the SFU cannot map back: shorter than its original sequence number, on
    /// an RTX stream the offer did not announce (`a=ssrc-group:FID`, or a repaired RID of a
    /// known layer), with an `apt` naming no forwarded video codec, or a non-RTX payload type
    /// on an RTX stream.
    RtxInvalid,
    /// An RTX packet repairing a packet already received (or too old to tell).
    RtxDuplicate,
}

/// How many [`DropReason`]s there are.
const REASONS: usize = 9;

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; REASONS] = [
        DropReason::Garbage,
        DropReason::UnknownUfrag,
        DropReason::UnknownSource,
        DropReason::Rejected,
        DropReason::SendFailed,
        DropReason::Overloaded,
        DropReason::RtxPadding,
        DropReason::RtxInvalid,
        DropReason::RtxDuplicate,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Garbage => "garbage",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::UnknownSource => "unknown_source",
            DropReason::Rejected => "rejected",
            DropReason::SendFailed => "send_failed",
            DropReason::Overloaded => "overloaded",
            DropReason::RtxPadding => "rtx_padding",
            DropReason::RtxInvalid => "rtx_invalid",
            DropReason::RtxDuplicate => "rtx_duplicate",
        }
    }
}

/// Counters of the media plane (exported as metrics every 100 ms by the loop).
#[derive(Debug, Default)]
pub struct PlaneStats {
    dropped: [AtomicU64; REASONS],
    exported: [AtomicU64; REASONS],
    /// Datagrams read from the socket.
    pub received: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// RTP (not RTCP) datagrams read from the socket (known or not).
    pub rtp_received: AtomicU64,
    /// Participants' connections in the loop.
    pub peers: AtomicUsize,
}

impl PlaneStats {
    /// Datagrams dropped for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn count_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what was dropped since the last export to the metrics.
    pub(crate) fn export(&self) {
        for reason in DropReason::ALL {
            let now = self.dropped(reason);
            let before = self.exported[reason as usize].swap(now, Ordering::Relaxed);
            if now > before {
                metrics::counter!("voiceflow_voice_dropped_datagrams_total", "reason" => reason.label())
                    .increment(now - before);
            }
        }
        metrics::gauge!("voiceflow_voice_connections")
            .set(self.peers.load(Ordering::Relaxed) as f64);
    }
}
