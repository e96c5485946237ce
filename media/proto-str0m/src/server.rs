//! The SFU: one UDP socket, one thread (`sfu`), one ICE-lite str0m `Rtc` per participant,
//! following str0m's `examples/chat.rs` (demultiplexing by `Rtc::accepts`, draining
//! `poll_output` to its timeout after every mutation), with the rooms fixed up front.
//!
//! Forwarding: every RTP packet a speaker sends goes to every other participant of its room,
//! either as RTP (`rtp_mode`: `Event::RtpPacket` in, `StreamTx::write_rtp` out, no
//! depacketising) or as frames (`Event::MediaData` in, `Writer::write` out, str0m's sample
//! API as in chat.rs). The payload is an `Arc<[u8]>` either way: shared by every leg, not
//! copied; each leg's `Rtc` builds its header and encrypts its own SRTP.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A join as the signalling hands it to the SFU: the client's offer, and which of its m-lines
/// carries which speaker of the room (the prototype's rooms are known before anyone joins).
pub struct Join {
    pub id: usize,
    pub room: usize,
    /// Taken by the SFU.
    pub offer: Option<SdpOffer>,
    /// `(mid, speaker slot)`: the client's recvonly m-line for each other speaker's audio.
    pub receives: Vec<(Mid, usize)>,
    /// This participant's own speaker slot in its room, if it speaks.
    pub slot: Option<usize>,
    pub reply: Sender<(usize, Result<SdpAnswer, String>)>,
    pub reply_waker: Arc<Waker>,
}

/// How the SFU finds the `Rtc` a datagram belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    /// `Rtc::accepts` over every participant until one says yes (chat.rs; O(n)).
    Scan,
    /// A source-address map in front, filled by the scan's first hit (O(1) afterwards).
    Map,
}

/// Counters the SFU thread keeps for the report (relaxed atomics, read by main).
#[derive(Default)]
pub struct Stats {
    pub tid: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub forwarded: AtomicU64,
    pub joins: AtomicU64,
    pub connected: AtomicU64,
    pub unknown_source: AtomicU64,
    pub garbage: AtomicU64,
    pub send_failed: AtomicU64,
    pub rtc_errors: AtomicU64,
    pub rejected_offers: AtomicU64,
    /// `Input::Timeout`s handled (deadlines that came due).
    pub timeouts: AtomicU64,
    /// Deadlines already due when `poll_output` gave them, fed at once.
    pub timeouts_inline: AtomicU64,
    /// Deadlines pushed on the loop's heap (each new timeout `poll_output` gives).
    pub deadline_pushes: AtomicU64,
    /// Datagrams handed to `accepts` in the scan, in total (the demux's cost).
    pub accepts_calls: AtomicU64,
    /// Wall time the `sfu` thread spent finding each datagram's `Rtc`, ns in total.
    pub demux_ns: AtomicU64,
}

pub struct Config {
    pub rtp_mode: bool,
    /// No RTP header extensions (so no TWCC, abs-send-time, mid on the wire) and a one-packet
    /// RTX cache per outgoing stream: str0m tuned down for forwarding audio.
    pub lean: bool,
    pub demux: Demux,
    pub cert: DtlsCert,
}

struct Participant {
    rtc: Rtc,
    room: usize,
    slot: Option<usize>,
    /// Per speaker slot of the room: the mid this participant hears that speaker on.
    out: Vec<Option<Mid>>,
    connected: bool,
    /// The timeout `poll_output` last gave (`None` once handled), so stale heap entries are
    /// told apart.
    deadline: Option<Instant>,
}

/// A packet (or frame) from a speaker, to be written to the rest of its room.
struct Fwd {
    from: usize,
    pt: str0m::media::Pt,
    seq: str0m::rtp::SeqNo,
    rtp_time: u32,
    media_time: MediaTime,
    arrived: Instant,
    payload: Arc<[u8]>,
}

pub const SOCKET: Token = Token(0);
pub const WAKER: Token = Token(1);

/// Runs the SFU loop on the calling thread until `joins` disconnects and `stop` is set.
pub fn run(
    mut poll: Poll,
    mut socket: UdpSocket,
    joins: Receiver<Join>,
    cfg: Config,
    stats: Arc<Stats>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return eprintln!("sfu: {e}"),
    };
    if let Err(e) = poll
        .registry()
        .register(&mut socket, SOCKET, Interest::READABLE)
    {
        return eprintln!("sfu: {e}");
    }
    stats.tid.store(crate::measure::gettid(), Ordering::Relaxed);
    let mut parts: Vec<Participant> = Vec::new();
    // Per room: the participant indices in it.
    let mut rooms: Vec<Vec<usize>> = Vec::new();
    let mut by_source: HashMap<SocketAddr, usize> = HashMap::new();
    let mut deadlines: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 2000];
    let mut fwd: Vec<Fwd> = Vec::new();
    let mut joins_open = true;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = deadlines
            .peek()
            .map_or(Duration::from_millis(100), |Reverse((t, _))| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, Some(wait))
            && e.kind() != ErrorKind::Interrupted
        {
            return eprintln!("sfu: poll: {e}");
        }
        // New participants (the signalling's offers).
        while joins_open {
            match joins.try_recv() {
                Ok(mut j) => {
                    let i = parts.len();
                    let offer = j.offer.take();
                    let accepted = match offer {
                        Some(o) => accept(o, &cfg, local),
                        None => Err("no offer".to_owned()),
                    };
                    match accepted {
                        Ok((rtc, answer)) => {
                            let mut out = Vec::new();
                            for (mid, slot) in &j.receives {
                                if out.len() <= *slot {
                                    out.resize(slot + 1, None);
                                }
                                out[*slot] = Some(*mid);
                            }
                            parts.push(Participant {
                                rtc,
                                room: j.room,
                                slot: j.slot,
                                out,
                                connected: false,
                                deadline: None,
                            });
                            if rooms.len() <= j.room {
                                rooms.resize(j.room + 1, Vec::new());
                            }
                            rooms[j.room].push(i);
                            stats.joins.fetch_add(1, Ordering::Relaxed);
                            let _ = j.reply.send((j.id, Ok(answer)));
                            drain(
                                i,
                                &mut parts[i],
                                &socket,
                                &stats,
                                &mut fwd,
                                &mut deadlines,
                                cfg.lean,
                            );
                        }
                        Err(e) => {
                            stats.rejected_offers.fetch_add(1, Ordering::Relaxed);
                            let _ = j.reply.send((j.id, Err(e)));
                        }
                    }
                    let _ = j.reply_waker.wake();
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => joins_open = false,
            }
        }
        // Datagrams, until the socket is empty (mio is edge-triggered).
        loop {
            let (n, source) = match socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("sfu: recv: {e}");
                    break;
                }
            };
            stats.received.fetch_add(1, Ordering::Relaxed);
            let arrived = Instant::now();
            let Ok(contents) = buf[..n].try_into() else {
                stats.garbage.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let input = Input::Receive(
                arrived,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                },
            );
            let demux_started = Instant::now();
            let hit = match cfg.demux {
                Demux::Map => by_source.get(&source).copied(),
                Demux::Scan => None,
            };
            let found = hit.or_else(|| {
                let mut calls = 0;
                let found = parts.iter().position(|p| {
                    calls += 1;
                    p.rtc.accepts(&input)
                });
                stats.accepts_calls.fetch_add(calls, Ordering::Relaxed);
                found
            });
            stats
                .demux_ns
                .fetch_add(demux_started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let Some(i) = found else {
                stats.unknown_source.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if cfg.demux == Demux::Map && hit.is_none() {
                by_source.insert(source, i);
            }
            let p = &mut parts[i];
            if let Err(e) = p.rtc.handle_input(input) {
                stats.rtc_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("sfu: participant {i}: {e}");
            }
            drain(i, p, &socket, &stats, &mut fwd, &mut deadlines, cfg.lean);
            forward(
                &mut fwd,
                &mut parts,
                &rooms,
                &socket,
                &stats,
                &mut deadlines,
                &cfg,
            );
        }
        // Timeouts that are due (stale heap entries skipped: each participant's own deadline
        // is the truth).
        let now = Instant::now();
        while let Some(Reverse((t, i))) = deadlines.peek().copied() {
            if t > now {
                break;
            }
            deadlines.pop();
            let p = &mut parts[i];
            if p.deadline != Some(t) {
                continue;
            }
            p.deadline = None;
            stats.timeouts.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                stats.rtc_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("sfu: participant {i}: {e}");
            }
            drain(i, p, &socket, &stats, &mut fwd, &mut deadlines, cfg.lean);
            forward(
                &mut fwd,
                &mut parts,
                &rooms,
                &socket,
                &stats,
                &mut deadlines,
                &cfg,
            );
        }
    }
}

/// An ICE-lite `Rtc` answering the client's offer on the shared socket's address.
pub fn accept(
    offer: SdpOffer,
    cfg: &Config,
    local: SocketAddr,
) -> Result<(Rtc, SdpAnswer), String> {
    let mut builder = Rtc::builder();
    if cfg.lean {
        builder = builder.clear_extension_map();
    }
    let mut rtc = builder
        .set_ice_lite(true)
        .set_rtp_mode(cfg.rtp_mode)
        .set_dtls_cert(cfg.cert.clone())
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| e.to_string())?;
    Ok((rtc, answer))
}

/// Polls one participant's `Rtc` until its next timeout: sends what it transmits, queues what
/// a speaker sent for `forward`.
fn drain(
    i: usize,
    p: &mut Participant,
    socket: &UdpSocket,
    stats: &Stats,
    fwd: &mut Vec<Fwd>,
    deadlines: &mut BinaryHeap<Reverse<(Instant, usize)>>,
    lean: bool,
) {
    // At most this many due timeouts fed inline per drain (no spinning on a clock edge).
    let mut due_now = 2;
    loop {
        let out = match p.rtc.poll_output() {
            Ok(o) => o,
            Err(e) => {
                stats.rtc_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("sfu: participant {i}: {e}");
                p.rtc.disconnect();
                return;
            }
        };
        match out {
            Output::Transmit(t) => match socket.send_to(&t.contents, t.destination) {
                Ok(_) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.send_failed.fetch_add(1, Ordering::Relaxed);
                }
            },
            // A write is sent by str0m's timeout path (the send queue is polled in
            // `handle_timeout`): a deadline already due is fed at once, so the packet leaves
            // now rather than after the loop's next turn.
            Output::Timeout(t) if due_now > 0 && t <= Instant::now() => {
                due_now -= 1;
                stats.timeouts_inline.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = p.rtc.handle_input(Input::Timeout(Instant::now())) {
                    stats.rtc_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("sfu: participant {i}: {e}");
                }
            }
            Output::Timeout(t) => {
                if p.deadline != Some(t) {
                    p.deadline = Some(t);
                    deadlines.push(Reverse((t, i)));
                    stats.deadline_pushes.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Output::Event(e) => match e {
                Event::Connected => {
                    p.connected = true;
                    if lean {
                        let mids: Vec<Mid> = p.out.iter().flatten().copied().collect();
                        let mut api = p.rtc.direct_api();
                        for mid in mids {
                            if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                                tx.set_rtx_cache(1, Duration::from_millis(1), None);
                            }
                        }
                    }
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                }
                Event::RtpPacket(pkt) if p.slot.is_some() => fwd.push(Fwd {
                    from: i,
                    pt: pkt.header.payload_type,
                    seq: pkt.seq_no,
                    rtp_time: pkt.header.timestamp,
                    media_time: pkt.time,
                    arrived: pkt.timestamp,
                    payload: pkt.payload,
                }),
                Event::MediaData(d) if p.slot.is_some() => fwd.push(Fwd {
                    from: i,
                    pt: d.pt,
                    seq: *d.seq_range.start(),
                    rtp_time: d.time.numer() as u32,
                    media_time: d.time,
                    arrived: d.network_time,
                    payload: d.data,
                }),
                // Everything else (ICE state, media added, stats, keyframe requests) is not
                // the prototype's business.
                _ => {}
            },
        }
    }
}

/// Writes each queued packet to every other connected participant of the speaker's room.
fn forward(
    fwd: &mut Vec<Fwd>,
    parts: &mut [Participant],
    rooms: &[Vec<usize>],
    socket: &UdpSocket,
    stats: &Stats,
    deadlines: &mut BinaryHeap<Reverse<(Instant, usize)>>,
    cfg: &Config,
) {
    let (rtp_mode, lean) = (cfg.rtp_mode, cfg.lean);
    // A speaker's RTP met while draining it as a leg joins the queue.
    while let Some(f) = fwd.pop() {
        let Some(slot) = parts.get(f.from).and_then(|p| p.slot) else {
            continue;
        };
        let room = parts[f.from].room;
        for &j in rooms.get(room).map_or(&[][..], |r| r.as_slice()) {
            if j == f.from {
                continue;
            }
            let p = &mut parts[j];
            let Some(mid) = p.out.get(slot).copied().flatten() else {
                continue;
            };
            if !p.connected {
                continue;
            }
            let written = if rtp_mode {
                match p.rtc.direct_api().stream_tx_by_mid(mid, None) {
                    Some(tx) => {
                        tx.write_rtp(RtpWrite::new(
                            f.pt,
                            f.seq,
                            f.rtp_time,
                            f.arrived,
                            f.payload.clone(),
                        ));
                        true
                    }
                    None => false,
                }
            } else {
                match p.rtc.writer(mid) {
                    Some(w) => w
                        .write(f.pt, f.arrived, f.media_time, f.payload.clone())
                        .is_ok(),
                    None => false,
                }
            };
            if written {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            drain(j, p, socket, stats, fwd, deadlines, lean);
        }
    }
}
