//! The node's media plane: ONE UDP socket for every participant's media, and a loop of our
//! own on a thread of its own driving a sans-IO peer connection (`rtc`, webrtc-rs's core)
//! per participant.
//!
//! - The socket is bound on first use (a node that never hosts voice binds nothing) at
//!   `[voice] udp_port`; the server is ICE-lite: it never sends checks, it answers them.
//! - A datagram is routed to its participant by its source 4-tuple (a hash map); the first
//!   packets of a participant, STUN checks, are routed by the server ufrag their USERNAME
//!   names (a second hash map). Anything else is dropped and counted by reason
//!   (`voiceflow_voice_dropped_datagrams_total{reason}`).
//! - Room actors talk to the loop with [`Cmd`]s over a channel ([`crate::Channel`] sends
//!   them); packets never leave the loop: received, decrypted once, rewritten and encrypted
//!   per subscriber leg, and sent, in one pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::RTCIceCandidateInit;

use crate::engine::MediaConfig;
use crate::sfu::{Counters, PeerId, Rights, RtcpStats, SfuEvent, Track};
use crate::{MediaError, PlaneStats};

mod feedback;
mod forward;
mod inbound;
mod layers;
mod legs;
mod media_loop;
mod nack;
mod peer;
mod rtx;
mod shard;
mod signalling;
mod simulcast;
mod spawn;
pub(crate) mod srtp;
mod twcc;
mod video;

/// The test clients tell keyframes as the SFU does.
pub(crate) use layers::vp8_keyframe;

/// Whether an RTP payload of the codec `mime` (`video/VP9`, …) starts a keyframe, as the SFU
/// tells (the test clients' view).
pub(crate) fn keyframe(mime: &str, payload: &[u8]) -> bool {
    mime.split_once('/')
        .and_then(|(_, name)| video::Codec::from_name(name))
        .is_some_and(|codec| layers::is_keyframe(codec, payload))
}

pub(crate) use peer::node_certificate;

/// What a channel hands the loop when its first participant joins.
#[derive(Clone)]
pub(crate) struct Open {
    pub(crate) events: mpsc::UnboundedSender<SfuEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) size: Arc<AtomicUsize>,
}

/// A command from a channel to the media loop.
pub(crate) enum Cmd {
    Join {
        channel: u64,
        open: Open,
        peer: PeerId,
        offer: String,
        rights: Rights,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Sync {
        channel: u64,
        reply: oneshot::Sender<()>,
    },
    Answer {
        channel: u64,
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Candidate {
        channel: u64,
        peer: PeerId,
        candidate: RTCIceCandidateInit,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Rights {
        channel: u64,
        peer: PeerId,
        rights: Rights,
        reply: oneshot::Sender<Result<Rights, MediaError>>,
    },
    Subscribe {
        channel: u64,
        peer: PeerId,
        publisher: PeerId,
        track: Track,
        paused: bool,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Layer {
        channel: u64,
        peer: PeerId,
        publisher: PeerId,
        track: Track,
        layer: crate::Layer,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Leave {
        channel: u64,
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Close {
        channel: u64,
        reply: oneshot::Sender<()>,
    },
    Stats {
        channel: u64,
        reply: oneshot::Sender<RtcpStats>,
    },
    Tick {
        channel: u64,
    },
}

struct Running {
    /// One per loop; a channel's commands go to loop `channel % len`.
    commands: Vec<mpsc::UnboundedSender<Cmd>>,
    local: SocketAddr,
}

struct Inner {
    config: MediaConfig,
    running: Mutex<Option<Running>>,
    next_key: AtomicU64,
    stats: Arc<PlaneStats>,
}

/// The node's media plane (one per node). Cheap to clone.
#[derive(Clone)]
pub struct MediaPlane(Arc<Inner>);

impl std::fmt::Debug for MediaPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlane")
            .field("config", &self.0.config)
            .field("local", &self.local_addr())
            .finish()
    }
}

impl MediaPlane {
    /// A plane with `config`; its socket is bound and its loop started on first use.
    pub fn new(config: MediaConfig) -> MediaPlane {
        MediaPlane(Arc::new(Inner {
            config,
            running: Mutex::new(None),
            next_key: AtomicU64::new(1),
            stats: Arc::new(PlaneStats::default()),
        }))
    }

    /// The settings.
    pub fn config(&self) -> &MediaConfig {
        &self.0.config
    }

    /// Binds the socket and starts the loop if not done yet; the socket's address.
    pub fn start(&self) -> Result<SocketAddr, MediaError> {
        let mut running = self.0.running.lock();
        if let Some(r) = running.as_ref()
            && !r.commands.iter().any(|c| c.is_closed())
        {
            return Ok(r.local);
        }
        let (commands, local) = spawn::spawn(self.0.config.clone(), self.0.stats.clone())?;
        tracing::info!(%local, "voice: media socket bound");
        metrics::gauge!("voiceflow_voice_ports_in_use").set(1.0);
        *running = Some(Running { commands, local });
        Ok(local)
    }

    /// The media socket's address, once bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.0.running.lock().as_ref().map(|r| r.local)
    }

    /// Datagrams dropped by reason, connections, and the like.
    pub fn stats(&self) -> &PlaneStats {
        &self.0.stats
    }

    pub(crate) fn next_key(&self) -> u64 {
        self.0.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands `cmd` to the loop (started if need be).
    pub(crate) fn send(&self, channel: u64, cmd: Cmd) -> Result<(), MediaError> {
        self.start()?;
        let running = self.0.running.lock();
        let r = running.as_ref().ok_or(MediaError::Stopped)?;
        // A channel lives on one loop: its participants forward to each other there.
        let shard = (channel % r.commands.len().max(1) as u64) as usize;
        let commands = r.commands.get(shard).ok_or(MediaError::Stopped)?;
        commands.send(cmd).map_err(|_| MediaError::Stopped)
    }
}
