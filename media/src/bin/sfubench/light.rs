//! The rooms with light load clients (`light=1`): joins, their phases and CPU, forwarding.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voiceflow_media::{MediaPlane, Rights};

use crate::proc::{
    cpu_secs, percentile, print_server_datagrams, thread_cpu_secs, udp_rcvbuf_errors,
    udp_socket_drops,
};
use crate::{Args, arrivals};

/// A light client, when its join started, how long the signalling took, whether it counts.
type Joined = (
    voiceflow_media::loadclient::LightClient,
    Instant,
    Duration,
    bool,
);

/// The same rooms with light load clients (see `Args::light`); the same figures.
pub(crate) async fn light_bench(a: &Args, plane: &MediaPlane) {
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
    let print_phase = |name: &str, note: &str, (n, p50, p99): (usize, f64, f64)| {
        println!("join_to_{name}_ms.p50/p99: {p50} / {p99} ({note}n={n})");
    };
    print_phase("ice_answered", "", ice);
    print_phase(
        "server_dtls_start",
        "its first flight at the client; ",
        dtls,
    );
    print_phase("server_offer", "the legs' renegotiation; ", offer);
    print_phase("server_connected", "", on_server);
    print_phase("connected", "", connected);
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
    print_server_datagrams(plane);
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
