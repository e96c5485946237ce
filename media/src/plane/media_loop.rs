//! A media loop: one thread, the node's one socket (shared with the other loops when
//! `media_threads` > 1, see `shard`), the sans-IO peer connection of every participant of
//! the channels it owns. Datagrams in → demultiplexed → `handle_read` on their connection → whatever it has to
//! send goes out, whatever media it decrypted is forwarded; commands from the channels and
//! the connections' timers in between.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::mpsc;

use super::peer::{NewPeer, Peer};
use super::shard::{self, Addrs, Router};
use super::spawn::{Input, Received, next_input};
use super::{Cmd, Open};
use crate::demux::{self, Kind};
use crate::engine::MediaConfig;
use crate::sfu::{PeerId, SfuEvent};
use crate::{DropReason, MediaError, PlaneStats};

/// A channel's participants, as the loop knows them.
pub(super) struct Room {
    pub(super) open: Open,
    pub(super) members: HashMap<PeerId, u64>,
}

pub(super) struct Loop {
    pub(super) config: MediaConfig,
    /// The node's one media socket, shared by every loop for sending (non-blocking).
    pub(super) socket: Arc<std::net::UdpSocket>,
    /// The socket's address as the host candidate names it.
    pub(super) local: SocketAddr,
    pub(super) stats: Arc<PlaneStats>,
    pub(super) peers: HashMap<u64, Peer>,
    next_peer: u64,
    pub(super) rooms: HashMap<u64, Room>,
    pub(super) by_ufrag: HashMap<String, u64>,
    pub(super) by_addr: Addrs,
    timers: BTreeSet<(Instant, u64)>,
    certificate: Option<RTCCertificate>,
    /// Scratch space, reused.
    inbox: Vec<rtc::rtp::Packet>,
    events: Vec<RTCPeerConnectionEvent>,
    /// The forwarding path's packet buffer, reused for every leg.
    pub(super) out: Vec<u8>,
    /// The receiving path's packet buffer, reused for every packet.
    pub(super) inbuf: Vec<u8>,
    /// Where the jitter clock of received streams starts.
    pub(super) epoch: Instant,
    /// Media read from the socket and not forwarded yet (see `datagram`), oldest first.
    backlog: VecDeque<Queued>,
    /// Buffers of forwarded backlog entries, reused.
    spare: Vec<Vec<u8>>,
}

/// A media datagram waiting in the loop's backlog.
struct Queued {
    at: Instant,
    from: SocketAddr,
    data: Vec<u8>,
}

/// Media older than this when its turn comes is dropped (counted `overloaded`), not
/// forwarded: audio that late is of no use to a listener, and a loop that is behind must
/// not fall further behind on it.
const MEDIA_MAX_AGE: Duration = Duration::from_millis(100);

/// Most media datagrams held in the backlog; beyond, the oldest is dropped (`overloaded`).
const MAX_BACKLOG: usize = 16_384;

/// Commands handled per turn at most (a join's answer is well under a millisecond).
const COMMANDS_PER_TURN: usize = 8;

/// Backlog buffers kept for reuse at most.
const MAX_SPARE: usize = 1024;

/// Datagrams read from the socket per turn, as multiples of `recv_batch` (media forwarded
/// per turn): reading is cheap next to forwarding, so the kernel's queue stays short even
/// when the loop is behind, and what is not media (ICE checks, DTLS flights, RTCP) is handled
/// as soon as it is read instead of after the media ahead of it.
const READS_PER_FORWARD: usize = 16;

/// Most source addresses remembered per participant (each ICE restart or network move adds
/// one; the oldest is forgotten).
const MAX_ADDRS: usize = 4;

impl Loop {
    pub(super) fn new(
        config: MediaConfig,
        socket: Arc<std::net::UdpSocket>,
        bound: SocketAddr,
        stats: Arc<PlaneStats>,
        shared: Option<(Arc<Router>, usize)>,
    ) -> Loop {
        // An unspecified bind address cannot be a candidate: name the announced one.
        let ip = match config.announced_ip {
            Some(public) if bound.ip().is_unspecified() => public,
            _ => bound.ip(),
        };
        Loop {
            local: SocketAddr::new(ip, bound.port()),
            config,
            socket,
            stats,
            peers: HashMap::new(),
            next_peer: 1,
            rooms: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: Addrs::new(shared),
            timers: BTreeSet::new(),
            certificate: None,
            inbox: Vec::new(),
            events: Vec::new(),
            out: Vec::with_capacity(1500),
            inbuf: Vec::with_capacity(1500),
            epoch: Instant::now(),
            backlog: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Cmd>,
        mut input: Option<Input>,
    ) {
        let mut buf = vec![0u8; 2048];
        let mut housekeeping = tokio::time::interval(Duration::from_millis(100));
        let batch = self.config.recv_batch.max(1);
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let timer = async move {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Not biased: whatever is ready gets its turn. With commands always first, a burst
            // of signalling (a thousand joins and their renegotiations) held back the socket,
            // where the joiners' own ICE checks and DTLS flights wait, and the connections'
            // timers (the ICE tick that starts DTLS, handshake retransmissions) until the last
            // command was handled: every join waited for all the others.
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => {
                        self.command(cmd);
                        // A few more while here: signalling is what a joining participant
                        // waits for, and each command is bounded work.
                        for _ in 1..COMMANDS_PER_TURN {
                            match commands.try_recv() {
                                Ok(cmd) => self.command(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                received = next_input(input.as_mut(), &mut buf) => match received {
                    Received::One(first) => {
                        let now = Instant::now();
                        if let Ok((n, from)) = first {
                            self.datagram(&buf[..n], from, now);
                        }
                        if let Some(Input::Socket(socket)) = &input {
                            for _ in 1..batch * READS_PER_FORWARD {
                                match socket.try_recv_from(&mut buf) {
                                    Ok((n, from)) => self.datagram(&buf[..n], from, now),
                                    Err(_) => break,
                                }
                            }
                        }
                        self.forward_backlog(batch);
                    }
                    Received::Batch(Some(datagrams)) => {
                        for (data, from) in datagrams.iter() {
                            self.deliver(demux::classify(data), data, from);
                        }
                    }
                    // The receiving thread is gone: nothing will arrive any more.
                    Received::Batch(None) => input = None,
                },
                () = std::future::ready(()), if !self.backlog.is_empty() => {
                    self.forward_backlog(batch);
                }
                () = timer => self.timeouts(),
                _ = housekeeping.tick() => self.housekeeping(),
            }
            // Due timers are not left waiting for their turn behind a busy socket.
            if self
                .timers
                .first()
                .is_some_and(|(t, _)| *t <= Instant::now())
            {
                self.timeouts();
            }
        }
        let keys: Vec<u64> = self.peers.keys().copied().collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// One datagram from `from`, read by this loop at `now`: media joins the backlog, the
    /// rest is handled at once.
    fn datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let kind = demux::classify(data);
        shard::count_received(&self.stats, kind, data);
        // RTCP packet types are 192–223 (RFC 5761); the rest of this class is RTP. RTP from
        // a source nobody is known by is dropped (and counted) at once: a stranger's flood
        // must not take the backlog's room.
        if kind != Kind::Rtp || (192..=223).contains(&data[1]) || self.by_addr.get(&from).is_none()
        {
            return self.deliver(kind, data, from);
        }
        if self.backlog.len() >= MAX_BACKLOG
            && let Some(old) = self.backlog.pop_front()
        {
            self.stats.count_drop(DropReason::Overloaded);
            self.recycle(old.data);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.backlog.push_back(Queued {
            at: now,
            from,
            data: buf,
        });
    }

    /// Forwards up to `n` media datagrams of the backlog, oldest first; those too old are
    /// dropped.
    fn forward_backlog(&mut self, n: usize) {
        let now = Instant::now();
        for _ in 0..n {
            let Some(queued) = self.backlog.pop_front() else {
                break;
            };
            if now.saturating_duration_since(queued.at) > MEDIA_MAX_AGE {
                self.stats.count_drop(DropReason::Overloaded);
            } else {
                self.deliver(Kind::Rtp, &queued.data, queued.from);
            }
            self.recycle(queued.data);
        }
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE {
            self.spare.push(buf);
        }
    }

    /// One datagram (already counted) to its participant's connection.
    fn deliver(&mut self, kind: Kind, data: &[u8], from: SocketAddr) {
        let key = match kind {
            Kind::Garbage => return self.stats.count_drop(DropReason::Garbage),
            Kind::Stun => {
                let named = demux::local_ufrag(data).and_then(|u| self.by_ufrag.get(u));
                match named.or_else(|| self.by_addr.get(&from)) {
                    Some(key) => *key,
                    None => return self.stats.count_drop(DropReason::UnknownUfrag),
                }
            }
            Kind::Dtls | Kind::Rtp => match self.by_addr.get(&from) {
                Some(key) => *key,
                None => return self.stats.count_drop(DropReason::UnknownSource),
            },
        };
        let now = Instant::now();
        // RTCP packet types are 192–223 (RFC 5761); the rest of this class is RTP: media,
        // read here rather than by `rtc` once the connection's keys are known.
        if kind == Kind::Rtp && !(192..=223).contains(&data[1]) && self.receive(key, data, now) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return self.stats.count_drop(DropReason::UnknownSource);
        };
        // The connection knows the client by the address it was established with; a client
        // that moved is followed here (checks from the new address re-authenticate it).
        let peer_addr = match kind {
            Kind::Stun => from,
            _ => peer.pc_addr.unwrap_or(from),
        };
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(data),
        };
        if peer.pc.handle_read(msg).is_err() {
            self.stats.count_drop(DropReason::Rejected);
        }
        self.drain(key, now);
    }

    /// Everything a connection has for us after an input: datagrams to send, events, media.
    pub(super) fn drain(&mut self, key: u64, now: Instant) {
        let mut inbox = std::mem::take(&mut self.inbox);
        let mut events = std::mem::take(&mut self.events);
        let mut rtcp = Vec::new();
        if let Some(peer) = self.peers.get_mut(&key) {
            flush(&self.socket, &self.stats, &mut self.by_addr, key, peer);
            while let Some(event) = peer.pc.poll_event() {
                events.push(event);
            }
            while let Some(msg) = peer.pc.poll_read() {
                match msg.message {
                    RTCMessage::RtpPacket(_, packet) => inbox.push(packet),
                    // Subscribers' keyframe requests (see `video`); reports feed `rtc`'s own
                    // statistics only.
                    RTCMessage::RtcpPacket(_, packets) => rtcp.push(packets),
                    RTCMessage::DataChannelMessage(..) => {}
                    // `RTCMessage` is non-exhaustive.
                    _ => {}
                }
            }
            flush(&self.socket, &self.stats, &mut self.by_addr, key, peer);
        }
        for event in events.drain(..) {
            self.pc_event(key, event);
        }
        for packet in inbox.drain(..) {
            self.forward_rtc(key, packet, now);
        }
        for packets in rtcp {
            self.subscriber_rtcp(key, &packets, now);
        }
        self.inbox = inbox;
        self.events = events;
        self.rearm(key);
    }

    fn pc_event(&mut self, key: u64, event: RTCPeerConnectionEvent) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(room) = self.rooms.get(&peer.channel) else {
            return;
        };
        let id = peer.id;
        match event {
            RTCPeerConnectionEvent::OnIceCandidateEvent(event) => {
                if let Ok(mut candidate) = event.candidate.to_json() {
                    candidate.candidate = self.config.announce(candidate.candidate);
                    let _ = room.open.events.send(SfuEvent::Candidate {
                        peer: id,
                        candidate,
                    });
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected if !peer.connected => {
                    peer.connected = true;
                    peer.deadline = None;
                    let _ = room.open.events.send(SfuEvent::Connected { peer: id });
                }
                RTCPeerConnectionState::Failed => {
                    let _ = room.open.events.send(SfuEvent::Failed { peer: id });
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Re-arms a connection's timer.
    fn rearm(&mut self, key: u64) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let next = peer.pc.poll_timeout();
        if next != peer.timer {
            if let Some(t) = peer.timer {
                self.timers.remove(&(t, key));
            }
            if let Some(t) = next {
                self.timers.insert((t, key));
            }
            peer.timer = next;
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        while let Some(&(t, key)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, key));
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            peer.timer = None;
            if let Err(e) = peer.pc.handle_timeout(now) {
                tracing::debug!(error = %e, "voice: connection timeout handling");
            }
            self.drain(key, now);
        }
    }

    /// Connections not up within the connect timeout are reported; drop counters go out as
    /// metrics.
    fn housekeeping(&mut self) {
        let now = Instant::now();
        for peer in self.peers.values_mut() {
            if let Some(deadline) = peer.deadline
                && deadline <= now
                && !peer.connected
            {
                peer.deadline = None;
                if let Some(room) = self.rooms.get(&peer.channel) {
                    let _ = room.open.events.send(SfuEvent::Failed { peer: peer.id });
                }
            }
        }
        self.select_all_layers(now);
        self.publisher_estimates(now);
        self.transport_feedback(now);
        self.due_keyframes(now);
        self.stats.export();
    }

    pub(super) fn key(&self, channel: u64, peer: PeerId) -> Result<u64, MediaError> {
        self.rooms
            .get(&channel)
            .and_then(|r| r.members.get(&peer))
            .copied()
            .ok_or(MediaError::NotJoined)
    }

    pub(super) fn join(
        &mut self,
        channel: u64,
        open: Open,
        id: PeerId,
        offer: String,
        rights: crate::Rights,
        now: Instant,
    ) -> Result<String, MediaError> {
        let room = self.rooms.entry(channel).or_insert_with(|| Room {
            open,
            members: HashMap::new(),
        });
        if room.members.contains_key(&id) {
            return Err(MediaError::AlreadyJoined);
        }
        if self.certificate.is_none() {
            self.certificate = Some(super::peer::node_certificate()?);
        }
        let (by_ufrag, shared) = (&self.by_ufrag, self.by_addr.shared());
        // Unique across every loop: the receiving thread routes checks by it.
        let taken = |u: &str| {
            by_ufrag.contains_key(u) || shared.is_some_and(|(router, _)| router.has_ufrag(u))
        };
        let new = NewPeer {
            id,
            channel,
            rights,
            local: self.local,
            certificate: self.certificate.as_ref(),
            connect_timeout: self.config.connect_timeout,
            taken: &taken,
        };
        let (peer, sdp) = Peer::answer(new, offer, now)?;
        let key = self.next_peer;
        self.next_peer += 1;
        self.by_ufrag.insert(peer.ufrag.clone(), key);
        if let Some((router, shard)) = self.by_addr.shared() {
            router.add_ufrag(&peer.ufrag, *shard);
        }
        room.members.insert(id, key);
        room.open.size.store(room.members.len(), Ordering::Relaxed);
        self.peers.insert(key, peer);
        // Every loop adds its own: a count, not a store.
        self.stats.peers.fetch_add(1, Ordering::Relaxed);
        self.drain(key, now);
        let sdp = super::video::cap_video(sdp, self.config.video_max_kbps);
        Ok(self.config.announce(sdp))
    }

    /// Removes a participant's connection (closing it) from every table.
    pub(super) fn remove(&mut self, key: u64) {
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        self.stats.peers.fetch_sub(1, Ordering::Relaxed);
        if let Some(room) = self.rooms.get_mut(&peer.channel) {
            room.members.remove(&peer.id);
            room.open.size.store(room.members.len(), Ordering::Relaxed);
        }
        if let Err(e) = peer.pc.close() {
            tracing::debug!(error = %e, "voice: close");
        }
        flush(&self.socket, &self.stats, &mut self.by_addr, key, &mut peer);
        self.by_ufrag.remove(&peer.ufrag);
        if let Some((router, _)) = self.by_addr.shared() {
            router.remove_ufrag(&peer.ufrag);
        }
        for addr in &peer.addrs {
            self.by_addr.remove_if(addr, key);
        }
        if let Some(t) = peer.timer {
            self.timers.remove(&(t, key));
        }
    }
}

/// Sends what a connection has queued. STUN goes where the connection says (a check's
/// response goes back to where the check came from); everything else to where the client
/// is now. A successful check response means the client proved it holds the ICE password
/// from that address: it is routed to this participant from now on.
pub(super) fn flush(
    socket: &std::net::UdpSocket,
    stats: &PlaneStats,
    by_addr: &mut Addrs,
    key: u64,
    peer: &mut Peer,
) {
    while let Some(out) = peer.pc.poll_write() {
        let data = &out.message;
        let stun = demux::classify(data) == Kind::Stun;
        let to = if stun {
            out.transport.peer_addr
        } else {
            peer.addr.unwrap_or(out.transport.peer_addr)
        };
        // 0x0101: a Binding success response.
        if stun && data.get(..2) == Some(&[0x01, 0x01]) {
            learn(by_addr, key, peer, to);
        }
        match socket.send_to(data, to) {
            Ok(_) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => stats.count_drop(DropReason::SendFailed),
        }
    }
}

fn learn(by_addr: &mut Addrs, key: u64, peer: &mut Peer, addr: SocketAddr) {
    peer.addr = Some(addr);
    peer.pc_addr.get_or_insert(addr);
    if peer.addrs.contains(&addr) {
        return;
    }
    if peer.addrs.len() >= MAX_ADDRS {
        let old = peer.addrs.remove(0);
        by_addr.remove_if(&old, key);
    }
    peer.addrs.push(addr);
    by_addr.insert(addr, key);
}
