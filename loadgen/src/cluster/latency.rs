//! Part `latency`: same-entry vs different-entry rooms, their placement on the nodes, the
//! measured window (with `/metrics` and CPU read before and after) and the drain.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use super::clients::{lat_receiver, lat_sender};
use super::metrics::{CpuUse, Http, Scrape, scrape_all};
use super::nodes::{Incoming, incoming, open_conn, setup_nodes, setup_rooms};
use super::report::latency_figures;
use crate::stats::{SharedHist, shared_histogram};
use crate::ws::{Signal, Ws};
use crate::{Args, Ctx, conns};

/// Room categories, indexed by `LatRoom::cat`.
pub(super) const CATS: [&str; 2] = ["same_entry", "diff_entry"];

pub(super) struct LatShared {
    pub(super) start: Signal,
    pub(super) start_at: OnceLock<Instant>,
    pub(super) stop: Signal,
    pub(super) sent: AtomicU64,
    pub(super) acked: [AtomicU64; 2],
    pub(super) refused: AtomicU64,
    pub(super) delivered: [AtomicU64; 2],
    pub(super) disconnects: AtomicU64,
    pub(super) latency: [SharedHist; 2],
    pub(super) ack_latency: [SharedHist; 2],
    pub(super) first_error: Mutex<Option<String>>,
}

impl LatShared {
    /// The next text frame on `ws`; `None` once the connection ended (counted as a
    /// disconnect unless the run is stopping).
    pub(super) async fn next_text(&self, ws: &mut Ws) -> Option<Utf8Bytes> {
        loop {
            match incoming(ws.next().await) {
                Incoming::Text(t) => return Some(t),
                Incoming::Other => {}
                Incoming::Ended => {
                    if !self.stop.is_set() {
                        self.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    return None;
                }
            }
        }
    }
}

/// The sum over both categories.
pub(super) fn sum(counters: &[AtomicU64; 2]) -> u64 {
    counters.iter().map(|a| a.load(Ordering::Relaxed)).sum()
}

pub(super) struct LatRoom {
    pub(super) id: String,
    pub(super) cat: usize,
    pub(super) offset: Duration,
    /// Acked and received sequence numbers.
    pub(super) log: Mutex<(HashSet<u64>, HashMap<u64, u32>)>,
}

/// What was read around the measured window.
pub(super) struct Window {
    /// From the start of sending to the end of the drain.
    pub(super) elapsed: Duration,
    pub(super) before: Scrape,
    pub(super) after: Scrape,
    pub(super) cpu0: CpuUse,
    pub(super) cpu1: CpuUse,
}

pub(super) async fn latency(args: &Args, ctx: &Ctx) -> Result<()> {
    let nodes = Arc::new(setup_nodes(args).await?);
    let n = nodes.len();
    let rooms_n = args.rooms.unwrap_or(200).max(1);
    let users_n = args.users.unwrap_or(64).max(2);
    let duration = Duration::from_secs(args.duration.unwrap_or(20).max(1));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let http = Http::new()?;

    let (users, created) = setup_rooms(args, ctx, &nodes, users_n, rooms_n, "croom").await?;

    // Room r: sender on node s, receiver on s (even r) or on another node (odd r).
    let mut rooms = Vec::new();
    let mut placement = Vec::new();
    for (r, room) in created.iter().enumerate() {
        let half = r / 2;
        let s = half % n;
        let cross = n > 1 && r % 2 == 1;
        let recv = if cross {
            (s + 1 + (half / n) % (n - 1)) % n
        } else {
            s
        };
        rooms.push(Arc::new(LatRoom {
            id: room.id.clone(),
            cat: usize::from(cross),
            offset: period.mul_f64(r as f64 / rooms_n as f64),
            log: Mutex::new((HashSet::new(), HashMap::new())),
        }));
        placement.push((s, recv));
    }
    let shared = Arc::new(LatShared {
        start: Signal::default(),
        start_at: OnceLock::new(),
        stop: Signal::default(),
        sent: AtomicU64::new(0),
        acked: [AtomicU64::new(0), AtomicU64::new(0)],
        refused: AtomicU64::new(0),
        delivered: [AtomicU64::new(0), AtomicU64::new(0)],
        disconnects: AtomicU64::new(0),
        latency: [shared_histogram(), shared_histogram()],
        ack_latency: [shared_histogram(), shared_histogram()],
        first_error: Mutex::new(None),
    });

    eprintln!(
        "cluster latency: {rooms_n} rooms over {n} node(s), opening {} sessions",
        rooms_n * 2
    );
    let sem = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        let (s, recv) = placement[r];
        for is_sender in [false, true] {
            let (node, token) = if is_sender {
                (s, users[r % users_n].token.clone())
            } else {
                (recv, users[(r + users_n / 2) % users_n].token.clone())
            };
            let (sem, ready, failed) = (sem.clone(), ready.clone(), failed.clone());
            let (nodes, room, shared) = (nodes.clone(), room.clone(), shared.clone());
            let origin = ctx.origin;
            handles.push(tokio::spawn(async move {
                let permit = sem.acquire_owned().await;
                let join = (!is_sender).then(|| json!({ "roomId": room.id }));
                let mut frames = Vec::new();
                let opened =
                    open_conn(&nodes.targets[node], &token, join.as_ref(), &mut frames).await;
                drop(permit);
                let conn = match opened {
                    Ok(c) => c,
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("error: connection to {}: {e:#}", nodes.urls[node]);
                        }
                        return;
                    }
                };
                ready.fetch_add(1, Ordering::Relaxed);
                if is_sender {
                    lat_sender(conn, room, shared, period, duration, origin).await;
                } else {
                    lat_receiver(conn, room, shared, origin).await;
                }
            }));
        }
    }
    let total = rooms_n * 2;
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < total {
        if Instant::now() > connect_deadline {
            bail!("sessions not connected after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_n = failed.load(Ordering::Relaxed);
    if failed_n > 0 {
        bail!("{failed_n} of {total} sessions failed to connect");
    }
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;

    let node_urls = &nodes.urls[..args.cluster.urls.len()];
    let before = scrape_all(&http, node_urls).await;
    let cpu0 = CpuUse::read(&args.cluster.node_pids);
    eprintln!(
        "cluster latency: {rooms_n} rooms, {} msg/s each, {} s",
        args.rate,
        duration.as_secs()
    );
    let started = Instant::now() + Duration::from_millis(20);
    let _ = shared.start_at.set(started);
    shared.start.set();
    tokio::time::sleep_until((started + duration).into()).await;
    let drain_end = Instant::now() + Duration::from_secs(args.drain_secs);
    loop {
        let acked = sum(&shared.acked);
        let delivered = sum(&shared.delivered);
        let answered = acked + shared.refused.load(Ordering::Relaxed);
        if (answered >= shared.sent.load(Ordering::Relaxed) && delivered >= acked)
            || Instant::now() >= drain_end
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let cpu1 = CpuUse::read(&args.cluster.node_pids);
    let after = scrape_all(&http, node_urls).await;
    shared.stop.set();
    conns::join_all(handles, Duration::from_secs(10)).await;

    let window = Window {
        elapsed,
        before,
        after,
        cpu0,
        cpu1,
    };
    latency_figures(args, n, &rooms, &shared, duration, &window);
    Ok(())
}
