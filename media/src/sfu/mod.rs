//! One voice channel's SFU session: a peer connection per participant with the server, every
//! participant's Opus packets forwarded (RTP, no transcoding) to every other participant who
//! is not deafened, on a track of its own per (subscriber, publisher) pair.
//!
//! Signalling: the client offers (`join`), the server answers; afterwards only the server
//! offers (`Offer` events) when the set of tracks a participant receives changes, and the
//! client answers (`apply_answer`), one negotiation at a time per participant. ICE candidates
//! trickle both ways (`Candidate` events, `add_candidate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::MediaError;
use crate::engine::{MediaConfig, PortPool, peer_connection};

mod handler;
mod legs;

use crate::speaking::{SpeakingConfig, SpeakingDetector};
use handler::Handler;
use legs::{refresh_legs, sync_legs};

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
    /// Their packets are dropped at the server.
    pub muted: bool,
    /// They receive nothing.
    pub deafened: bool,
    /// Their audio may be forwarded at all (stage listeners may not speak).
    pub may_speak: bool,
}

impl Default for Rights {
    fn default() -> Self {
        Rights {
            muted: false,
            deafened: false,
            may_speak: true,
        }
    }
}

/// One outgoing track: a publisher's audio on a subscriber's connection.
struct Leg {
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    /// Payload type and audio-level extension id negotiated on this subscriber's connection;
    /// `None` until its answer came back.
    params: Mutex<Option<(u8, Option<u8>)>>,
    queue: mpsc::Sender<rtc::rtp::Packet>,
}

#[derive(Default)]
struct Negotiation {
    in_flight: bool,
    again: bool,
}

struct Peer {
    id: PeerId,
    pc: Arc<dyn PeerConnection>,
    port: Option<u16>,
    rights: Mutex<Rights>,
    legs: Mutex<HashMap<PeerId, Arc<Leg>>>,
    negotiation: tokio::sync::Mutex<Negotiation>,
    remote_set: AtomicBool,
    early_candidates: Mutex<Vec<RTCIceCandidateInit>>,
    speaking: Mutex<SpeakingDetector>,
    connected: AtomicBool,
    received: AtomicU64,
    /// The answer to the participant's own offer is made: tracks may be added from now on
    /// (one added while it is being made would land on the participant's own m-line).
    ready: AtomicBool,
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
    /// Packets dropped (muted, not allowed to speak, a full subscriber queue).
    pub dropped: AtomicU64,
}

struct Inner {
    config: MediaConfig,
    ports: Arc<PortPool>,
    peers: Mutex<HashMap<PeerId, Arc<Peer>>>,
    events: mpsc::UnboundedSender<SfuEvent>,
    counters: Counters,
    speaking: SpeakingConfig,
    /// One `sync` at a time: two at once could give a subscriber the same publisher twice.
    sync_lock: tokio::sync::Mutex<()>,
}

/// A voice channel's SFU session. Cheap to clone.
#[derive(Clone)]
pub struct Channel(Arc<Inner>);

impl Channel {
    /// A channel with no participants; events arrive on the returned receiver.
    pub fn new(
        config: MediaConfig,
        ports: Arc<PortPool>,
    ) -> (Channel, mpsc::UnboundedReceiver<SfuEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            config,
            ports,
            peers: Mutex::new(HashMap::new()),
            events,
            counters: Counters::default(),
            speaking: SpeakingConfig::default(),
            sync_lock: tokio::sync::Mutex::new(()),
        };
        (Channel(Arc::new(inner)), rx)
    }

    /// Packet counters.
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    /// Participants with a connection.
    pub fn len(&self) -> usize {
        self.0.peers.lock().len()
    }

    /// Whether nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A participant joins with their client's offer; returns the answer. Afterwards the
    /// tracks of everyone else are added with a server offer.
    pub async fn join(
        &self,
        id: PeerId,
        offer: String,
        rights: Rights,
    ) -> Result<String, MediaError> {
        if self.0.peers.lock().contains_key(&id) {
            return Err(MediaError::AlreadyJoined);
        }
        let offer = RTCSessionDescription::offer(offer).map_err(MediaError::sdp)?;
        let (pc, port) = self.connect(id).await?;
        let peer = Arc::new(Peer {
            id,
            pc,
            port,
            rights: Mutex::new(rights),
            legs: Mutex::new(HashMap::new()),
            negotiation: tokio::sync::Mutex::new(Negotiation::default()),
            remote_set: AtomicBool::new(false),
            early_candidates: Mutex::new(Vec::new()),
            speaking: Mutex::new(SpeakingDetector::new(self.0.speaking)),
            connected: AtomicBool::new(false),
            received: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        });
        self.0.peers.lock().insert(id, peer.clone());
        match answer(&peer, offer).await {
            Ok(sdp) => {
                peer.ready.store(true, Ordering::Release);
                self.watch(&peer);
                Ok(self.0.config.announce(sdp))
            }
            Err(e) => {
                self.leave(id).await;
                Err(e)
            }
        }
    }

    /// A connection bound to a free port of the range (ports another process holds are
    /// skipped), or to any port without a range.
    async fn connect(
        &self,
        id: PeerId,
    ) -> Result<(Arc<dyn PeerConnection>, Option<u16>), MediaError> {
        let ip = self.0.config.bind_ip;
        let handler = || {
            Arc::new(Handler {
                channel: Arc::downgrade(&self.0),
                peer: id,
            })
        };
        let Some(range) = self.0.config.port_range else {
            return Ok((peer_connection(format!("{ip}:0"), handler()).await?, None));
        };
        let mut busy = Vec::new();
        let result = loop {
            let Some(port) = self.0.ports.take(range) else {
                break Err(MediaError::NoPort);
            };
            match peer_connection(format!("{ip}:{port}"), handler()).await {
                Ok(pc) => break Ok((pc, Some(port))),
                Err(e) => {
                    tracing::debug!(port, error = %e, "voice: port busy, trying the next");
                    busy.push(port);
                }
            }
        };
        for port in busy {
            self.0.ports.give(port);
        }
        result
    }

    /// Gives up on a participant whose connection is not up within the connect timeout.
    fn watch(&self, peer: &Arc<Peer>) {
        let (weak, id) = (Arc::downgrade(&self.0), peer.id);
        let timeout = self.0.config.connect_timeout;
        let peer = Arc::downgrade(peer);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let (Some(inner), Some(peer)) = (weak.upgrade(), peer.upgrade()) else {
                return;
            };
            if !peer.connected.load(Ordering::Acquire) {
                let _ = inner.events.send(SfuEvent::Failed { peer: id });
            }
        });
    }

    /// Brings every participant's outgoing tracks in line with who publishes (a track per
    /// other participant allowed to speak), renegotiating those whose set changed.
    pub async fn sync(&self) {
        let _one_at_a_time = self.0.sync_lock.lock().await;
        let peers: Vec<Arc<Peer>> = self.0.peers.lock().values().cloned().collect();
        let publishers: Vec<PeerId> = peers
            .iter()
            .filter(|p| p.rights.lock().may_speak)
            .map(|p| p.id)
            .collect();
        // A participant whose own offer is still being answered is brought in line by the
        // sync that follows its join.
        for peer in peers.iter().filter(|p| p.ready.load(Ordering::Acquire)) {
            let wanted: Vec<PeerId> = publishers
                .iter()
                .copied()
                .filter(|p| *p != peer.id)
                .collect();
            match sync_legs(peer, &wanted).await {
                Ok(true) => self.renegotiate(peer).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(peer = peer.id, error = %e, "voice: cannot change tracks"),
            }
        }
    }

    async fn renegotiate(&self, peer: &Arc<Peer>) {
        let mut state = peer.negotiation.lock().await;
        if state.in_flight {
            state.again = true;
            return;
        }
        match offer(peer).await {
            Ok(sdp) => {
                state.in_flight = true;
                let sdp = self.0.config.announce(sdp);
                let _ = self.0.events.send(SfuEvent::Offer { peer: peer.id, sdp });
            }
            Err(e) => tracing::warn!(peer = peer.id, error = %e, "voice: cannot create an offer"),
        }
    }

    /// The client's answer to the last offer.
    pub async fn apply_answer(&self, id: PeerId, sdp: String) -> Result<(), MediaError> {
        let peer = self.peer(id)?;
        let answer = RTCSessionDescription::answer(sdp).map_err(MediaError::sdp)?;
        {
            let mut state = peer.negotiation.lock().await;
            if !state.in_flight {
                return Err(MediaError::NoOfferPending);
            }
            peer.pc
                .set_remote_description(answer)
                .await
                .map_err(MediaError::sdp)?;
            state.in_flight = false;
        }
        refresh_legs(&peer).await;
        let again = std::mem::take(&mut peer.negotiation.lock().await.again);
        if again {
            self.renegotiate(&peer).await;
        }
        Ok(())
    }

    /// A remote ICE candidate (kept until the remote description is set); only UDP ones are
    /// accepted (see [`crate::signal`]).
    pub async fn add_candidate(
        &self,
        id: PeerId,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), MediaError> {
        crate::signal::check_candidate(&candidate)?;
        let peer = self.peer(id)?;
        if !peer.remote_set.load(Ordering::Acquire) {
            peer.early_candidates.lock().push(candidate);
            return Ok(());
        }
        peer.pc
            .add_ice_candidate(candidate)
            .await
            .map_err(MediaError::candidate)
    }

    /// Changes a participant's mute/deafen/speak rights; returns the previous ones.
    pub async fn set_rights(&self, id: PeerId, rights: Rights) -> Result<Rights, MediaError> {
        let peer = self.peer(id)?;
        let before = std::mem::replace(&mut *peer.rights.lock(), rights);
        if rights.muted || !rights.may_speak {
            peer.speaking.lock().silence();
            self.report_speaking(&peer, Instant::now());
        }
        if before.may_speak != rights.may_speak {
            self.sync().await;
        }
        Ok(before)
    }

    /// A participant leaves (or is removed): their connection closes, the others stop
    /// receiving them.
    pub async fn leave(&self, id: PeerId) -> bool {
        let Some(peer) = self.0.peers.lock().remove(&id) else {
            return false;
        };
        peer.legs.lock().clear();
        if let Err(e) = peer.pc.close().await {
            tracing::debug!(peer = id, error = %e, "voice: close");
        }
        if let Some(port) = peer.port {
            self.0.ports.give(port);
        }
        self.sync().await;
        true
    }

    /// Everyone leaves (the channel ends).
    pub async fn close(&self) {
        let ids: Vec<PeerId> = self.0.peers.lock().keys().copied().collect();
        for id in ids {
            self.leave(id).await;
        }
    }

    /// What the participants' connections report from RTCP about what the server receives:
    /// packets lost in all, and the worst jitter, seconds.
    pub async fn rtcp_stats(&self) -> RtcpStats {
        let peers: Vec<Arc<Peer>> = self.0.peers.lock().values().cloned().collect();
        let mut stats = RtcpStats::default();
        for peer in peers {
            let report = peer
                .pc
                .get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None)
                .await;
            for inbound in report.inbound_rtp_streams() {
                let r = &inbound.received_rtp_stream_stats;
                stats.packets_lost += r.packets_lost.max(0) as u64;
                // Reported in RTP clock units (48 kHz for Opus).
                stats.jitter_secs = stats.jitter_secs.max(r.jitter / 48_000.0);
            }
        }
        stats
    }

    /// Reports speaking changes that are due (call a few times a second).
    pub fn tick(&self) {
        let now = Instant::now();
        let peers: Vec<Arc<Peer>> = self.0.peers.lock().values().cloned().collect();
        for peer in peers {
            self.report_speaking(&peer, now);
        }
    }

    fn report_speaking(&self, peer: &Peer, now: Instant) {
        if let Some(speaking) = peer.speaking.lock().tick(now) {
            let _ = self.0.events.send(SfuEvent::Speaking {
                peer: peer.id,
                speaking,
            });
        }
    }

    fn peer(&self, id: PeerId) -> Result<Arc<Peer>, MediaError> {
        self.0
            .peers
            .lock()
            .get(&id)
            .cloned()
            .ok_or(MediaError::NotJoined)
    }
}

/// Applies the client's offer and answers it.
async fn answer(peer: &Peer, offer: RTCSessionDescription) -> Result<String, MediaError> {
    peer.pc
        .set_remote_description(offer)
        .await
        .map_err(MediaError::sdp)?;
    peer.remote_set.store(true, Ordering::Release);
    let early: Vec<RTCIceCandidateInit> = std::mem::take(&mut *peer.early_candidates.lock());
    for candidate in early {
        let _ = peer.pc.add_ice_candidate(candidate).await;
    }
    let answer = peer.pc.create_answer(None).await.map_err(MediaError::sdp)?;
    set_local(peer, answer).await
}

/// A new offer for the participant's current tracks.
async fn offer(peer: &Peer) -> Result<String, MediaError> {
    let offer = peer.pc.create_offer(None).await.map_err(MediaError::sdp)?;
    set_local(peer, offer).await
}

/// Applies the server's own description and returns it as negotiated (with candidates).
async fn set_local(peer: &Peer, description: RTCSessionDescription) -> Result<String, MediaError> {
    peer.pc
        .set_local_description(description)
        .await
        .map_err(MediaError::sdp)?;
    let local = peer
        .pc
        .local_description()
        .await
        .ok_or(MediaError::NoDescription)?;
    Ok(local.sdp)
}
