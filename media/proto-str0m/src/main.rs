//! A str0m SFU prototype, measured on sfubench's scenarios (issue 13: "measure both on a small
//! prototype"). One UDP socket and one thread (`sfu`) for the server, ICE-lite str0m `Rtc`s;
//! str0m full-ICE clients with a socket each on client threads; real ICE, DTLS and SRTP over
//! loopback. `str0m-proto rooms=R speakers=S listeners=L secs=N` prints one
//! `name: value unit` line per figure; `mem=N` the server's memory per connection instead.
//! See README.md.

mod client;
mod dtls;
mod measure;
mod server;
mod split;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

use crate::measure::{loadavg, percentile, process_cpu_secs, rss, thread_cpu_secs};
use crate::server::{Demux, Stats};

pub struct Args {
    rooms: usize,
    speakers: usize,
    listeners: usize,
    secs: u64,
    mem: usize,
    rtp_mode: bool,
    demux: Demux,
    client_threads: usize,
    /// Longest wait for every participant to connect, seconds.
    join_timeout: u64,
    /// DTLS provider: str0m-aws-lc-rs's own (false) or with the dimpl config shared (`dtls.rs`).
    cached_dtls: bool,
    /// Niceness of the client threads (0: none), so the load takes what the server leaves.
    nice: u32,
    /// str0m tuned down for audio forwarding (`server::Config::lean`).
    lean: bool,
    /// Memory per connected participant, the clients in another process (`split.rs`).
    mem_connected: bool,
    /// `role=clients sig=ADDR`: this process is that other process.
    sig: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        rooms: 1,
        speakers: 10,
        listeners: 100,
        secs: 10,
        mem: 0,
        rtp_mode: true,
        demux: Demux::Scan,
        client_threads: 2,
        join_timeout: 120,
        nice: 0,
        cached_dtls: false,
        mem_connected: false,
        sig: None,
        lean: false,
    };
    for arg in std::env::args().skip(1) {
        let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        let n: u64 = value.parse().unwrap_or(0);
        match (key, value) {
            ("rooms", _) => a.rooms = n as usize,
            ("speakers", _) => a.speakers = n as usize,
            ("listeners", _) => a.listeners = n as usize,
            ("secs", _) => a.secs = n,
            ("mem", _) => a.mem = n as usize,
            ("mode", "rtp") => a.rtp_mode = true,
            ("mode", "frame") => a.rtp_mode = false,
            ("demux", "scan") => a.demux = Demux::Scan,
            ("demux", "map") => a.demux = Demux::Map,
            ("client_threads", _) => a.client_threads = (n as usize).max(1),
            ("join_timeout", _) => a.join_timeout = n,
            ("nice", _) => a.nice = n.min(19) as u32,
            ("dtls", "stock") => a.cached_dtls = false,
            ("dtls", "cached") => a.cached_dtls = true,
            ("mem_connected", _) => a.mem_connected = n != 0,
            ("lean", _) => a.lean = n != 0,
            ("role", "clients") => {}
            ("sig", v) => a.sig = Some(v.to_owned()),
            _ => eprintln!("str0m-proto: unknown argument {arg}"),
        }
    }
    a
}

fn main() {
    let a = args();
    let mut provider = str0m::crypto::from_feature_flags();
    if a.cached_dtls {
        // Lives as long as the process, as the stock provider's statics do.
        let cached: &'static dtls::CachedConfigDtls = Box::leak(Box::new(
            dtls::CachedConfigDtls::new(provider.dtls_provider),
        ));
        provider.dtls_provider = cached;
    }
    let Some(cert) = provider.dtls_provider.generate_certificate() else {
        return eprintln!("str0m-proto: the crypto backend makes no certificates");
    };
    provider.install_process_default();
    if let Some(sig) = &a.sig {
        return split::clients(&a, cert, sig);
    }
    println!("load_average: {} (before the run)", loadavg());
    println!(
        "crypto_backend: {BACKEND}; dtls config: {}",
        if a.cached_dtls {
            "built once and shared (dtls=cached)"
        } else {
            "built per Rtc, as str0m-aws-lc-rs does (dtls=stock)"
        }
    );
    if a.mem > 0 {
        return server_memory(a.mem, cert);
    }
    if a.mem_connected {
        return split::server(&a, cert);
    }
    bench(&a, cert);
}

#[cfg(feature = "aws-lc-rs")]
const BACKEND: &str = "aws-lc-rs (str0m-aws-lc-rs; DTLS by dimpl)";
#[cfg(not(feature = "aws-lc-rs"))]
const BACKEND: &str = "none";

/// The server's socket: 8 MiB buffers as the node's media socket has, non-blocking for mio.
fn server_socket() -> std::io::Result<mio::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let r = socket2::SockRef::from(&sock);
    r.set_recv_buffer_size(8 << 20)?;
    r.set_send_buffer_size(8 << 20)?;
    sock.set_nonblocking(true)?;
    Ok(mio::net::UdpSocket::from_std(sock))
}

/// The server half: its socket, the `sfu` thread, what the rest talks to it with.
pub struct Sfu {
    pub addr: SocketAddr,
    pub waker: Arc<Waker>,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    pub joins: mpsc::Sender<server::Join>,
    pub handle: thread::JoinHandle<()>,
    pub tid: u64,
}

pub fn start_sfu(a: &Args, cert: DtlsCert) -> std::io::Result<Sfu> {
    let socket = server_socket()?;
    let addr = socket.local_addr()?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), server::WAKER)?);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (joins, join_rx) = mpsc::channel::<server::Join>();
    let cfg = server::Config {
        rtp_mode: a.rtp_mode,
        lean: a.lean,
        demux: a.demux,
        cert,
    };
    let handle = {
        let (stats, stop) = (stats.clone(), stop.clone());
        thread::Builder::new()
            .name("sfu".to_owned())
            .spawn(move || server::run(poll, socket, join_rx, cfg, stats, stop))?
    };
    while stats.tid.load(Ordering::Relaxed) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    let tid = stats.tid.load(Ordering::Relaxed);
    println!("media_socket: udp {addr} (one port for every participant)");
    println!("sfu_tid: {tid}");
    println!(
        "forwarding: {}{} ; demux: {}",
        if a.rtp_mode {
            "rtp_mode (Event::RtpPacket -> StreamTx::write_rtp)"
        } else {
            "frames (Event::MediaData -> Writer::write)"
        },
        if a.lean {
            ", lean (no header extensions, 1-packet RTX caches)"
        } else {
            ""
        },
        match a.demux {
            Demux::Scan => "Rtc::accepts scan over every participant",
            Demux::Map => "source-address map in front of the accepts scan",
        }
    );
    Ok(Sfu {
        addr,
        waker,
        stats,
        stop,
        joins,
        handle,
        tid,
    })
}

/// Every participant of every room, round the client threads.
pub fn specs(a: &Args) -> Vec<Vec<client::Spec>> {
    let mut specs: Vec<Vec<client::Spec>> = vec![Vec::new(); a.client_threads];
    let mut n = 0;
    for room in 0..a.rooms {
        for k in 0..a.speakers + a.listeners {
            let slot = (k < a.speakers).then_some(k);
            specs[n % a.client_threads].push(client::Spec {
                id: n,
                room,
                slot,
                speakers: a.speakers,
                measured: if a.listeners > 0 {
                    slot.is_none()
                } else {
                    a.speakers > 1
                },
            });
            n += 1;
        }
    }
    specs
}

fn bench(a: &Args, cert: DtlsCert) {
    let sfu = match start_sfu(a, cert.clone()) {
        Ok(s) => s,
        Err(e) => return eprintln!("str0m-proto: {e}"),
    };
    let (stats, tid, waker, stop_sfu, join_tx) = (
        sfu.stats.clone(),
        sfu.tid,
        sfu.waker.clone(),
        sfu.stop.clone(),
        sfu.joins.clone(),
    );
    drop(sfu.joins);
    let sfu_handle = sfu.handle;
    let specs = specs(a);
    let participants: usize = specs.iter().map(Vec::len).sum();
    let measured_n = specs.iter().flatten().filter(|s| s.measured).count();
    let shared = Arc::new(client::Shared {
        epoch: Instant::now(),
        sfu_waker: waker.clone(),
        cert,
        window_start_us: AtomicU64::new(0),
        window_end_us: AtomicU64::new(u64::MAX),
        connected: AtomicUsize::new(0),
        first_audio: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let rss_before = rss();
    let (sfu_join0, fwd_join0) = (
        thread_cpu_secs(tid),
        stats.forwarded.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let mut threads = Vec::new();
    for (t, specs) in specs.into_iter().enumerate() {
        let (shared, joins, nice) = (shared.clone(), join_tx.clone(), a.nice);
        match thread::Builder::new()
            .name(format!("client{t}"))
            .spawn(move || client::run(specs, shared, joins, nice))
        {
            Ok(h) => threads.push(h),
            Err(e) => eprintln!("str0m-proto: {e}"),
        }
    }
    drop(join_tx);
    // The burst: all joined when every client's ICE and DTLS are up.
    let deadline = started + Duration::from_secs(a.join_timeout);
    while shared.connected.load(Ordering::Relaxed) < participants && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let all_joined = started.elapsed();
    let (sfu_join1, fwd_join1) = (
        thread_cpu_secs(tid),
        stats.forwarded.load(Ordering::Relaxed),
    );
    let audio_deadline = Instant::now() + Duration::from_secs(10);
    while shared.first_audio.load(Ordering::Relaxed) < measured_n && Instant::now() < audio_deadline
    {
        thread::sleep(Duration::from_millis(5));
    }
    // Settle, then a steady window.
    thread::sleep(Duration::from_secs(2));
    let since = |t: Instant| t.duration_since(shared.epoch).as_micros() as u64;
    let t0 = Instant::now();
    shared.window_start_us.store(since(t0), Ordering::Relaxed);
    let (f0, s0, c0) = (
        stats.forwarded.load(Ordering::Relaxed),
        thread_cpu_secs(tid),
        process_cpu_secs(),
    );
    thread::sleep(Duration::from_secs(a.secs));
    let t1 = Instant::now();
    shared.window_end_us.store(since(t1), Ordering::Relaxed);
    let (f1, s1, c1) = (
        stats.forwarded.load(Ordering::Relaxed),
        thread_cpu_secs(tid),
        process_cpu_secs(),
    );
    let rss_after = rss();
    let elapsed = (t1 - t0).as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for t in threads {
        match t.join() {
            Ok(o) => outcomes.extend(o),
            Err(_) => eprintln!("str0m-proto: a client thread panicked"),
        }
    }
    let sfu_total = thread_cpu_secs(tid);
    stop_sfu.store(true, Ordering::Relaxed);
    let _ = waker.wake();
    let _ = sfu_handle.join();

    let measured: Vec<&client::Outcome> = outcomes.iter().filter(|o| o.measured).collect();
    let ms = |pick: &dyn Fn(&client::Outcome) -> Option<Instant>| {
        let mut v: Vec<u32> = measured
            .iter()
            .filter_map(|o| pick(o).map(|t| t.duration_since(o.started).as_millis() as u32))
            .collect();
        v.sort_unstable();
        v
    };
    let answered = ms(&|o| o.answered);
    let ice = ms(&|o| o.ice_connected);
    let connected = ms(&|o| o.connected);
    let first = ms(&|o| o.first_audio);
    let mut delays: Vec<u32> = measured
        .iter()
        .flat_map(|o| o.delays_us.iter().copied())
        .collect();
    delays.sort_unstable();
    let expected =
        (a.rooms * a.speakers * (a.speakers.saturating_sub(1) + a.listeners)) as f64 * 50.0;
    let rate = (f1 - f0) as f64 / elapsed;
    let sfu = (s1 - s0) / elapsed;
    let per_core = rate / sfu.max(0.001);
    println!(
        "participants: {participants} (str0m full-ICE clients in rtp_mode, one socket each, {} client threads, nice {})",
        a.client_threads, a.nice
    );
    println!("arrivals: all at once (every participant of every room)");
    println!(
        "all_joined_secs: {:.2} ({} of {participants} connected: ICE + DTLS up at the client)",
        all_joined.as_secs_f64(),
        shared.connected.load(Ordering::Relaxed)
    );
    println!(
        "join_to_answered_ms.p50/p99: {} / {} (the SFU's answer applied at the client)",
        percentile(&answered, 0.5),
        percentile(&answered, 0.99)
    );
    println!(
        "join_to_ice_connected_ms.p50/p99: {} / {}",
        percentile(&ice, 0.5),
        percentile(&ice, 0.99)
    );
    println!(
        "join_to_connected_ms.p50/p99: {} / {} (ICE and DTLS)",
        percentile(&connected, 0.5),
        percentile(&connected, 0.99)
    );
    println!("join_to_first_audio_ms.p50: {}", percentile(&first, 0.5));
    println!("join_to_first_audio_ms.p99: {}", percentile(&first, 0.99));
    println!(
        "measured_with_audio: {} of {} ({})",
        first.len(),
        measured.len(),
        if a.listeners > 0 {
            "listeners"
        } else {
            "speakers"
        }
    );
    let join_cpu = sfu_join1 - sfu_join0;
    let join_fwd = (fwd_join1 - fwd_join0) as f64;
    println!(
        "sfu_cpu_ms_per_join: {:.2} (the sfu thread's CPU from the first join to all connected, {join_cpu:.2} s, / {participants})",
        join_cpu * 1000.0 / participants.max(1) as f64
    );
    println!(
        "sfu_cpu_ms_per_join_net: {:.2} (the same less the forwarding done meanwhile: {join_fwd:.0} packets at the steady window's cost)",
        (join_cpu - join_fwd / per_core.max(1.0)).max(0.0) * 1000.0 / participants.max(1) as f64
    );
    println!("forwarded_packets_per_sec: {rate:.0} (expected {expected:.0})");
    println!(
        "cpu_secs_per_sec: {:.2} (whole process)",
        (c1 - c0) / elapsed
    );
    println!("sfu_cpu_secs_per_sec: {sfu:.2} (the sfu thread only)");
    println!("forwarded_packets_per_sfu_cpu_sec: {per_core:.0}");
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "server_datagrams: in {} out {} unknown_source={} garbage={} send_failed={} rtc_errors={} rejected_offers={}",
        count(&stats.received),
        count(&stats.sent),
        count(&stats.unknown_source),
        count(&stats.garbage),
        count(&stats.send_failed),
        count(&stats.rtc_errors),
        count(&stats.rejected_offers)
    );
    println!(
        "accepts_calls_per_datagram: {:.1} (Rtc::accepts calls in the demux per datagram received)",
        count(&stats.accepts_calls) as f64 / count(&stats.received).max(1) as f64
    );
    println!(
        "sfu_timeouts: {} handled from the heap, {} already due and fed inline, {} deadlines pushed (whole run)",
        count(&stats.timeouts),
        count(&stats.timeouts_inline),
        count(&stats.deadline_pushes)
    );
    println!(
        "demux_us_per_datagram: {:.2} (wall time finding the Rtc, whole run; {:.1}% of the sfu thread's CPU over the run)",
        count(&stats.demux_ns) as f64 / 1000.0 / count(&stats.received).max(1) as f64,
        count(&stats.demux_ns) as f64 / 1e9 / sfu_total.max(0.001) * 100.0
    );
    println!("client_errors: {}", count(&shared.errors));
    println!("delay_ms.p50: {:.2}", percentile(&delays, 0.5) / 1000.0);
    println!("delay_ms.p99: {:.2}", percentile(&delays, 0.99) / 1000.0);
    println!("delay_samples: {}", delays.len());
    println!(
        "rss_per_participant_kib: {:.0} (server and client connection together)",
        rss_after.saturating_sub(rss_before) as f64 / participants.max(1) as f64 / 1024.0
    );
    println!("load_average: {} (after the run)", loadavg());
}

/// The server's memory per connection, the clients not counted (as `sfubench mem=N`): `n`
/// ICE-lite `Rtc`s answering one client offer (one sendrecv audio m-line), never connected,
/// so without the DTLS/SRTP state a finished handshake adds; built on this thread, nothing
/// else running.
fn server_memory(n: usize, cert: DtlsCert) {
    let local = SocketAddr::from(([127, 0, 0, 1], 50000));
    let offer = match client_offer(&cert) {
        Ok(o) => o,
        Err(e) => return eprintln!("str0m-proto: {e}"),
    };
    let cfg = server::Config {
        rtp_mode: true,
        lean: false,
        demux: Demux::Scan,
        cert,
    };
    let mut conns: Vec<Rtc> = Vec::with_capacity(n + 1);
    // The first one warms up what every connection shares (statics, allocator arenas).
    let sdp = offer.to_sdp_string();
    let parsed = || SdpOffer::from_sdp_string(&sdp).map_err(|e| e.to_string());
    match parsed().and_then(|o| server::accept(o, &cfg, local)) {
        Ok((rtc, _)) => conns.push(rtc),
        Err(e) => return eprintln!("str0m-proto: {e}"),
    }
    let before = rss();
    let started = Instant::now();
    for _ in 0..n {
        let sdp = offer.to_sdp_string();
        let parsed = || SdpOffer::from_sdp_string(&sdp).map_err(|e| e.to_string());
        match parsed().and_then(|o| server::accept(o, &cfg, local)) {
            Ok((rtc, _)) => conns.push(rtc),
            Err(e) => return eprintln!("str0m-proto: {e}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss();
    println!("server_connections: {n} (answering one client offer, not connected)");
    println!(
        "server_rss_per_connection_kib: {:.1}",
        after.saturating_sub(before) as f64 / n as f64 / 1024.0
    );
    println!("server_answers_per_sec: {:.0}", n as f64 / elapsed);
    drop(conns);
}

/// A client's offer of one sendrecv audio m-line.
fn client_offer(cert: &DtlsCert) -> Result<SdpOffer, String> {
    let mut rtc = Rtc::builder()
        .set_dtls_cert(cert.clone())
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate = Candidate::host(SocketAddr::from(([127, 0, 0, 1], 40000)), "udp")
        .map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    change
        .apply()
        .map(|(offer, _)| offer)
        .ok_or_else(|| "nothing to offer".to_owned())
}
