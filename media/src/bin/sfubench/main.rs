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

mod light;
mod proc;

use light::light_bench;
use proc::{
    cpu_secs, deprioritise_clients, percentile, print_server_datagrams, rss, thread_cpu_secs,
};

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

/// How the participants arrive, as printed.
pub(crate) fn arrivals(a: &Args) -> String {
    if a.join_rate > 0.0 {
        format!("{} per second (join_rate), round the rooms", a.join_rate)
    } else {
        "all at once (each room's one after another)".to_owned()
    }
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
    print_server_datagrams(&plane);
    let stats = plane.stats();
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
