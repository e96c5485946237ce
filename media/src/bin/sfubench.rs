//! SFU benchmark: rooms of speakers and listeners, all real WebRTC peers on loopback in this
//! process (the clients too), measuring join-to-first-audio, forwarded packets per second and
//! per CPU-second, the delay added on the way through the server, and memory per participant.
//!
//! `cargo run --release -p voiceflow-media --bin sfubench -- rooms=1 speakers=10 listeners=100 secs=10`
//! prints one `name: value unit` line per figure. The clients run in the same process as the
//! server; the server side (the media plane: its one socket, its connections, forwarding and
//! signalling) always runs on a thread of its own (named `sfu`), and with `split=1` the CPU
//! time of that thread alone is reported as the SFU's cost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

struct Args {
    rooms: usize,
    speakers: usize,
    listeners: usize,
    secs: u64,
    /// Report the media loop's thread's CPU apart.
    split: bool,
    /// Instead: the server's memory per connection (see `server_memory`).
    mem: usize,
    /// `[voice] media_threads`: media loops the rooms are sharded across.
    threads: usize,
    /// Light load clients (`voiceflow_media::loadclient`: `rtc` sans-IO peers, one task each)
    /// instead of webrtc-rs peers.
    light: bool,
    /// Niceness given to every thread but the server's (0: none): the load clients then take
    /// the CPU the server leaves, as on a machine where they are not the server's neighbours.
    nice: u64,
    /// Participants arriving per second, all rooms together (0: all at once, each room's
    /// joining one after another as fast as they are answered). Arrivals go round the rooms:
    /// the k-th participant of room r arrives at `(k * rooms + r) / join_rate` seconds.
    join_rate: f64,
}

impl Args {
    /// When the `k`-th participant of room `r` arrives, from the start of the joins.
    fn arrival(&self, room: usize, k: usize) -> Option<Duration> {
        (self.join_rate > 0.0)
            .then(|| Duration::from_secs_f64((k * self.rooms + room) as f64 / self.join_rate))
    }
}

fn args() -> Args {
    let mut a = Args {
        rooms: 1,
        speakers: 10,
        listeners: 100,
        secs: 10,
        split: false,
        mem: 0,
        threads: 1,
        nice: 0,
        light: false,
        join_rate: 0.0,
    };
    for arg in std::env::args().skip(1) {
        let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        let n: u64 = value.parse().unwrap_or(0);
        match key {
            "rooms" => a.rooms = n as usize,
            "speakers" => a.speakers = n as usize,
            "listeners" => a.listeners = n as usize,
            "secs" => a.secs = n,
            "split" => a.split = n != 0,
            "mem" => a.mem = n as usize,
            "threads" => a.threads = (n as usize).max(1),
            "nice" => a.nice = n.min(19),
            "light" => a.light = n != 0,
            "join_rate" => a.join_rate = value.parse().unwrap_or(0.0),
            _ => eprintln!("sfubench: unknown argument {arg}"),
        }
    }
    a
}

/// UDP datagrams the kernel dropped for a full receive buffer (`RcvbufErrors` of
/// /proc/net/snmp: every socket of the network namespace, this process's and others').
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Datagrams the kernel dropped on this process's UDP sockets (the `drops` column of
/// /proc/net/udp, counted since each socket was made): on the socket bound to `server_port`,
/// and on all the others (the clients').
fn udp_socket_drops(server_port: u16) -> (u64, u64) {
    let mut mine = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                {
                    mine.insert(inode.to_owned());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut server, mut clients) = (0, 0);
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(inode), Some(drops)) = (f.get(1), f.get(9), f.last()) else {
            continue;
        };
        if !mine.contains(*inode) {
            continue;
        }
        let drops: u64 = drops.parse().unwrap_or(0);
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if port == Some(server_port) {
            server += drops;
        } else {
            clients += drops;
        }
    }
    (server, clients)
}

/// How the participants arrive, as printed.
fn arrivals(a: &Args) -> String {
    if a.join_rate > 0.0 {
        format!("{} per second (join_rate), round the rooms", a.join_rate)
    } else {
        "all at once (each room's one after another)".to_owned()
    }
}

/// CPU seconds (user + system) of a process or thread, from its /proc `stat` file.
fn stat_cpu_secs(stat_path: &std::path::Path) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds this process used (user + system).
fn cpu_secs() -> f64 {
    stat_cpu_secs(std::path::Path::new("/proc/self/stat"))
}

/// CPU seconds of this process's threads named `name` (tokio names every thread of a runtime).
fn thread_cpu_secs(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        total += stat_cpu_secs(&task.path().join("stat"));
    }
    total
}

/// Renices every thread of this process but the server's (`sfu`); threads the clients start
/// later inherit it. Lowering one's own priority needs no privilege.
fn deprioritise_clients(nice: u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut tids = Vec::new();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "sfu" {
            tids.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    let status = std::process::Command::new("renice")
        .args(["-n", &nice.to_string(), "-p"])
        .args(&tids)
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => println!(
            "clients_nice: {nice} ({} threads; the server's not)",
            tids.len()
        ),
        _ => eprintln!("sfubench: renice failed; clients not deprioritised"),
    }
}

/// Resident memory, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

#[tokio::main]
async fn main() {
    let a = args();
    let plane = MediaPlane::new(MediaConfig {
        media_threads: a.threads,
        ..MediaConfig::default()
    });
    match plane.start() {
        Ok(addr) => println!("media_socket: udp {addr} (one port for every participant)"),
        Err(e) => {
            eprintln!("sfubench: {e}");
            return;
        }
    }
    if a.mem > 0 {
        return server_memory(&plane, a.mem).await;
    }
    if a.nice > 0 {
        deprioritise_clients(a.nice);
    }
    if a.light {
        return light_bench(&a, &plane).await;
    }
    let rss_before = rss();
    let mut rooms = Vec::new();
    let mut joined: Vec<(Arc<Client>, Instant)> = Vec::new();
    let mut next_id = 1u64;
    // Every room's speakers join at once (rooms in parallel, one after the other within a
    // room, as people arrive).
    let joins_started = Instant::now();
    // Per participant: join started → answered and synced (the signalling round trips).
    let answered: Arc<parking_lot::Mutex<std::collections::HashMap<u64, Duration>>> =
        Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..a.rooms {
        let arrivals: Vec<Option<Duration>> = (0..a.speakers).map(|k| a.arrival(r, k)).collect();
        let h = Harness::start(&plane);
        rooms.push(h.clone());
        let first = next_id;
        next_id += a.speakers as u64;
        let speakers = a.speakers as u64;
        let answered = answered.clone();
        tasks.spawn(async move {
            let mut clients = Vec::new();
            for (id, arrival) in (first..first + speakers).zip(arrivals) {
                if let Some(at) = arrival {
                    tokio::time::sleep_until((joins_started + at).into()).await;
                }
                let started = Instant::now();
                let client = h.join(id, Rights::default()).await?;
                let _ = answered.lock().insert(id, started.elapsed());
                client.level.store(30, Ordering::Relaxed);
                client.speak();
                // The room's first speaker has nobody to hear yet: not a join to measure.
                if id != first {
                    clients.push((client, started));
                }
            }
            Ok::<_, voiceflow_media::MediaError>(clients)
        });
    }
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(clients)) => joined.extend(clients),
            Ok(Err(e)) => {
                eprintln!("sfubench: speaker join failed: {e}");
                return;
            }
            Err(e) => {
                eprintln!("sfubench: {e}");
                return;
            }
        }
    }
    let speakers_joined = joins_started.elapsed();
    let mut listeners: Vec<(Arc<Client>, Instant)> = Vec::new();
    // Listeners join while the speakers talk: join-to-first-audio is what a user waits for.
    let listener_rights = Rights {
        may_speak: false,
        ..Rights::default()
    };
    for (r, h) in rooms.iter().enumerate() {
        for k in 0..a.listeners {
            if let Some(at) = a.arrival(r, a.speakers + k) {
                tokio::time::sleep_until((joins_started + at).into()).await;
            }
            let started = Instant::now();
            match h.join(next_id, listener_rights).await {
                Ok(c) => {
                    answered.lock().insert(next_id, started.elapsed());
                    listeners.push((c, started));
                }
                Err(e) => {
                    eprintln!("sfubench: listener join failed: {e}");
                    return;
                }
            }
            next_id += 1;
        }
    }
    let all_joined = joins_started.elapsed();
    let participants = a.rooms * (a.speakers + a.listeners);
    // Whose join-to-first-audio and delays count: the listeners, or without any the
    // speakers (each hears the others).
    let measured: &[(Arc<Client>, Instant)] = if listeners.is_empty() {
        &joined
    } else {
        &listeners
    };
    // Let every renegotiation settle, then measure a steady window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (c, _) in measured {
        c.measured.delays_us.lock().clear();
    }
    let forwarded = |rooms: &[Arc<Harness>]| -> u64 {
        rooms
            .iter()
            .map(|h| h.channel.counters().forwarded.load(Ordering::Relaxed))
            .sum()
    };
    let (f0, c0, s0, t0) = (
        forwarded(&rooms),
        cpu_secs(),
        thread_cpu_secs("sfu"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let (f1, c1, s1, elapsed) = (
        forwarded(&rooms),
        cpu_secs(),
        thread_cpu_secs("sfu"),
        t0.elapsed().as_secs_f64(),
    );
    let rss_after = rss();

    let mut first: Vec<u32> = measured
        .iter()
        .filter_map(|(c, t)| c.measured.first_audio.get().map(|f| f.duration_since(*t)))
        .map(|d| d.as_millis() as u32)
        .collect();
    first.sort_unstable();
    let mut delays: Vec<u32> = measured
        .iter()
        .flat_map(|(c, _)| c.measured.delays_us.lock().clone())
        .collect();
    delays.sort_unstable();
    // Every speaker's 50 packets/s reach the other speakers and every listener.
    let expected = (a.rooms * a.speakers * (a.speakers - 1 + a.listeners)) as f64 * 50.0;
    let rate = (f1 - f0) as f64 / elapsed;
    println!("participants: {participants}");
    println!(
        "peer_connections: {participants} (server, sans-IO, one socket) + {participants} (clients)"
    );
    println!(
        "speakers_joined_secs: {:.2} (all {} speakers answered; rooms in parallel)",
        speakers_joined.as_secs_f64(),
        a.rooms * a.speakers
    );
    println!("arrivals: {}", arrivals(&a));
    println!("all_joined_secs: {:.2}", all_joined.as_secs_f64());
    // Where a join's time goes: the signalling (offer, answer, renegotiation), then ICE and
    // DTLS as the client saw them, then the first forwarded packet.
    let mut signalled: Vec<u32> = measured
        .iter()
        .filter_map(|(c, _)| answered.lock().get(&c.id).map(|d| d.as_millis() as u32))
        .collect();
    signalled.sort_unstable();
    let mut connected: Vec<u32> = measured
        .iter()
        .filter_map(|(c, t)| c.measured.connected.get().map(|f| f.duration_since(*t)))
        .map(|d| d.as_millis() as u32)
        .collect();
    connected.sort_unstable();
    println!(
        "join_to_answered_ms.p50/p99: {} / {}",
        percentile(&signalled, 0.5),
        percentile(&signalled, 0.99)
    );
    println!(
        "join_to_connected_ms.p50/p99: {} / {}",
        percentile(&connected, 0.5),
        percentile(&connected, 0.99)
    );
    println!("join_to_first_audio_ms.p50: {}", percentile(&first, 0.5));
    println!("join_to_first_audio_ms.p99: {}", percentile(&first, 0.99));
    println!(
        "measured_with_audio: {} of {} ({})",
        first.len(),
        measured.len(),
        if listeners.is_empty() {
            "speakers after each room's first"
        } else {
            "listeners"
        }
    );
    println!("forwarded_packets_per_sec: {rate:.0} (expected {expected:.0})");
    println!("cpu_secs_per_sec: {:.2}", (c1 - c0) / elapsed);
    println!(
        "forwarded_packets_per_cpu_sec: {:.0}",
        rate / ((c1 - c0) / elapsed).max(0.001)
    );
    if a.split {
        let sfu = (s1 - s0) / elapsed;
        println!("sfu_cpu_secs_per_sec: {sfu:.2} (the media loop's thread only)");
        println!(
            "forwarded_packets_per_sfu_cpu_sec: {:.0}",
            rate / sfu.max(0.001)
        );
    }
    let stats = plane.stats();
    let dropped: Vec<String> = voiceflow_media::DropReason::ALL
        .iter()
        .map(|r| format!("{}={}", r.label(), stats.dropped(*r)))
        .collect();
    println!(
        "server_datagrams: in {} out {} dropped {}",
        stats.received.load(Ordering::Relaxed),
        stats.sent.load(Ordering::Relaxed),
        dropped.join(" ")
    );
    let not_forwarded: u64 = rooms
        .iter()
        .map(|h| h.channel.counters().dropped.load(Ordering::Relaxed))
        .sum();
    println!("packets_not_forwarded: {not_forwarded} (muted, listeners, legs not negotiated yet)");
    let received: u64 = rooms
        .iter()
        .map(|h| h.channel.counters().received.load(Ordering::Relaxed))
        .sum();
    println!(
        "packets_received: {received} (decrypted, from publishers) of {} RTP datagrams",
        stats.rtp_received.load(Ordering::Relaxed)
    );
    println!("delay_ms.p50: {:.2}", percentile(&delays, 0.5) / 1000.0);
    println!("delay_ms.p99: {:.2}", percentile(&delays, 0.99) / 1000.0);
    println!(
        "rss_per_participant_kib: {:.0} (server and client connection together)",
        rss_after.saturating_sub(rss_before) as f64 / participants.max(1) as f64 / 1024.0
    );
    for h in &rooms {
        h.channel.close().await;
    }
    for (c, _) in listeners.iter().chain(joined.iter()) {
        let _ = c.close().await;
    }
}

/// A light client, when its join started, how long the signalling took, whether it counts.
type Joined = (
    voiceflow_media::loadclient::LightClient,
    Instant,
    Duration,
    bool,
);

/// The same rooms with light load clients (see `Args::light`); the same figures.
async fn light_bench(a: &Args, plane: &MediaPlane) {
    use std::collections::HashMap;
    use voiceflow_media::loadclient::LightRoom;
    let certificate = Arc::new(parking_lot::Mutex::new(None));
    let rcvbuf_errors = udp_rcvbuf_errors();
    let (joins_cpu0, joins_sfu0) = (cpu_secs(), thread_cpu_secs("sfu"));
    let started = Instant::now();
    let mut rooms = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 1u64;
    for r in 0..a.rooms {
        let room = LightRoom::start(plane);
        rooms.push(room.clone());
        let (first, n, listeners) = (next_id, a.speakers as u64, a.listeners as u64);
        let arrivals: Vec<Option<Duration>> = (0..a.speakers + a.listeners)
            .map(|k| a.arrival(r, k))
            .collect();
        next_id += n + listeners;
        let certificate = certificate.clone();
        tasks.spawn(async move {
            let mut joined: Vec<Joined> = Vec::new();
            for (id, arrival) in (first..first + n + listeners).zip(arrivals) {
                if let Some(at) = arrival {
                    tokio::time::sleep_until((started + at).into()).await;
                }
                let speaker = id < first + n;
                let rights = Rights {
                    may_speak: speaker,
                    ..Rights::default()
                };
                let t = Instant::now();
                let client = room.join(id, rights, &certificate).await?;
                if speaker {
                    client.speak();
                }
                // The room's first speaker has nobody to hear yet.
                let measured = if listeners > 0 { !speaker } else { id != first };
                joined.push((client, t, t.elapsed(), measured));
            }
            Ok::<_, voiceflow_media::MediaError>(joined)
        });
    }
    let mut clients = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(joined)) => clients.extend(joined),
            Ok(Err(e)) => return eprintln!("sfubench: light join failed: {e}"),
            Err(e) => return eprintln!("sfubench: {e}"),
        }
    }
    let all_joined = started.elapsed();
    // Until every measured participant hears audio (at most 10 s more).
    let hearing = || {
        clients
            .iter()
            .filter(|c| c.3)
            .all(|c| c.0.measured.first_audio.get().is_some())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hearing() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_hearing = started.elapsed();
    let (joins_cpu, joins_sfu) = (cpu_secs() - joins_cpu0, thread_cpu_secs("sfu") - joins_sfu0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (c, ..) in &clients {
        c.measured.delays_us.lock().clear();
    }
    let forwarded = || -> u64 {
        rooms
            .iter()
            .map(|r| r.channel.counters().forwarded.load(Ordering::Relaxed))
            .sum()
    };
    let (f0, c0, s0, t0) = (
        forwarded(),
        cpu_secs(),
        thread_cpu_secs("sfu"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (f1, c1, s1) = (forwarded(), cpu_secs(), thread_cpu_secs("sfu"));
    let measured: Vec<_> = clients.iter().filter(|c| c.3).collect();
    let phase = |pick: &dyn Fn(&Joined) -> Option<Duration>| {
        let mut v: Vec<u32> = measured
            .iter()
            .filter_map(|c| pick(c))
            .map(|d| d.as_millis() as u32)
            .collect();
        v.sort_unstable();
        (v.len(), percentile(&v, 0.5), percentile(&v, 0.99))
    };
    let answered = phase(&|c| Some(c.2));
    let connected = phase(&|c| c.0.measured.connected.get().map(|t| t.duration_since(c.1)));
    let server_connected: HashMap<u64, Instant> = rooms
        .iter()
        .flat_map(|r| r.server_connected.lock().clone())
        .collect();
    let on_server = phase(&|c| server_connected.get(&c.0.id).map(|t| t.duration_since(c.1)));
    let ice = phase(&|c| c.0.phases.ice_answered.get().map(|t| t.duration_since(c.1)));
    let dtls = phase(&|c| c.0.phases.dtls_first.get().map(|t| t.duration_since(c.1)));
    let offer = phase(&|c| c.0.phases.offer.get().map(|t| t.duration_since(c.1)));
    let first = phase(&|c| {
        c.0.measured
            .first_audio
            .get()
            .map(|t| t.duration_since(c.1))
    });
    let mut delays: Vec<u32> = measured
        .iter()
        .flat_map(|c| c.0.measured.delays_us.lock().clone())
        .collect();
    delays.sort_unstable();
    let expected = (a.rooms * a.speakers * (a.speakers - 1 + a.listeners)) as f64 * 50.0;
    let rate = (f1 - f0) as f64 / elapsed;
    let sfu = (s1 - s0) / elapsed;
    println!("participants: {} (light clients)", clients.len());
    println!("arrivals: {}", arrivals(a));
    println!("all_joined_secs: {:.2}", all_joined.as_secs_f64());
    // CPU from the first arrival until every measured participant hears audio, per
    // participant: the server's (its loop threads) and the whole process's (the load clients'
    // handshakes too). With everyone arriving at once, the last can hear no sooner than all
    // this work divided by the cores it runs on, and the median no sooner than half of it.
    let n = clients.len().max(1) as f64;
    println!("all_hearing_secs: {:.2}", all_hearing.as_secs_f64());
    println!(
        "joins_cpu_ms_per_participant: sfu {:.3} process {:.3} (first arrival → all hearing; sfu includes forwarding to those already in)",
        joins_sfu * 1000.0 / n,
        joins_cpu * 1000.0 / n
    );
    println!(
        "join_to_answered_ms.p50/p99: {} / {}",
        answered.1, answered.2
    );
    // Handshakes in progress at once on the server: from its first flight reaching the client
    // to its own report of the connection up.
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for c in &clients {
        if let (Some(start), Some(end)) =
            (c.0.phases.dtls_first.get(), server_connected.get(&c.0.id))
        {
            edges.push((*start, 1));
            edges.push((*end, -1));
        }
    }
    edges.sort();
    let (mut open, mut most) = (0, 0);
    for (_, d) in &edges {
        open += d;
        most = most.max(open);
    }
    let spans: Vec<u32> = clients
        .iter()
        .filter_map(|c| {
            let end = server_connected.get(&c.0.id)?;
            Some(
                end.duration_since(*c.0.phases.dtls_first.get()?)
                    .as_millis() as u32,
            )
        })
        .collect();
    let mut spans = spans;
    spans.sort_unstable();
    println!(
        "dtls_handshake_ms.p50/p99: {} / {} (server's first flight at the client → server connected); at most {most} at once",
        percentile(&spans, 0.5),
        percentile(&spans, 0.99)
    );
    println!(
        "join_to_ice_answered_ms.p50/p99: {} / {} (n={})",
        ice.1, ice.2, ice.0
    );
    println!(
        "join_to_server_dtls_start_ms.p50/p99: {} / {} (its first flight at the client; n={})",
        dtls.1, dtls.2, dtls.0
    );
    println!(
        "join_to_server_offer_ms.p50/p99: {} / {} (the legs' renegotiation; n={})",
        offer.1, offer.2, offer.0
    );
    println!(
        "join_to_server_connected_ms.p50/p99: {} / {} (n={})",
        on_server.1, on_server.2, on_server.0
    );
    println!(
        "join_to_connected_ms.p50/p99: {} / {} (n={})",
        connected.1, connected.2, connected.0
    );
    println!("join_to_first_audio_ms.p50: {}", first.1);
    println!("join_to_first_audio_ms.p99: {}", first.2);
    println!("measured_with_audio: {} of {}", first.0, measured.len());
    let silent: Vec<String> = measured
        .iter()
        .filter(|c| c.0.measured.first_audio.get().is_none())
        .map(|c| {
            let up = c.0.measured.connected.get().is_some();
            format!("{}{}", c.0.id, if up { "" } else { "(not connected)" })
        })
        .collect();
    if !silent.is_empty() {
        println!("measured_without_audio: {}", silent.join(" "));
    }
    println!("forwarded_packets_per_sec: {rate:.0} (expected {expected:.0})");
    println!("cpu_secs_per_sec: {:.2}", (c1 - c0) / elapsed);
    println!("sfu_cpu_secs_per_sec: {sfu:.2} (the media loop's threads only)");
    println!(
        "forwarded_packets_per_sfu_cpu_sec: {:.0}",
        rate / sfu.max(0.001)
    );
    let stats = plane.stats();
    let dropped: Vec<String> = voiceflow_media::DropReason::ALL
        .iter()
        .map(|r| format!("{}={}", r.label(), stats.dropped(*r)))
        .collect();
    println!(
        "server_datagrams: in {} out {} dropped {}",
        stats.received.load(Ordering::Relaxed),
        stats.sent.load(Ordering::Relaxed),
        dropped.join(" ")
    );
    println!("delay_ms.p50: {:.2}", percentile(&delays, 0.5) / 1000.0);
    println!("delay_ms.p99: {:.2}", percentile(&delays, 0.99) / 1000.0);
    println!(
        "udp_rcvbuf_errors: {} (kernel drops for full receive buffers during the run, any socket of the host)",
        udp_rcvbuf_errors().saturating_sub(rcvbuf_errors)
    );
    let port = plane.local_addr().map_or(0, |a| a.port());
    let (server, clients) = udp_socket_drops(port);
    println!(
        "udp_socket_drops: server {server} clients {clients} (the kernel's, on this process's sockets)"
    );
    for r in &rooms {
        r.channel.close().await;
    }
}

/// The server's memory per connection, the clients not counted: `n` connections answering
/// one client's offer (built and answered as in a join; never connected, so without the few
/// KiB of DTLS/SRTP state a finished handshake adds), and how fast the loop makes them.
async fn server_memory(plane: &MediaPlane, n: usize) {
    let client = match Client::new(0).await {
        Ok(c) => c,
        Err(e) => return eprintln!("sfubench: {e}"),
    };
    let offer = match client.offer().await {
        Ok(o) => o,
        Err(e) => return eprintln!("sfubench: {e}"),
    };
    let (channel, mut events) = voiceflow_media::Channel::new(plane);
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    // The first connection makes the node's certificate: not a per-connection cost.
    if let Err(e) = channel
        .join(u64::MAX, offer.clone(), Rights::default())
        .await
    {
        return eprintln!("sfubench: {e}");
    }
    let before = rss();
    let started = Instant::now();
    for id in 1..=n as u64 {
        if let Err(e) = channel.join(id, offer.clone(), Rights::default()).await {
            return eprintln!("sfubench: join {id}: {e}");
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
    channel.close().await;
    let _ = client.close().await;
}
