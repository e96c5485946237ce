//! `cluster` scenario: a VoiceFlow cluster driven through several nodes at once
//! (`--urls http://127.0.0.1:3001,http://127.0.0.1:3002,...`). Two parts
//! (`--cluster-part`):
//!
//! * `latency`: `--rooms` (200) rooms, each with one sender session and one receiver
//!   session (two different users; the sender is the room's creator and does not join it
//!   on its WebSocket, so each message is delivered exactly once, to the receiver). In
//!   even rooms both connect to the same node ("same entry node"), in odd rooms to two
//!   different nodes ("different entry nodes"). The room's owner is chosen by rendezvous
//!   hashing inside the cluster and is invisible to clients, so with 3 nodes a
//!   same-entry room still crosses nodes 2/3 of the time. Each sender sends `--rate` (2)
//!   msg/s on an open-loop schedule spread evenly over the rooms, for `--duration` (20) s;
//!   contents are `t=<ns> k=<seq>` and latency is measured with this process's clock.
//!   Reads every node's `GET /metrics` before and after (inter-node bytes, deliveries)
//!   and, with `--node-pids`, the nodes' CPU seconds from `/proc/<pid>/stat`.
//! * `churn`: `--rooms` (1000) rooms, a receiver (joined) and a sender per room, spread
//!   over the nodes. Every sender keeps one probe in flight at a time, one every
//!   `--probe-interval-ms` (2000), spread evenly, each with a nonce; an unacknowledged
//!   probe is re-sent with the same nonce after `--resend-ms` (2000) or an error
//!   (reconnecting to another node when the connection breaks). Receivers that are
//!   disconnected reconnect to another node and `room:join {roomId, since}`. After a
//!   warm-up (every room delivered a probe) and `--settle-secs` (10) of steady state, it
//!   runs `--join-command` (e.g. `scripts/cluster add`), polls `GET /cluster` until the
//!   owners list grows, and reports the time until every room delivered a probe sent
//!   after that; then `--kill-command` (e.g. `scripts/cluster kill 2`), finds the dead
//!   node by `/healthz`, and reports the time until every room whose sender and receiver
//!   were on surviving nodes (and then every room) delivered a probe sent after the kill,
//!   plus the longest gap between consecutive acks per room (max / p99 over rooms).
//!   Finally it checks that every acknowledged probe reached its receiver exactly once,
//!   with the acknowledged id, in id order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{
    Recorder, SharedHist, elapsed_ns, fig, fig_f, latency_figs, per_sec, shared_histogram, snapshot,
};
use crate::ws::{Conn, Signal, WsTarget};
use crate::{Args, Ctx, conns, rest};

/// Which measurement the `cluster` scenario makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Same-entry vs different-entry delivery latency, inter-node traffic, CPU.
    Latency,
    /// Probes in 1,000 rooms while a node joins and then one is killed.
    Churn,
}

/// Flags of the `cluster` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// cluster: node base URLs, comma-separated (http://127.0.0.1:3001,...).
    #[arg(long, value_delimiter = ',')]
    pub urls: Vec<String>,

    /// cluster: which part to run.
    #[arg(long, value_enum, default_value = "latency")]
    pub cluster_part: Part,

    /// cluster: pids of the nodes (comma-separated) for their CPU use (latency part).
    #[arg(long, value_delimiter = ',')]
    pub node_pids: Vec<u32>,

    /// cluster churn: shell command that adds a node (run with `sh -c`, stdout to stderr).
    #[arg(long)]
    pub join_command: Option<String>,

    /// cluster churn: base URL of the node the join command starts (for reconnects).
    #[arg(long)]
    pub join_url: Option<String>,

    /// cluster churn: shell command that kills a node (e.g. `scripts/cluster kill 2`).
    #[arg(long)]
    pub kill_command: Option<String>,

    /// cluster churn: interval between probes of one room, in ms.
    #[arg(long, default_value_t = 2000)]
    pub probe_interval_ms: u64,

    /// cluster churn: re-send an unacknowledged probe (same nonce) after this many ms.
    #[arg(long, default_value_t = 2000)]
    pub resend_ms: u64,

    /// cluster churn: steady-state seconds before, between and after the events.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,

    /// cluster churn: give up waiting for an event's effect after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub event_timeout_secs: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn secs_since(t: Instant, base: Instant) -> f64 {
    t.saturating_duration_since(base).as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// Nodes, HTTP probes, connections
// ---------------------------------------------------------------------------------------

/// The nodes the generator may connect to (the `--urls`, then `--join-url`).
struct Nodes {
    urls: Vec<String>,
    targets: Vec<WsTarget>,
    alive: Vec<AtomicBool>,
}

impl Nodes {
    fn len(&self) -> usize {
        self.urls.len()
    }

    /// The next node after `after` believed alive (or simply the next one).
    fn next_alive(&self, after: usize) -> usize {
        let n = self.len();
        (1..=n)
            .map(|step| (after + step) % n)
            .find(|&i| self.alive[i].load(Ordering::Relaxed))
            .unwrap_or((after + 1) % n)
    }
}

struct Http {
    client: reqwest::Client,
}

impl Http {
    fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    async fn get_text(&self, url: &str) -> Result<String> {
        let resp = self.client.get(url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}");
        }
        Ok(text)
    }

    async fn cluster(&self, base: &str) -> Result<Value> {
        let text = self.get_text(&format!("{base}/cluster")).await?;
        Ok(serde_json::from_str(&text)?)
    }

    async fn healthy(&self, base: &str) -> bool {
        self.get_text(&format!("{base}/healthz")).await.is_ok()
    }

    /// Sums every sample of every metric by name (labels dropped).
    async fn metrics(&self, base: &str) -> Result<HashMap<String, f64>> {
        let text = self.get_text(&format!("{base}/metrics")).await?;
        let mut out: HashMap<String, f64> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, rest) = match (line.find('{'), line.rfind('}')) {
                (Some(a), Some(b)) if a < b => (&line[..a], &line[b + 1..]),
                _ => match line.split_once(' ') {
                    Some((n, r)) => (n, r),
                    None => continue,
                },
            };
            if let Some(v) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            {
                *out.entry(name.to_owned()).or_default() += v;
            }
        }
        Ok(out)
    }
}

fn members(status: &Value) -> Vec<(u64, String, u64)> {
    status
        .get("members")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m.get("nodeId").and_then(Value::as_u64).unwrap_or(0),
                        m.get("state")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                        m.get("rooms").and_then(Value::as_u64).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn owners(status: &Value) -> Vec<u64> {
    status
        .get("owners")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// utime + stime of a process in seconds (USER_HZ = 100).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn self_cpu_secs() -> Option<f64> {
    cpu_secs(std::process::id())
}

/// Connects (hello), optionally sends `room:join` with `join` as data and waits for its
/// ack; frames received before the ack (a replay) are appended to `frames`.
async fn open_conn(
    target: &WsTarget,
    token: &str,
    join: Option<&Value>,
    frames: &mut Vec<Value>,
) -> Result<Conn> {
    let mut conn = target.connect(token).await?;
    let Some(data) = join else {
        return Ok(conn);
    };
    let id = conn.next_id();
    let frame = json!({ "type": "room:join", "id": id, "data": data }).to_string();
    conn.ws
        .send(Message::text(frame))
        .await
        .context("WebSocket send")?;
    let deadline = tokio::time::Instant::now() + target.timeout();
    loop {
        let msg = tokio::time::timeout_at(deadline, conn.ws.next())
            .await
            .map_err(|_| anyhow!("no ack for room:join within {:?}", target.timeout()))?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v["type"] == "ack" && v["id"].as_u64() == Some(id) {
                    if v["ok"] == true {
                        return Ok(conn);
                    }
                    bail!("room:join refused: {}", v["error"]);
                }
                frames.push(v);
            }
            Some(Ok(Message::Close(frame))) => bail!("closed during room:join: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("WebSocket read"),
            None => bail!("WebSocket ended during room:join"),
        }
    }
}

/// Like [`open_conn`], trying node `first` and then the next live ones every 100 ms
/// until it succeeds or `stop` is set.
async fn connect_retry(
    nodes: &Nodes,
    first: usize,
    token: &str,
    join: Option<&Value>,
    frames: &mut Vec<Value>,
    stop: &Signal,
) -> Option<(usize, Conn)> {
    let mut i = first % nodes.len();
    let mut failures = 0u32;
    loop {
        if stop.is_set() {
            return None;
        }
        frames.clear();
        match open_conn(&nodes.targets[i], token, join, frames).await {
            Ok(conn) => return Some((i, conn)),
            Err(e) => {
                failures += 1;
                if failures == 20 {
                    eprintln!("warning: 20 failed (re)connects in a row; last: {e:#}");
                }
            }
        }
        i = nodes.next_alive(i);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(id, roomId, content)` of a `message:received` frame.
fn received_of(v: &Value) -> Option<(u64, &str, &str)> {
    if v.get("type")? != "message:received" {
        return None;
    }
    let data = v.get("data")?;
    let id = data.get("id")?.as_str()?.parse().ok()?;
    Some((
        id,
        data.get("roomId")?.as_str()?,
        data.get("content")?.as_str()?,
    ))
}

/// `(t, k)` from a `t=<ns> k=<seq>` content.
fn parse_content(content: &str) -> Option<(u64, u64)> {
    let rest = content.strip_prefix("t=")?;
    let (t, k) = rest.split_once(" k=")?;
    Some((t.parse().ok()?, k.trim().parse().ok()?))
}

/// Runs `sh -c <command>` with its stdout sent to our stderr; returns when it exits.
async fn run_command(command: &str) -> Result<()> {
    eprintln!("cluster: running `{command}`");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} 1>&2"))
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("running `{command}`"))?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

async fn setup_nodes(args: &Args) -> Result<Nodes> {
    let ca = &args.cluster;
    if ca.urls.is_empty() {
        bail!("cluster: --urls is required (comma-separated node base URLs)");
    }
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let mut urls: Vec<String> = ca
        .urls
        .iter()
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .collect();
    let joined = ca
        .join_url
        .as_ref()
        .map(|u| u.trim_end_matches('/').to_owned());
    if let Some(u) = &joined {
        urls.push(u.clone());
    }
    let mut targets = Vec::new();
    for url in &urls {
        targets.push(
            WsTarget::resolve(url, timeout)
                .await
                .with_context(|| format!("resolving {url}"))?
                .with_read_buffer(4 * 1024),
        );
    }
    let alive = (0..urls.len())
        .map(|i| AtomicBool::new(i < ca.urls.len()))
        .collect();
    Ok(Nodes {
        urls,
        targets,
        alive,
    })
}

async fn register(
    args: &Args,
    ctx: &Ctx,
    nodes: &Nodes,
    users_n: usize,
) -> Result<Vec<rest::User>> {
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let api = rest::Api::new(&nodes.urls[0], timeout)?;
    rest::register_many(&api, &ctx.run_id, users_n, args.register_concurrency).await
}

pub async fn run(args: &Args, ctx: &Ctx) -> Result<()> {
    match args.cluster.cluster_part {
        Part::Latency => latency(args, ctx).await,
        Part::Churn => churn(args, ctx).await,
    }
}

// ---------------------------------------------------------------------------------------
// Part 1/2: latency, inter-node traffic, CPU
// ---------------------------------------------------------------------------------------

const CATS: [&str; 2] = ["same_entry", "diff_entry"];

struct LatShared {
    start: Signal,
    start_at: OnceLock<Instant>,
    stop: Signal,
    sent: AtomicU64,
    acked: [AtomicU64; 2],
    refused: AtomicU64,
    delivered: [AtomicU64; 2],
    disconnects: AtomicU64,
    latency: [SharedHist; 2],
    ack_latency: [SharedHist; 2],
    first_error: Mutex<Option<String>>,
}

struct LatRoom {
    id: String,
    cat: usize,
    offset: Duration,
    /// Acked and received sequence numbers.
    log: Mutex<(HashSet<u64>, HashMap<u64, u32>)>,
}

async fn latency(args: &Args, ctx: &Ctx) -> Result<()> {
    let nodes = Arc::new(setup_nodes(args).await?);
    let n = nodes.len();
    let rooms_n = args.rooms.unwrap_or(200).max(1);
    let users_n = args.users.unwrap_or(64).max(2);
    let duration = Duration::from_secs(args.duration.unwrap_or(20).max(1));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let http = Http::new()?;

    let users = register(args, ctx, &nodes, users_n).await?;
    let api = rest::Api::new(
        &nodes.urls[0],
        Duration::from_secs(args.timeout_secs.max(1)),
    )?;
    let specs = (0..rooms_n)
        .map(|r| {
            (
                users[r % users_n].token.clone(),
                format!("{} croom {r}", ctx.run_id),
                10,
            )
        })
        .collect();
    let created = rest::create_rooms(&api, specs, args.rest_concurrency).await?;

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

    let before = scrape_all(&http, &nodes.urls[..args.cluster.urls.len()]).await;
    let cpu0: Vec<Option<f64>> = args
        .cluster
        .node_pids
        .iter()
        .map(|&p| cpu_secs(p))
        .collect();
    let self0 = self_cpu_secs();
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
        let acked: u64 = shared.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        let delivered: u64 = shared
            .delivered
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        let answered = acked + shared.refused.load(Ordering::Relaxed);
        if (answered >= shared.sent.load(Ordering::Relaxed) && delivered >= acked)
            || Instant::now() >= drain_end
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let cpu1: Vec<Option<f64>> = args
        .cluster
        .node_pids
        .iter()
        .map(|&p| cpu_secs(p))
        .collect();
    let self1 = self_cpu_secs();
    let after = scrape_all(&http, &nodes.urls[..args.cluster.urls.len()]).await;
    shared.stop.set();
    conns::join_all(handles, Duration::from_secs(10)).await;

    // Figures.
    let p = "cluster";
    fig(&format!("{p}.nodes"), args.cluster.urls.len(), "nodes");
    fig(&format!("{p}.rooms"), rooms_n, "rooms");
    for (c, name) in CATS.iter().enumerate() {
        let count = rooms.iter().filter(|r| r.cat == c).count();
        fig(&format!("{p}.rooms_{name}"), count, "rooms");
    }
    fig_f(&format!("{p}.rate_per_room"), args.rate, "msg/s");
    fig_f(&format!("{p}.duration_secs"), duration.as_secs_f64(), "s");
    let sent = shared.sent.load(Ordering::Relaxed);
    let acked: u64 = shared.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    let delivered: u64 = shared
        .delivered
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .sum();
    fig(&format!("{p}.sent"), sent, "msgs");
    fig_f(
        &format!("{p}.sent_per_sec"),
        per_sec(sent, duration),
        "msg/s",
    );
    fig(&format!("{p}.acked"), acked, "msgs");
    fig(
        &format!("{p}.refused"),
        shared.refused.load(Ordering::Relaxed),
        "msgs",
    );
    fig(&format!("{p}.delivered"), delivered, "msgs");
    let (mut missing, mut dups) = (0u64, 0u64);
    for room in &rooms {
        let log = lock(&room.log);
        missing += log.0.iter().filter(|k| !log.1.contains_key(k)).count() as u64;
        dups += log
            .1
            .values()
            .map(|&c| u64::from(c.saturating_sub(1)))
            .sum::<u64>();
    }
    fig(&format!("{p}.missing"), missing, "msgs");
    fig(&format!("{p}.duplicated"), dups, "msgs");
    fig(
        &format!("{p}.disconnects"),
        shared.disconnects.load(Ordering::Relaxed),
        "conns",
    );
    let mut all = crate::stats::new_histogram();
    for (c, name) in CATS.iter().enumerate() {
        let h = snapshot(&shared.latency[c]);
        if !h.is_empty() {
            latency_figs(&format!("{p}.{name}.latency"), &h);
            latency_figs(
                &format!("{p}.{name}.ack_latency"),
                &snapshot(&shared.ack_latency[c]),
            );
        }
        let _ = all.add(&h);
    }
    latency_figs(&format!("{p}.all.latency"), &all);

    // Inter-node traffic and CPU over [start, end of drain].
    let delta = |name: &str| -> Option<f64> {
        let mut sum = 0.0;
        for (b, a) in before.iter().zip(&after) {
            let (Some(b), Some(a)) = (b, a) else {
                return None;
            };
            sum += a.get(name).copied().unwrap_or(0.0) - b.get(name).copied().unwrap_or(0.0);
        }
        Some(sum)
    };
    let secs = elapsed.as_secs_f64();
    fig_f(&format!("{p}.window_secs"), secs, "s");
    // Sent and received should match; a node's counters created before its metrics
    // recorder was installed stay at zero, so the larger of the two is used per message.
    let sent_b = delta("voiceflow_cluster_bytes_sent_total");
    let recv_b = delta("voiceflow_cluster_bytes_received_total");
    if let Some(bytes) = sent_b {
        fig_f(
            &format!("{p}.internode_bytes_sent_per_sec"),
            bytes / secs,
            "B/s",
        );
    }
    if let Some(bytes) = recv_b {
        fig_f(
            &format!("{p}.internode_bytes_received_per_sec"),
            bytes / secs,
            "B/s",
        );
    }
    if let (Some(s), Some(r)) = (sent_b, recv_b) {
        let bytes = s.max(r);
        if acked > 0 && n > 1 {
            fig_f(
                &format!("{p}.internode_bytes_per_message"),
                bytes / acked as f64,
                "B",
            );
        }
        if (s - r).abs() > 0.1 * bytes {
            eprintln!(
                "warning: the nodes counted {s:.0} inter-node bytes sent but {r:.0} received"
            );
        }
    }
    let metric_deliveries = delta("voiceflow_deliveries_total");
    if let Some(d) = metric_deliveries {
        fig_f(&format!("{p}.metric_deliveries_per_sec"), d / secs, "msg/s");
    }
    if let Some(m) = delta("voiceflow_messages_total") {
        fig_f(&format!("{p}.metric_messages_per_sec"), m / secs, "msg/s");
    }
    fig_f(
        &format!("{p}.observed_deliveries_per_sec"),
        per_sec(delivered, elapsed),
        "msg/s",
    );
    let mut cpu_total = 0.0;
    let mut cpu_ok = !cpu0.is_empty();
    for (i, (a, b)) in cpu0.iter().zip(&cpu1).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                let used = b - a;
                cpu_total += used;
                fig_f(
                    &format!("{p}.node{}.cpu_util_pct", i + 1),
                    used / secs * 100.0,
                    "%",
                );
            }
            _ => cpu_ok = false,
        }
    }
    if cpu_ok {
        fig_f(&format!("{p}.nodes_cpu_secs"), cpu_total, "s");
        if cpu_total > 0.0 {
            fig_f(
                &format!("{p}.observed_deliveries_per_cpu_sec"),
                delivered as f64 / cpu_total,
                "msg/cpu-s",
            );
            if let Some(d) = metric_deliveries {
                fig_f(
                    &format!("{p}.metric_deliveries_per_cpu_sec"),
                    d / cpu_total,
                    "msg/cpu-s",
                );
            }
        }
    }
    if let (Some(a), Some(b)) = (self0, self1) {
        fig_f("loadgen.cpu_util_pct", (b - a) / secs * 100.0, "%");
    }
    if let Some(e) = lock(&shared.first_error).clone() {
        eprintln!("error: first refused message:send: {e}");
    }
    Ok(())
}

async fn scrape_all(http: &Http, urls: &[String]) -> Vec<Option<HashMap<String, f64>>> {
    let mut out = Vec::new();
    for url in urls {
        match http.metrics(url).await {
            Ok(m) => out.push(Some(m)),
            Err(e) => {
                eprintln!("warning: GET {url}/metrics: {e:#}");
                out.push(None);
            }
        }
    }
    out
}

async fn lat_sender(
    mut conn: Conn,
    room: Arc<LatRoom>,
    shared: Arc<LatShared>,
    period: Duration,
    duration: Duration,
    origin: Instant,
) {
    let mut ack_rec = Recorder::new(shared.ack_latency[room.cat].clone());
    let mut inflight: HashMap<u64, (u64, u64)> = HashMap::new();
    shared.start.wait().await;
    let Some(&start_at) = shared.start_at.get() else {
        return;
    };
    let end = start_at + duration;
    let room_json = json!(room.id).to_string();
    let mut k = 0u64;
    let due = |k: u64| start_at + room.offset + period.mul_f64(k as f64);
    let mut sending = due(0) < end;
    let wake = tokio::time::sleep_until(due(0).into());
    tokio::pin!(wake);
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            msg = conn.ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        if !shared.stop.is_set() {
                            shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if v["type"] != "ack" {
                    continue;
                }
                let Some((seq, t0)) = v["id"].as_u64().and_then(|id| inflight.remove(&id)) else {
                    continue;
                };
                if v["ok"] == true {
                    shared.acked[room.cat].fetch_add(1, Ordering::Relaxed);
                    ack_rec.record(elapsed_ns(origin).saturating_sub(t0));
                    lock(&room.log).0.insert(seq);
                } else {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    let mut first = lock(&shared.first_error);
                    if first.is_none() {
                        *first = Some(v["error"].to_string());
                    }
                }
            }
            () = &mut wake, if sending => {
                let id = conn.next_id();
                let t = elapsed_ns(origin);
                let frame = format!(
                    r#"{{"type":"message:send","id":{id},"data":{{"roomId":{room_json},"content":"t={t} k={k}"}}}}"#
                );
                if conn.ws.send(Message::text(frame)).await.is_err() {
                    shared.disconnects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                inflight.insert(id, (k, t));
                shared.sent.fetch_add(1, Ordering::Relaxed);
                k += 1;
                if due(k) >= end {
                    sending = false;
                } else {
                    wake.as_mut().reset(due(k).into());
                }
            }
            () = &mut stop => return,
        }
    }
}

async fn lat_receiver(mut conn: Conn, room: Arc<LatRoom>, shared: Arc<LatShared>, origin: Instant) {
    let mut rec = Recorder::new(shared.latency[room.cat].clone());
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            msg = conn.ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        if !shared.stop.is_set() {
                            shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                let now = elapsed_ns(origin);
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                let Some((_, room_id, content)) = received_of(&v) else { continue };
                if room_id != room.id {
                    continue;
                }
                let Some((t, k)) = parse_content(content) else { continue };
                rec.record(now.saturating_sub(t));
                shared.delivered[room.cat].fetch_add(1, Ordering::Relaxed);
                *lock(&room.log).1.entry(k).or_default() += 1;
            }
            () = &mut stop => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Part 3/4: a node joins, a node is killed
// ---------------------------------------------------------------------------------------

struct Probe {
    first_sent: Instant,
    /// (ack time, acknowledged message id)
    acked: Option<(Instant, u64)>,
}

#[derive(Default)]
struct ProbeLog {
    /// Indexed by probe sequence number k.
    sends: Vec<Probe>,
    /// (k, message id, receive time), in receive order.
    recv: Vec<(u64, u64, Instant)>,
    /// Ack times in order.
    acks: Vec<Instant>,
    sender_node: usize,
    receiver_node: usize,
    sender_first: usize,
    receiver_first: usize,
    resends: Vec<Instant>,
    sender_reconnects: Vec<Instant>,
    receiver_reconnects: Vec<Instant>,
    refusals: u64,
    first_refusal: Option<String>,
}

impl ProbeLog {
    /// When this room first delivered a probe first sent at or after `x`.
    fn delivered_after(&self, x: Instant) -> Option<Instant> {
        self.recv
            .iter()
            .find(|(k, _, _)| {
                self.sends
                    .get(*k as usize)
                    .is_some_and(|p| p.first_sent >= x)
            })
            .map(|r| r.2)
    }

    /// Longest time without an ack within `[a, b]` (gaps overlapping the window, an
    /// open gap running to `b` included).
    fn longest_gap(&self, a: Instant, b: Instant) -> Duration {
        let mut best = Duration::ZERO;
        let mut prev: Option<Instant> = None;
        for &t in &self.acks {
            if let Some(p) = prev
                && t > a
                && p < b
            {
                best = best.max(t - p);
            }
            prev = Some(t);
        }
        if let Some(p) = prev
            && p < b
        {
            best = best.max(b - p.max(a));
        }
        best
    }
}

fn count_in(times: &[Instant], a: Instant, b: Instant) -> usize {
    times.iter().filter(|&&t| t >= a && t <= b).count()
}

struct ChurnRoom {
    index: usize,
    id: String,
    offset: Duration,
    sender_token: Arc<str>,
    receiver_token: Arc<str>,
    log: Mutex<ProbeLog>,
}

struct ChurnShared {
    start: Signal,
    start_at: OnceLock<Instant>,
    /// No new probes.
    stop_sending: Signal,
    /// Everything stops.
    hard_stop: Signal,
    interval: Duration,
    resend: Duration,
    origin: Instant,
    run_id: String,
    latency: SharedHist,
    ready: AtomicUsize,
}

/// One observation of `GET /cluster`.
struct Seen {
    at: Instant,
    owners: Vec<u64>,
    members: Vec<(u64, String, u64)>,
}

/// Polls `GET /cluster` every 100 ms from the first node that answers.
fn spawn_poller(nodes: Arc<Nodes>, stop: Arc<Signal>) -> (Arc<Mutex<Vec<Seen>>>, JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let handle = tokio::spawn(async move {
        let Ok(http) = Http::new() else { return };
        let mut from = 0usize;
        while !stop.is_set() {
            let url = nodes.urls[from].clone();
            match http.cluster(&url).await {
                Ok(status) => lock(&out).push(Seen {
                    at: Instant::now(),
                    owners: owners(&status),
                    members: members(&status),
                }),
                Err(_) => from = nodes.next_alive(from),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (seen, handle)
}

async fn churn(args: &Args, ctx: &Ctx) -> Result<()> {
    let ca = &args.cluster;
    let nodes = Arc::new(setup_nodes(args).await?);
    let n0 = ca.urls.len();
    let rooms_n = args.rooms.unwrap_or(1000).max(1);
    let users_n = args.users.unwrap_or(64).max(2);
    let interval = Duration::from_millis(ca.probe_interval_ms.max(50));
    let settle = Duration::from_secs(ca.settle_secs);
    let event_timeout = Duration::from_secs(ca.event_timeout_secs.max(5));
    let http = Http::new()?;

    // Node ids behind the URLs.
    let mut node_ids: Vec<Option<u64>> = Vec::new();
    for url in &nodes.urls[..n0] {
        let id = http
            .cluster(url)
            .await
            .with_context(|| format!("GET {url}/cluster (is it a cluster node?)"))?["nodeId"]
            .as_u64();
        node_ids.push(id);
    }
    node_ids.resize(nodes.len(), None);

    let users = register(args, ctx, &nodes, users_n).await?;
    let api = rest::Api::new(
        &nodes.urls[0],
        Duration::from_secs(args.timeout_secs.max(1)),
    )?;
    let specs = (0..rooms_n)
        .map(|r| {
            (
                users[r % users_n].token.clone(),
                format!("{} churn {r}", ctx.run_id),
                10,
            )
        })
        .collect();
    let created = rest::create_rooms(&api, specs, args.rest_concurrency).await?;

    let shared = Arc::new(ChurnShared {
        start: Signal::default(),
        start_at: OnceLock::new(),
        stop_sending: Signal::default(),
        hard_stop: Signal::default(),
        interval,
        resend: Duration::from_millis(ca.resend_ms.max(100)),
        origin: ctx.origin,
        run_id: ctx.run_id.clone(),
        latency: shared_histogram(),
        ready: AtomicUsize::new(0),
    });
    let rooms: Vec<Arc<ChurnRoom>> = created
        .iter()
        .enumerate()
        .map(|(r, room)| {
            Arc::new(ChurnRoom {
                index: r,
                id: room.id.clone(),
                offset: interval.mul_f64(r as f64 / rooms_n as f64),
                sender_token: users[r % users_n].token.clone(),
                receiver_token: users[(r + users_n / 2) % users_n].token.clone(),
                log: Mutex::new(ProbeLog::default()),
            })
        })
        .collect();

    eprintln!(
        "cluster churn: {rooms_n} rooms over {n0} nodes, opening {} sessions",
        rooms_n * 2
    );
    let sem = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut handles = Vec::new();
    for room in &rooms {
        let r = room.index;
        let receiver_node = r % n0;
        let sender_node = (r + r / n0) % n0;
        {
            let mut log = lock(&room.log);
            log.receiver_node = receiver_node;
            log.sender_node = sender_node;
        }
        for is_sender in [false, true] {
            let (nodes, room, shared, sem) =
                (nodes.clone(), room.clone(), shared.clone(), sem.clone());
            handles.push(tokio::spawn(async move {
                if is_sender {
                    churn_sender(nodes, room, shared, sem, sender_node).await;
                } else {
                    churn_receiver(nodes, room, shared, sem, receiver_node).await;
                }
            }));
        }
    }
    let total = rooms_n * 2;
    let deadline = Instant::now() + Duration::from_secs(180);
    while shared.ready.load(Ordering::Relaxed) < total {
        if Instant::now() > deadline {
            shared.hard_stop.set();
            bail!(
                "only {} of {total} sessions connected after 180 s",
                shared.ready.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cluster churn: {total} sessions open");

    let poll_stop = Arc::new(Signal::default());
    let (seen, poller) = spawn_poller(nodes.clone(), poll_stop.clone());
    let initial_owners: HashSet<u64> = http
        .cluster(&nodes.urls[0])
        .await
        .map(|s| owners(&s).into_iter().collect())
        .unwrap_or_default();

    let started = Instant::now() + Duration::from_millis(20);
    let _ = shared.start_at.set(started);
    shared.start.set();
    let warm = wait_delivered(&rooms, started, event_timeout).await;
    let Some(warm_at) = warm.at else {
        finish(&shared, handles, poll_stop, poller).await;
        bail!(
            "warm-up: {} rooms delivered no probe within {} s",
            warm.missing,
            event_timeout.as_secs()
        );
    };
    fig("churn.rooms", rooms_n, "rooms");
    fig("churn.nodes", n0, "nodes");
    fig("churn.probe_interval_ms", interval.as_millis(), "ms");
    fig_f(
        "churn.probes_per_sec",
        rooms_n as f64 / interval.as_secs_f64(),
        "msg/s",
    );
    fig_f("churn.warmup_secs", secs_since(warm_at, started), "s");
    tokio::time::sleep(settle).await;
    let baseline = (warm_at, Instant::now());
    gap_figs("churn.steady", &rooms, baseline.0, baseline.1);

    let mut events = String::new();
    // Part 3: a node joins.
    if let Some(cmd) = &ca.join_command {
        let t_cmd = Instant::now();
        events.push_str(&format!(
            "join command at {:.2}",
            secs_since(t_cmd, started)
        ));
        let cmd_task = {
            let cmd = cmd.clone();
            tokio::spawn(async move { (run_command(&cmd).await, Instant::now()) })
        };
        // Owners list grows (as seen by whichever node the poller asks).
        let mut t_seen = None;
        let mut new_ids: Vec<u64> = Vec::new();
        let mut cmd_done: Option<(Result<()>, Instant)> = None;
        let mut cmd_task = Some(cmd_task);
        while t_seen.is_none() || cmd_done.is_none() {
            if let Some(task) = &cmd_task
                && task.is_finished()
                && let Some(task) = cmd_task.take()
            {
                cmd_done = Some(
                    task.await
                        .unwrap_or_else(|e| (Err(anyhow!("{e}")), Instant::now())),
                );
            }
            if t_seen.is_none()
                && let Some(s) = lock(&seen)
                    .iter()
                    .rev()
                    .find(|s| s.at >= t_cmd && s.owners.iter().any(|o| !initial_owners.contains(o)))
            {
                t_seen = Some(s.at);
                new_ids = s
                    .owners
                    .iter()
                    .copied()
                    .filter(|o| !initial_owners.contains(o))
                    .collect();
            }
            if t_cmd.elapsed() > event_timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first observation with the new owner, not the last.
        if let Some(first) = lock(&seen)
            .iter()
            .find(|s| s.at >= t_cmd && s.owners.iter().any(|o| new_ids.contains(o)))
        {
            t_seen = Some(first.at);
        }
        match &cmd_done {
            Some((Ok(()), at)) => fig_f("join.command_secs", secs_since(*at, t_cmd), "s"),
            Some((Err(e), _)) => eprintln!("error: join command: {e:#}"),
            None => eprintln!("error: join command still running after {event_timeout:?}"),
        }
        if nodes.len() > n0 {
            nodes.alive[n0].store(true, Ordering::Relaxed);
            node_ids[n0] = http
                .cluster(&nodes.urls[n0])
                .await
                .ok()
                .and_then(|s| s["nodeId"].as_u64());
        }
        if let Some(t_seen) = t_seen {
            fig_f("join.owners_seen_secs", secs_since(t_seen, t_cmd), "s");
            eprintln!("cluster churn: new owner(s) {new_ids:?} seen");
            let done = wait_delivered(&rooms, t_seen, event_timeout).await;
            // From the command's start; the main figure is join.rooms_probe_max_secs.
            waited_figs("join.rooms_probe", &done, t_cmd);
            if let Some(at) = done.at {
                fig_f(
                    "join.rooms_probe_after_seen_max_secs",
                    secs_since(at, t_seen),
                    "s",
                );
            } else {
                eprintln!(
                    "error: {} rooms delivered no probe sent after the join within {} s",
                    done.missing,
                    event_timeout.as_secs()
                );
            }
        } else {
            eprintln!("error: no new owner appeared in GET /cluster within {event_timeout:?}");
        }
        tokio::time::sleep(settle).await;
        let t_end = Instant::now();
        // The new node's room count as gossiped, and when it stopped changing.
        if let Some(&id) = new_ids.first() {
            let seen = lock(&seen);
            let series: Vec<(Instant, u64)> = seen
                .iter()
                .filter(|s| s.at >= t_cmd)
                .filter_map(|s| s.members.iter().find(|m| m.0 == id).map(|m| (s.at, m.2)))
                .collect();
            if let Some(&(_, last)) = series.last() {
                fig(&format!("join.node{id}_rooms"), last, "rooms");
                let settled = series
                    .iter()
                    .rev()
                    .take_while(|(_, v)| *v == last)
                    .last()
                    .map(|(t, _)| *t);
                if let Some(t) = settled {
                    fig_f(
                        &format!("join.node{id}_rooms_settled_secs"),
                        secs_since(t, t_cmd),
                        "s",
                    );
                }
            }
        }
        gap_figs("join", &rooms, t_cmd, t_end);
        event_counts("join", &rooms, t_cmd, t_end);
    }

    // Part 4: a node is killed.
    if let Some(cmd) = &ca.kill_command {
        let at_kill: Vec<(usize, usize)> = rooms
            .iter()
            .map(|r| {
                let log = lock(&r.log);
                (log.sender_node, log.receiver_node)
            })
            .collect();
        let t_cmd = Instant::now();
        if !events.is_empty() {
            events.push_str(", ");
        }
        events.push_str(&format!(
            "kill command at {:.2}",
            secs_since(t_cmd, started)
        ));
        let outcome = run_command(cmd).await;
        let t_killed = Instant::now();
        if let Err(e) = &outcome {
            eprintln!("error: kill command: {e:#}");
        }
        fig_f("kill.command_secs", secs_since(t_killed, t_cmd), "s");
        let mut dead = Vec::new();
        for i in 0..nodes.len() {
            if nodes.alive[i].load(Ordering::Relaxed) && !http.healthy(&nodes.urls[i]).await {
                nodes.alive[i].store(false, Ordering::Relaxed);
                dead.push(i);
            }
        }
        let dead_ids: Vec<u64> = dead.iter().filter_map(|&i| node_ids[i]).collect();
        eprintln!(
            "cluster churn: dead after the kill: {:?} (node ids {dead_ids:?})",
            dead.iter().map(|&i| &nodes.urls[i]).collect::<Vec<_>>()
        );
        for &id in &dead_ids {
            fig("kill.dead_node", id, "node");
        }
        let affected: HashSet<usize> = at_kill
            .iter()
            .enumerate()
            .filter(|(_, (s, r))| dead.contains(s) || dead.contains(r))
            .map(|(i, _)| i)
            .collect();
        fig(
            "kill.rooms_with_clients_on_dead_node",
            affected.len(),
            "rooms",
        );
        let survivors: Vec<Arc<ChurnRoom>> = rooms
            .iter()
            .filter(|r| !affected.contains(&r.index))
            .cloned()
            .collect();
        fig("kill.rooms_surviving_clients", survivors.len(), "rooms");
        let (surv, all) = tokio::join!(
            wait_delivered(&survivors, t_killed, event_timeout),
            wait_delivered(&rooms, t_killed, event_timeout),
        );
        // From the kill command's start.
        waited_figs("kill.surviving_rooms_probe", &surv, t_cmd);
        waited_figs("kill.all_rooms_probe", &all, t_cmd);
        if all.at.is_none() {
            eprintln!(
                "error: {} rooms ({} with clients on surviving nodes only) delivered no probe \
                 sent after the kill within {} s",
                all.missing,
                surv.missing,
                event_timeout.as_secs()
            );
        }
        // When a survivor marked the dead node down.
        let down_at = lock(&seen)
            .iter()
            .find(|s| {
                s.at >= t_cmd
                    && s.members
                        .iter()
                        .any(|m| dead_ids.contains(&m.0) && m.1 == "down")
            })
            .map(|s| s.at);
        tokio::time::sleep(settle).await;
        let t_end = Instant::now();
        let down_at = down_at.or_else(|| {
            lock(&seen)
                .iter()
                .find(|s| {
                    s.at >= t_cmd
                        && s.members
                            .iter()
                            .any(|m| dead_ids.contains(&m.0) && m.1 == "down")
                })
                .map(|s| s.at)
        });
        if let Some(at) = down_at {
            fig_f("kill.marked_down_secs", secs_since(at, t_cmd), "s");
        }
        gap_figs("kill.surviving", &survivors, t_cmd, t_end);
        gap_figs("kill.all", &rooms, t_cmd, t_end);
        event_counts("kill", &rooms, t_cmd, t_end);
    }

    // Stop, drain, verify.
    shared.stop_sending.set();
    let drain_end = Instant::now() + Duration::from_secs(args.drain_secs.max(1));
    loop {
        let pending = rooms.iter().any(|r| {
            let log = lock(&r.log);
            let unacked = log.sends.last().is_some_and(|p| p.acked.is_none());
            let got: HashSet<u64> = log.recv.iter().map(|x| x.0).collect();
            unacked
                || log
                    .sends
                    .iter()
                    .enumerate()
                    .any(|(k, p)| p.acked.is_some() && !got.contains(&(k as u64)))
        });
        if !pending || Instant::now() >= drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish(&shared, handles, poll_stop, poller).await;

    let (mut sent, mut acked, mut lost, mut dup, mut reordered, mut mismatch) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut unacked_delivered, mut unacked, mut refusals) = (0usize, 0usize, 0u64);
    let mut first_refusal = None;
    let mut bad_rooms = Vec::new();
    let mut bad_count = 0usize;
    let mut bad_by_receiver: std::collections::BTreeMap<String, usize> = Default::default();
    for room in &rooms {
        let log = lock(&room.log);
        sent += log.sends.len();
        let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
        for &(k, id, _) in &log.recv {
            got.entry(k).or_default().push(id);
        }
        let ids: Vec<u64> = log.recv.iter().map(|x| x.1).collect();
        let room_reordered = ids.windows(2).filter(|w| w[0] >= w[1]).count();
        reordered += room_reordered;
        let mut room_bad = room_reordered > 0;
        for (k, p) in log.sends.iter().enumerate() {
            let k = k as u64;
            let ids = got.get(&k);
            match (p.acked, ids) {
                (Some((_, id)), Some(ids)) => {
                    acked += 1;
                    if ids.len() > 1 {
                        dup += ids.len() - 1;
                        room_bad = true;
                    }
                    if ids.iter().any(|&x| x != id) {
                        mismatch += 1;
                        room_bad = true;
                    }
                }
                (Some(_), None) => {
                    acked += 1;
                    lost += 1;
                    room_bad = true;
                }
                (None, Some(ids)) => {
                    unacked += 1;
                    unacked_delivered += 1;
                    dup += ids.len() - 1;
                }
                (None, None) => unacked += 1,
            }
        }
        refusals += log.refusals;
        if first_refusal.is_none() {
            first_refusal.clone_from(&log.first_refusal);
        }
        if room_bad {
            bad_count += 1;
            *bad_by_receiver
                .entry(nodes.urls[log.receiver_node].clone())
                .or_insert(0usize) += 1;
            if bad_rooms.len() < 10 {
                bad_rooms.push(describe(&nodes, room, &log, started));
            }
        }
    }
    fig("churn.sent", sent, "msgs");
    fig("churn.acked", acked, "msgs");
    fig("churn.lost", lost, "msgs");
    fig("churn.duplicated", dup, "msgs");
    fig("churn.reordered", reordered, "msgs");
    fig("churn.id_mismatch", mismatch, "msgs");
    fig("churn.unacked", unacked, "msgs");
    fig("churn.unacked_delivered", unacked_delivered, "msgs");
    fig("churn.refused_sends", refusals, "msgs");
    latency_figs("churn.latency", &snapshot(&shared.latency));
    if let Some(e) = first_refusal {
        eprintln!("note: first refused message:send: {e}");
    }
    if bad_count > 0 {
        eprintln!(
            "error: {bad_count} rooms lost, duplicated or reordered messages (times in s since \
             the probes started; events: {events}); by the receiver's node at the end: \
             {bad_by_receiver:?}; the first ones:"
        );
    }
    for line in bad_rooms {
        eprintln!("  {line}");
    }
    Ok(())
}

/// One line about a room whose receiver missed, doubled or reordered messages.
fn describe(nodes: &Nodes, room: &ChurnRoom, log: &ProbeLog, started: Instant) -> String {
    let t = |i: Instant| (secs_since(i, started) * 100.0).round() / 100.0;
    let got: HashSet<u64> = log.recv.iter().map(|r| r.0).collect();
    let lost: Vec<(usize, f64)> = log
        .sends
        .iter()
        .enumerate()
        .filter(|(k, p)| p.acked.is_some() && !got.contains(&(*k as u64)))
        .map(|(k, p)| (k, t(p.first_sent)))
        .collect();
    format!(
        "room {} (id {}): sender {} (first {}), receiver {} (first {}); receiver reconnects at \
         {:?}, sender reconnects at {:?}; {} probes, {} received, {} lost (first: k, sent at \
         {:?}; last: {:?}); last received (k, at): {:?}",
        room.index,
        room.id,
        nodes.urls[log.sender_node],
        nodes.urls[log.sender_first],
        nodes.urls[log.receiver_node],
        nodes.urls[log.receiver_first],
        log.receiver_reconnects
            .iter()
            .map(|&i| t(i))
            .collect::<Vec<_>>(),
        log.sender_reconnects
            .iter()
            .map(|&i| t(i))
            .collect::<Vec<_>>(),
        log.sends.len(),
        log.recv.len(),
        lost.len(),
        lost.first(),
        lost.last(),
        log.recv.last().map(|r| (r.0, t(r.2))),
    )
}

async fn finish(
    shared: &ChurnShared,
    handles: Vec<JoinHandle<()>>,
    poll_stop: Arc<Signal>,
    poller: JoinHandle<()>,
) {
    shared.stop_sending.set();
    shared.hard_stop.set();
    poll_stop.set();
    conns::join_all(handles, Duration::from_secs(15)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
}

struct Waited {
    /// When the last room delivered (all did).
    at: Option<Instant>,
    /// Rooms that did not deliver in time.
    missing: usize,
    /// Delivery time of each room that did.
    times: Vec<Instant>,
}

/// `<prefix>_rooms_without_probe`, and over the rooms that delivered, seconds from `base`:
/// `<prefix>_max_secs` (= every room, when none is missing) and `<prefix>_p50_secs`.
fn waited_figs(prefix: &str, w: &Waited, base: Instant) {
    fig(&format!("{prefix}_rooms_without_probe"), w.missing, "rooms");
    let mut secs: Vec<f64> = w.times.iter().map(|&t| secs_since(t, base)).collect();
    if secs.is_empty() {
        return;
    }
    secs.sort_by(f64::total_cmp);
    fig_f(&format!("{prefix}_max_secs"), secs[secs.len() - 1], "s");
    fig_f(
        &format!("{prefix}_p50_secs"),
        secs[(secs.len() - 1) / 2],
        "s",
    );
}

/// Waits until every room delivered a probe first sent at or after `x`;
/// returns the latest of those delivery times.
async fn wait_delivered(rooms: &[Arc<ChurnRoom>], x: Instant, limit: Duration) -> Waited {
    loop {
        let mut times = Vec::with_capacity(rooms.len());
        let mut missing = 0;
        for room in rooms {
            match lock(&room.log).delivered_after(x) {
                Some(t) => times.push(t),
                None => missing += 1,
            }
        }
        if missing == 0 {
            return Waited {
                at: Some(times.iter().copied().max().unwrap_or(x)),
                missing: 0,
                times,
            };
        }
        if x.elapsed() > limit {
            return Waited {
                at: None,
                missing,
                times,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Longest ack gap per room within `[a, b]`: max, p99 and p50 over rooms.
fn gap_figs(prefix: &str, rooms: &[Arc<ChurnRoom>], a: Instant, b: Instant) {
    let mut gaps: Vec<Duration> = rooms
        .iter()
        .map(|r| lock(&r.log).longest_gap(a, b))
        .collect();
    if gaps.is_empty() {
        return;
    }
    gaps.sort();
    let q = |f: f64| gaps[((gaps.len() as f64 * f).ceil() as usize).clamp(1, gaps.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    fig_f(
        &format!("{prefix}.ack_gap_max_ms"),
        ms(gaps[gaps.len() - 1]),
        "ms",
    );
    fig_f(&format!("{prefix}.ack_gap_p99_ms"), ms(q(0.99)), "ms");
    fig_f(&format!("{prefix}.ack_gap_p50_ms"), ms(q(0.5)), "ms");
}

/// Resends and reconnects within `[a, b]`.
fn event_counts(prefix: &str, rooms: &[Arc<ChurnRoom>], a: Instant, b: Instant) {
    let (mut resends, mut sr, mut rr) = (0, 0, 0);
    for room in rooms {
        let log = lock(&room.log);
        resends += count_in(&log.resends, a, b);
        sr += count_in(&log.sender_reconnects, a, b);
        rr += count_in(&log.receiver_reconnects, a, b);
    }
    fig(&format!("{prefix}.resends"), resends, "msgs");
    fig(&format!("{prefix}.sender_reconnects"), sr, "conns");
    fig(&format!("{prefix}.receiver_reconnects"), rr, "conns");
}

enum Attempt {
    Acked(u64),
    Refused(String),
    Timeout,
    Broken,
}

/// Sends one `message:send` and waits (until `deadline`) for an ack to any of `ids`
/// (earlier attempts of the same probe included).
async fn attempt(
    conn: &mut Conn,
    room_id: &str,
    content: &str,
    nonce: &str,
    ids: &mut Vec<u64>,
    deadline: Instant,
) -> Attempt {
    let id = conn.next_id();
    let frame = json!({
        "type": "message:send",
        "id": id,
        "data": { "roomId": room_id, "content": content, "nonce": nonce },
    })
    .to_string();
    if conn.ws.send(Message::text(frame)).await.is_err() {
        return Attempt::Broken;
    }
    ids.push(id);
    loop {
        let msg = match tokio::time::timeout_at(deadline.into(), conn.ws.next()).await {
            Err(_) => return Attempt::Timeout,
            Ok(msg) => msg,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Attempt::Broken,
            Some(Ok(_)) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v["type"] != "ack" || !v["id"].as_u64().is_some_and(|i| ids.contains(&i)) {
            continue;
        }
        if v["ok"] == true {
            let mid = v["data"]["message"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Attempt::Acked(mid);
        }
        return Attempt::Refused(v["error"].to_string());
    }
}

async fn churn_sender(
    nodes: Arc<Nodes>,
    room: Arc<ChurnRoom>,
    shared: Arc<ChurnShared>,
    sem: Arc<Semaphore>,
    first_node: usize,
) {
    let mut frames = Vec::new();
    let opened = {
        let _permit = sem.acquire_owned().await;
        connect_retry(
            &nodes,
            first_node,
            &room.sender_token,
            None,
            &mut frames,
            &shared.hard_stop,
        )
        .await
    };
    let Some((mut node, c)) = opened else { return };
    {
        let mut log = lock(&room.log);
        log.sender_node = node;
        log.sender_first = node;
    }
    let mut conn = Some(c);
    shared.ready.fetch_add(1, Ordering::Relaxed);
    tokio::select! {
        () = shared.start.wait() => {}
        () = shared.hard_stop.wait() => return,
    }
    let Some(&start_at) = shared.start_at.get() else {
        return;
    };
    let base = start_at + room.offset;
    let mut slot: u32 = 0;
    let mut k: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until((base + shared.interval * slot).into()) => {}
            () = shared.stop_sending.wait() => return,
        }
        if shared.stop_sending.is_set() {
            return;
        }
        let t_ns = elapsed_ns(shared.origin);
        let content = format!("t={t_ns} k={k}");
        let nonce = format!("{}-{}-{k}", shared.run_id, room.index);
        lock(&room.log).sends.push(Probe {
            first_sent: Instant::now(),
            acked: None,
        });
        let mut ids = Vec::new();
        let mut tries = 0u32;
        loop {
            if shared.hard_stop.is_set() {
                return;
            }
            if conn.is_none() {
                ids.clear();
                let next = nodes.next_alive(node);
                let Some((i, c)) = connect_retry(
                    &nodes,
                    next,
                    &room.sender_token,
                    None,
                    &mut frames,
                    &shared.hard_stop,
                )
                .await
                else {
                    return;
                };
                node = i;
                conn = Some(c);
                let mut log = lock(&room.log);
                log.sender_node = i;
                log.sender_reconnects.push(Instant::now());
            }
            let Some(c) = conn.as_mut() else { continue };
            if tries > 0 {
                lock(&room.log).resends.push(Instant::now());
            }
            tries += 1;
            let deadline = Instant::now() + shared.resend;
            match attempt(c, &room.id, &content, &nonce, &mut ids, deadline).await {
                Attempt::Acked(mid) => {
                    let now = Instant::now();
                    let mut log = lock(&room.log);
                    if let Some(p) = log.sends.get_mut(k as usize) {
                        p.acked = Some((now, mid));
                    }
                    log.acks.push(now);
                    break;
                }
                Attempt::Refused(e) => {
                    {
                        let mut log = lock(&room.log);
                        log.refusals += 1;
                        if log.first_refusal.is_none() {
                            log.first_refusal = Some(e);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Attempt::Timeout => {}
                Attempt::Broken => conn = None,
            }
        }
        k += 1;
        // Next slot in the future (a late ack skips the slots it overran).
        let behind = Instant::now().saturating_duration_since(base);
        let min_slot = (behind.as_nanos() / shared.interval.as_nanos()) as u32 + 1;
        slot = (slot + 1).max(min_slot);
    }
}

async fn churn_receiver(
    nodes: Arc<Nodes>,
    room: Arc<ChurnRoom>,
    shared: Arc<ChurnShared>,
    sem: Arc<Semaphore>,
    first_node: usize,
) {
    let mut rec = Recorder::new(shared.latency.clone());
    let mut frames = Vec::new();
    let mut last_id: Option<u64> = None;
    let join = json!({ "roomId": room.id });
    let opened = {
        let _permit = sem.acquire_owned().await;
        connect_retry(
            &nodes,
            first_node,
            &room.receiver_token,
            Some(&join),
            &mut frames,
            &shared.hard_stop,
        )
        .await
    };
    let Some((mut node, c)) = opened else { return };
    {
        let mut log = lock(&room.log);
        log.receiver_node = node;
        log.receiver_first = node;
    }
    let mut conn = Some(c);
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let mut handle = |v: &Value, last_id: &mut Option<u64>| {
        let Some((id, room_id, content)) = received_of(v) else {
            return;
        };
        if room_id != room.id {
            return;
        }
        let Some((t, k)) = parse_content(content) else {
            return;
        };
        rec.record(elapsed_ns(shared.origin).saturating_sub(t));
        *last_id = Some(id);
        lock(&room.log).recv.push((k, id, Instant::now()));
    };
    loop {
        let Some(c) = conn.as_mut() else {
            let next = nodes.next_alive(node);
            let join = match last_id {
                Some(id) => json!({ "roomId": room.id, "since": id.to_string() }),
                None => json!({ "roomId": room.id }),
            };
            let Some((i, c)) = connect_retry(
                &nodes,
                next,
                &room.receiver_token,
                Some(&join),
                &mut frames,
                &shared.hard_stop,
            )
            .await
            else {
                return;
            };
            node = i;
            {
                let mut log = lock(&room.log);
                log.receiver_node = i;
                log.receiver_reconnects.push(Instant::now());
            }
            for v in frames.drain(..) {
                handle(&v, &mut last_id);
            }
            conn = Some(c);
            continue;
        };
        tokio::select! {
            biased;
            msg = c.ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        handle(&v, &mut last_id);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => conn = None,
                Some(Ok(_)) => {}
            },
            () = shared.hard_stop.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trip() {
        assert_eq!(parse_content("t=123 k=7"), Some((123, 7)));
        assert_eq!(parse_content("t=123"), None);
        let v: Value = serde_json::from_str(
            r#"{"type":"message:received","data":{"id":"42","roomId":"9","content":"t=1 k=2"}}"#,
        )
        .expect("json");
        assert_eq!(received_of(&v), Some((42, "9", "t=1 k=2")));
    }

    #[test]
    fn longest_gap_and_first_delivery() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let log = ProbeLog {
            sends: vec![
                Probe {
                    first_sent: s(0),
                    acked: Some((s(10), 1)),
                },
                Probe {
                    first_sent: s(1000),
                    acked: Some((s(4000), 2)),
                },
            ],
            recv: vec![(0, 1, s(12)), (1, 2, s(4001))],
            acks: vec![s(10), s(4000)],
            ..ProbeLog::default()
        };
        assert_eq!(log.longest_gap(s(0), s(5000)), Duration::from_millis(3990));
        assert_eq!(
            log.longest_gap(s(4500), s(5000)),
            Duration::from_millis(500)
        );
        assert_eq!(log.delivered_after(s(500)), Some(s(4001)));
        assert_eq!(log.delivered_after(s(2000)), None);
    }
}
