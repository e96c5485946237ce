//! One voice channel's SFU session, as the room actor sees it: participants join with their
//! client's offer, every participant's Opus packets are forwarded (RTP, no transcoding) to
//! every other participant who is not deafened, on a track of its own per (subscriber,
//! publisher) pair.
//!
//! Signalling: the client offers (`join`), the server answers; afterwards only the server
//! offers (`Offer` events) when the set of tracks a participant receives changes, and the
//! client answers (`apply_answer`), one negotiation at a time per participant. ICE candidates
//! trickle both ways (`Candidate` events, `add_candidate`).
//!
//! A [`Channel`] is a handle: the participants' connections live in the node's media loop
//! ([`crate::plane`]), on its own thread, and each call here is one command to that loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::RTCIceCandidateInit;

use crate::MediaError;
use crate::plane::{Cmd, MediaPlane, Open};

/// A participant (the session's id, say).
pub type PeerId = u64;

/// What the SFU tells the signalling side.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// A local ICE candidate for the participant's client (trickle).
    Candidate {
        /// The participant.
        peer: PeerId,
        /// The candidate, as browsers expect it (`{candidate, sdpMid, sdpMLineIndex}`).
        candidate: RTCIceCandidateInit,
    },
    /// The tracks the participant receives changed: the client must answer this offer.
    Offer {
        /// The participant.
        peer: PeerId,
        /// The SDP offer.
        sdp: String,
    },
    /// The participant's connection is up.
    Connected {
        /// The participant.
        peer: PeerId,
    },
    /// The participant started or stopped speaking.
    Speaking {
        /// The participant.
        peer: PeerId,
        /// Speaking now.
        speaking: bool,
    },
    /// The participant's connection failed or never came up: remove them.
    Failed {
        /// The participant.
        peer: PeerId,
    },
}

/// What a participant may do and wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Their microphone's packets are dropped at the server.
    pub muted: bool,
    /// They receive nothing.
    pub deafened: bool,
    /// Their audio may be forwarded at all (stage listeners may not speak).
    pub may_speak: bool,
    /// Their camera is published (others get a track for it).
    pub video: bool,
    /// Their screen share (and its audio, if they send one) is published.
    pub screen: bool,
}

impl Default for Rights {
    fn default() -> Self {
        Rights {
            muted: false,
            deafened: false,
            may_speak: true,
            video: false,
            screen: false,
        }
    }
}

/// One of the tracks a participant may publish. Which of the client's offered sections is
/// which goes by order: the first audio section is the microphone, the second the screen's
/// audio; the first video section is the camera, the second the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Track {
    /// The microphone.
    Mic,
    /// The camera.
    Camera,
    /// The screen share's video.
    Screen,
    /// The screen share's audio.
    ScreenAudio,
}

/// A simulcast layer a subscriber asks for (the highest it wants: the SFU may forward a lower
/// one when the subscriber's bandwidth estimate does not fit it, or when the publisher does
/// not send it). A publisher that does not simulcast has one layer, forwarded whatever is
/// asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The smallest (a client's small tiles).
    Low,
    /// The middle one (of three).
    Medium,
    /// Full size (a spotlight).
    High,
}

impl Layer {
    /// Its index among a publisher's layers, lowest first.
    pub fn index(self) -> u8 {
        match self {
            Layer::Low => 0,
            Layer::Medium => 1,
            Layer::High => 2,
        }
    }
}

impl Track {
    /// Every track.
    pub const ALL: [Track; 4] = [Track::Mic, Track::Camera, Track::Screen, Track::ScreenAudio];

    /// The name in track ids (`<name>-<publisher>`) and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Mic => "audio",
            Track::Camera => "camera",
            Track::Screen => "screen",
            Track::ScreenAudio => "screen_audio",
        }
    }

    /// Whether it is a video track.
    pub fn is_video(self) -> bool {
        match self {
            Track::Camera | Track::Screen => true,
            Track::Mic | Track::ScreenAudio => false,
        }
    }

    /// Whether `rights` let it be forwarded.
    pub fn published(self, rights: &Rights) -> bool {
        match self {
            Track::Mic => rights.may_speak && !rights.muted,
            Track::Camera => rights.video,
            Track::Screen | Track::ScreenAudio => rights.screen,
        }
    }
}

/// Loss and jitter of what a channel receives, from RTCP receiver reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtcpStats {
    /// Packets lost on the way from participants to the server.
    pub packets_lost: u64,
    /// The worst interarrival jitter, seconds.
    pub jitter_secs: f64,
}

/// Counters of a channel.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets received from participants.
    pub received: AtomicU64,
    /// RTP packets sent on to subscribers.
    pub forwarded: AtomicU64,
    /// Payload bytes sent on to subscribers.
    pub forwarded_bytes: AtomicU64,
    /// Packets dropped (muted, not allowed to speak, a leg not negotiated yet).
    pub dropped: AtomicU64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: AtomicU64,
    /// Packets sent again to subscribers that asked (NACK).
    pub retransmitted: AtomicU64,
    /// Video packets asked of publishers again (NACK) because their stream skipped them.
    pub nacks_sent: AtomicU64,
    /// Subscriber legs that moved to another simulcast layer (at its keyframe).
    pub layer_switches: AtomicU64,
    /// Transport-wide congestion control feedback packets sent to publishers.
    pub transport_feedback: AtomicU64,
}

struct Inner {
    plane: MediaPlane,
    key: u64,
    open: Open,
}

/// A voice channel's SFU session. Cheap to clone.
#[derive(Clone)]
pub struct Channel(Arc<Inner>);

impl Channel {
    /// A channel with no participants on the node's media plane; events arrive on the
    /// returned receiver.
    pub fn new(plane: &MediaPlane) -> (Channel, mpsc::UnboundedReceiver<SfuEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let open = Open {
            events,
            counters: Arc::new(Counters::default()),
            size: Arc::new(AtomicUsize::new(0)),
        };
        let inner = Inner {
            plane: plane.clone(),
            key: plane.next_key(),
            open,
        };
        (Channel(Arc::new(inner)), rx)
    }

    /// Packet counters.
    pub fn counters(&self) -> &Counters {
        &self.0.open.counters
    }

    /// Participants with a connection.
    pub fn len(&self) -> usize {
        self.0.open.size.load(Ordering::Relaxed)
    }

    /// Whether nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, MediaError> {
        let (tx, rx) = oneshot::channel();
        self.0.plane.send(self.0.key, cmd(tx))?;
        rx.await.map_err(|_| MediaError::Stopped)
    }

    /// A participant joins with their client's offer; returns the answer. Afterwards the
    /// tracks of everyone else are added with a server offer (`sync`).
    pub async fn join(
        &self,
        id: PeerId,
        offer: String,
        rights: Rights,
    ) -> Result<String, MediaError> {
        let (channel, open) = (self.0.key, self.0.open.clone());
        self.ask(|reply| Cmd::Join {
            channel,
            open,
            peer: id,
            offer,
            rights,
            reply,
        })
        .await?
    }

    /// Brings every participant's outgoing tracks in line with who publishes (a track per
    /// other participant allowed to speak), renegotiating those whose set changed.
    pub async fn sync(&self) {
        let channel = self.0.key;
        let _ = self.ask(|reply| Cmd::Sync { channel, reply }).await;
    }

    /// The client's answer to the last offer.
    pub async fn apply_answer(&self, id: PeerId, sdp: String) -> Result<(), MediaError> {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Answer {
            channel,
            peer: id,
            sdp,
            reply,
        })
        .await?
    }

    /// A remote ICE candidate; only UDP ones are accepted (see [`crate::signal`]).
    pub async fn add_candidate(
        &self,
        id: PeerId,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), MediaError> {
        crate::signal::check_candidate(&candidate)?;
        let channel = self.0.key;
        self.ask(|reply| Cmd::Candidate {
            channel,
            peer: id,
            candidate,
            reply,
        })
        .await?
    }

    /// Changes a participant's mute/deafen/speak rights; returns the previous ones.
    pub async fn set_rights(&self, id: PeerId, rights: Rights) -> Result<Rights, MediaError> {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Rights {
            channel,
            peer: id,
            rights,
            reply,
        })
        .await?
    }

    /// A participant leaves (or is removed): their connection closes, the others stop
    /// receiving them.
    pub async fn leave(&self, id: PeerId) -> bool {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Leave {
            channel,
            peer: id,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// Whether `subscriber` receives `publisher`'s `track` (a client pauses the videos it
    /// does not display; resuming asks the publisher for a keyframe).
    pub async fn subscribe(
        &self,
        subscriber: PeerId,
        publisher: PeerId,
        track: Track,
        paused: bool,
    ) -> Result<(), MediaError> {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Subscribe {
            channel,
            peer: subscriber,
            publisher,
            track,
            paused,
            reply,
        })
        .await?
    }

    /// The highest simulcast layer `subscriber` wants of `publisher`'s `track` (it shows it
    /// small or large); the SFU switches at the layer's next keyframe.
    pub async fn set_layer(
        &self,
        subscriber: PeerId,
        publisher: PeerId,
        track: Track,
        layer: Layer,
    ) -> Result<(), MediaError> {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Layer {
            channel,
            peer: subscriber,
            publisher,
            track,
            layer,
            reply,
        })
        .await?
    }

    /// Everyone leaves (the channel ends).
    pub async fn close(&self) {
        let channel = self.0.key;
        let _ = self.ask(|reply| Cmd::Close { channel, reply }).await;
    }

    /// What the participants' connections report from RTCP about what the server receives:
    /// packets lost in all, and the worst jitter, seconds.
    pub async fn rtcp_stats(&self) -> RtcpStats {
        let channel = self.0.key;
        self.ask(|reply| Cmd::Stats { channel, reply })
            .await
            .unwrap_or_default()
    }

    /// Reports speaking changes that are due (call a few times a second).
    pub fn tick(&self) {
        let channel = self.0.key;
        let _ = self.0.plane.send(channel, Cmd::Tick { channel });
    }
}
