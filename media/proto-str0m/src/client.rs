//! The load: real WebRTC peers, each a full-ICE str0m `Rtc` (controlling, the offerer) with a
//! UDP socket of its own, many per client thread (mio over their sockets). A speaker sends
//! 50 Opus-sized packets a second (100 bytes, the first 8 the send time in µs since the shared
//! epoch); every participant reads the send time out of what it hears.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::SdpPendingOffer;
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::server::Join;

/// Who a client is: its room, its speaker slot there if it speaks, the room's speakers.
#[derive(Clone)]
pub struct Spec {
    pub id: usize,
    pub room: usize,
    pub slot: Option<usize>,
    pub speakers: usize,
    /// Its join and delays count in the figures.
    pub measured: bool,
}

/// What every client thread shares with main.
pub struct Shared {
    pub epoch: Instant,
    /// Wakes the SFU's loop for a join (the signalling's nudge).
    pub sfu_waker: Arc<Waker>,
    pub cert: DtlsCert,
    /// Delays count for packets received in [start, end) µs since `epoch`.
    pub window_start_us: AtomicU64,
    pub window_end_us: AtomicU64,
    pub connected: AtomicUsize,
    pub first_audio: AtomicUsize,
    pub errors: AtomicU64,
    pub stop: AtomicBool,
}

/// One client's figures, handed back when its thread stops.
pub struct Outcome {
    pub measured: bool,
    pub started: Instant,
    /// The SFU's answer applied.
    pub answered: Option<Instant>,
    /// ICE connected (the client's first checked pair).
    pub ice_connected: Option<Instant>,
    pub connected: Option<Instant>,
    pub first_audio: Option<Instant>,
    pub delays_us: Vec<u32>,
}

struct Client {
    spec: Spec,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    send_mid: Option<Mid>,
    pt: Option<Pt>,
    rtp_time: u64,
    seq: u64,
    deadline: Option<Instant>,
    out: Outcome,
}

/// Heap entries: an `Rtc` timeout or a speaker's next packet.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Timeout,
    Send,
}

const WAKER: Token = Token(usize::MAX);
const PACKET_INTERVAL: Duration = Duration::from_millis(20);
const PAYLOAD_BYTES: usize = 100;

/// Runs a client thread: joins every client of `specs` at once, then drives them until `stop`.
pub fn run(specs: Vec<Spec>, shared: Arc<Shared>, joins: Sender<Join>, nice: u32) -> Vec<Outcome> {
    if nice > 0 {
        // The load yields to the server on a machine of 2 cores (sfubench's `nice`).
        let tid = crate::measure::gettid().to_string();
        let reniced = std::process::Command::new("renice")
            .args(["-n", &nice.to_string(), "-p", &tid])
            .stdout(std::process::Stdio::null())
            .status();
        if !reniced.is_ok_and(|s| s.success()) {
            eprintln!("client: renice failed");
        }
    }
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("client: {e}");
            return Vec::new();
        }
    };
    let waker = match Waker::new(poll.registry(), WAKER) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("client: {e}");
            return Vec::new();
        }
    };
    let (reply_tx, replies) = mpsc::channel();
    let mut clients: Vec<Client> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(Instant, usize, Due)>> = BinaryHeap::new();
    for spec in specs {
        let i = clients.len();
        match start(spec, &shared, &poll, i) {
            Ok((c, offer, receives)) => {
                let join = Join {
                    id: i,
                    room: c.spec.room,
                    offer: Some(offer),
                    receives,
                    slot: c.spec.slot,
                    reply: reply_tx.clone(),
                    reply_waker: waker.clone(),
                };
                clients.push(c);
                if joins.send(join).is_err() {
                    eprintln!("client: the SFU is gone");
                    return Vec::new();
                }
                let _ = shared.sfu_waker.wake();
            }
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("client: {e}");
            }
        }
    }
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 2000];
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = heap
            .peek()
            .map_or(Duration::from_millis(50), |Reverse((t, ..))| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(50));
        if let Err(e) = poll.poll(&mut events, Some(wait))
            && e.kind() != ErrorKind::Interrupted
        {
            eprintln!("client: poll: {e}");
            break;
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                while let Ok((i, answer)) = replies.try_recv() {
                    let Some(c) = clients.get_mut(i) else {
                        continue;
                    };
                    let accepted = match (answer, c.pending.take()) {
                        (Ok(a), Some(p)) => c
                            .rtc
                            .sdp_api()
                            .accept_answer(p, a)
                            .map_err(|e| e.to_string()),
                        (Err(e), _) => Err(e),
                        (Ok(_), None) => Err("an answer without an offer".to_owned()),
                    };
                    c.out.answered = Some(Instant::now());
                    if let Err(e) = accepted {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("client {}: {e}", c.spec.id);
                    }
                    drain(i, c, &shared, &mut heap);
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = clients.get_mut(i) else {
                continue;
            };
            loop {
                let (n, source) = match c.socket.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("client {}: recv: {e}", c.spec.id);
                        break;
                    }
                };
                let Ok(contents) = buf[..n].try_into() else {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: c.local,
                        contents,
                    },
                );
                if c.rtc.handle_input(input).is_err() {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
                drain(i, c, &shared, &mut heap);
            }
        }
        let now = Instant::now();
        while let Some(Reverse((t, i, due))) = heap.peek().copied() {
            if t > now {
                break;
            }
            heap.pop();
            let Some(c) = clients.get_mut(i) else {
                continue;
            };
            match due {
                Due::Timeout => {
                    if c.deadline != Some(t) {
                        continue;
                    }
                    c.deadline = None;
                    if c.rtc.handle_input(Input::Timeout(now)).is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Due::Send => {
                    send(c, &shared, now);
                    // Keep 50 packets/s on average; after a stall, start again from now.
                    let next = if now.duration_since(t) > Duration::from_millis(100) {
                        now + PACKET_INTERVAL
                    } else {
                        t + PACKET_INTERVAL
                    };
                    heap.push(Reverse((next, i, Due::Send)));
                }
            }
            drain(i, c, &shared, &mut heap);
        }
    }
    clients.into_iter().map(|c| c.out).collect()
}

/// A client made, its offer, and which of its m-lines hears which speaker slot.
type Started = (Client, str0m::change::SdpOffer, Vec<(Mid, usize)>);

/// Binds the client's socket, builds its `Rtc` and offer: its own audio (sendonly) if it
/// speaks, one recvonly m-line per other speaker of its room.
fn start(spec: Spec, shared: &Shared, poll: &Poll, i: usize) -> Result<Started, String> {
    let mut socket =
        UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|e| format!("bind: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut socket, Token(i), Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut rtc = Rtc::builder()
        .set_dtls_cert(shared.cert.clone())
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .build(started);
    let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    let send_mid = spec.slot.map(|_| {
        change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(format!("p{}", spec.id)),
            Some("audio".to_owned()),
            None,
        )
    });
    let mut receives = Vec::new();
    for k in (0..spec.speakers).filter(|k| Some(*k) != spec.slot) {
        let mid = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        receives.push((mid, k));
    }
    let (offer, pending) = change
        .apply()
        .ok_or_else(|| "nothing to offer".to_owned())?;
    let measured = spec.measured;
    Ok((
        Client {
            spec,
            rtc,
            socket,
            local,
            pending: Some(pending),
            send_mid,
            pt: None,
            rtp_time: 0,
            seq: 1,
            deadline: None,
            out: Outcome {
                measured,
                started,
                answered: None,
                ice_connected: None,
                connected: None,
                first_audio: None,
                delays_us: Vec::new(),
            },
        },
        offer,
        receives,
    ))
}

/// One packet of a speaker, written as RTP (the clients run str0m's `rtp_mode`: no
/// packetiser or depacketiser, the lightest load str0m gives): the send time in its first
/// 8 bytes.
fn send(c: &mut Client, shared: &Shared, now: Instant) {
    let Some(mid) = c.send_mid else {
        return;
    };
    let pt = match c.pt {
        Some(pt) => pt,
        None => match c.rtc.codec_config().params().first().map(|p| p.pt()) {
            Some(pt) => {
                c.pt = Some(pt);
                pt
            }
            None => return,
        },
    };
    let mut payload = [0u8; PAYLOAD_BYTES];
    let sent_us = now.duration_since(shared.epoch).as_micros() as u64;
    payload[..8].copy_from_slice(&sent_us.to_le_bytes());
    let (seq, time) = (c.seq, c.rtp_time);
    let mut api = c.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tx.write_rtp(RtpWrite::new(
        pt,
        seq.into(),
        time as u32,
        now,
        &payload[..],
    ));
    c.seq += 1;
    c.rtp_time += 960;
}

/// Polls a client's `Rtc` to its next timeout.
fn drain(
    i: usize,
    c: &mut Client,
    shared: &Shared,
    heap: &mut BinaryHeap<Reverse<(Instant, usize, Due)>>,
) {
    loop {
        let out = match c.rtc.poll_output() {
            Ok(o) => o,
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("client {}: {e}", c.spec.id);
                return;
            }
        };
        match out {
            Output::Transmit(t) => {
                if c.socket.send_to(&t.contents, t.destination).is_err() {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Output::Timeout(t) => {
                if c.deadline != Some(t) {
                    c.deadline = Some(t);
                    heap.push(Reverse((t, i, Due::Timeout)));
                }
                return;
            }
            Output::Event(Event::Connected) => {
                let now = Instant::now();
                c.out.connected = Some(now);
                shared.connected.fetch_add(1, Ordering::Relaxed);
                if c.send_mid.is_some() {
                    // Speakers that connected together would all send in the same
                    // millisecond, every 20 ms, for ever: a random phase, as people have.
                    let phase = (c.spec.id as u64).wrapping_mul(2_654_435_761) % 20_000;
                    let first = now + Duration::from_micros(phase);
                    heap.push(Reverse((first, i, Due::Send)));
                }
            }
            Output::Event(Event::RtpPacket(p)) => heard(c, shared, &p.payload),
            Output::Event(Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            )) => {
                c.out.ice_connected.get_or_insert_with(Instant::now);
            }
            // ICE states, media added, stats: not measured.
            Output::Event(_) => {}
        }
    }
}

/// A packet heard: the first one's time, and its delay when inside the window.
fn heard(c: &mut Client, shared: &Shared, data: &[u8]) {
    let now = Instant::now();
    if c.out.first_audio.is_none() {
        c.out.first_audio = Some(now);
        if c.out.measured {
            shared.first_audio.fetch_add(1, Ordering::Relaxed);
        }
    }
    let Some(sent) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return;
    };
    let sent_us = u64::from_le_bytes(sent);
    let now_us = now.duration_since(shared.epoch).as_micros() as u64;
    let (start, end) = (
        shared.window_start_us.load(Ordering::Relaxed),
        shared.window_end_us.load(Ordering::Relaxed),
    );
    if c.out.measured && start > 0 && now_us >= start && now_us < end {
        c.out.delays_us.push(now_us.saturating_sub(sent_us) as u32);
    }
}
