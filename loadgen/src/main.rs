//! `voiceflow-loadgen`: a load generator for one VoiceFlow node.
//!
//! It drives the node's public protocol only (REST under `/api/v1`, JSON WebSocket at
//! `/ws`), against the `--url` given, which must resolve to a loopback address.
//! Setup (user registration, room creation, REST joins) is never timed. Every figure is
//! printed on stdout as one line `name: value unit`; progress and errors go to stderr.
//!
//! Scenarios (`--scenario`):
//!
//! * `fanout`: one room (maxUsers 500) with `--users` (500) members, each holding
//!   `--sessions-per-user` (2) WebSocket sessions joined to the room (1,000 receiver
//!   connections). One extra sender session (a third session of the room owner) sends
//!   `message:send` with at most `--window` (64) unacknowledged messages in flight for
//!   `--duration` (10) seconds. Every message content is `t=<nanoseconds since the
//!   generator's start>`, so receivers compute send-to-receive latency. All receivers
//!   count `message:received` frames; `--latency-receivers` (50) evenly spaced receivers
//!   record latency (0 = all). Reports delivered frames per second (counted at the
//!   receivers, the sender's own copies excluded), sent/acked counts, delivery latency
//!   and send-to-ack latency.
//! * `rooms`: `--rooms` (1,000) rooms with `--members` (10) members each. There are
//!   `--users` (default: as many as rooms) users; member k of room r is user (r+k) mod
//!   users, so with the defaults each user is a member of 10 rooms and holds ONE
//!   WebSocket connection joined to all 10 of its rooms (1,000 connections, not 10,000,
//!   which keeps setup short). The owner of room r (user r mod users) sends `--rate` (1)
//!   messages per second to it, the sends of all rooms spread evenly over each second
//!   (an open-loop schedule, no bursts), for `--duration` (30) seconds. Latency
//!   percentiles cover the whole run; no warm-up is discarded.
//! * `connect`: `--connections` (10,000) WebSocket connects, each followed by the
//!   `hello` frame and a `room:join` ack, with `--concurrency` (256) in flight. `--users`
//!   (20) users are each members of all `--rooms` (20) rooms, so connection i uses user
//!   i mod users and room (i / users) mod rooms (500 connections per user and per room;
//!   room membership counts each user once). Reports connect+join per second and its
//!   latency, then memory per idle connection.
//! * `cluster`: several nodes of a cluster (`--urls`); see `cluster/mod.rs`. `--cluster-part
//!   latency`: same-entry-node vs different-entry-nodes delivery latency, inter-node
//!   bytes and deliveries per node CPU-second; `--cluster-part churn`: 1,000 rooms probed
//!   while `--join-command` adds a node and `--kill-command` kills one (rebalancing and
//!   recovery times, lost/duplicated messages).
//!
//! With `--server-pid`, the node's VmRSS (from `/proc/<pid>/status`) is read before the
//! first WebSocket connection and again after all connections are established, joined
//! and idle for `--idle-secs`; `(after - before) / connections` is reported as
//! `server.rss_per_conn_kib`. Server and generator CPU use over the measured phase are
//! reported from `/proc/<pid>/stat`.
//!
//! Runtime: by default a current-thread tokio runtime (`--threads 1`), because the
//! generator is meant to run pinned to one core; a single-threaded reactor avoids
//! cross-thread wake-ups and cache-line traffic. `--threads N` (N > 1) uses a
//! multi-threaded runtime instead. Received `message:received` frames are recognised by
//! a byte-prefix check (or a SIMD search for `"type":"message:received"` when the node
//! orders fields differently) and the `t=` digits are found by a byte search, without
//! JSON parsing; other frames (acks, hello, presence) are parsed with serde_json.
//!
//! Every wait is bounded (`--timeout-secs` per request/connect, `--drain-secs` after
//! sending, `--max-runtime-secs` for the whole run), so the program always exits by
//! itself.

mod cluster;
mod community;
mod connect;
mod conns;
mod fanout;
mod rest;
mod rooms;
mod stats;
mod ws;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

/// Which load pattern to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One 500-member room, 1,000 receiver sessions, one windowed sender.
    Fanout,
    /// 1,000 rooms x 10 members, 1 message/s per room, one connection per user.
    Rooms,
    /// 10,000 WebSocket connect + room:join, then memory per idle connection.
    Connect,
    /// Several cluster nodes (--urls): cross-node latency, or a join and a kill under load.
    Cluster,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Rooms => "rooms",
            Scenario::Connect => "connect",
            Scenario::Cluster => "cluster",
        }
    }
}

/// Which of a session's `room:join`s ask for the member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JoinMembers {
    /// Only the first (the web client's way: the open room's list comes with its join).
    First,
    /// Every join (what clients before `members` did).
    All,
    /// None.
    None,
}

/// Who is a member of which room in `connect` and `rooms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// The original shapes: few users, many sessions each, every session in few rooms.
    Friendly,
    /// Users in many rooms with several sessions each; most joins are a user's first.
    Community,
}

/// Command-line flags. Flags that only matter to some scenarios say so; `Option`
/// flags take a per-scenario default.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "voiceflow-loadgen",
    version,
    about = "Load generator for a VoiceFlow node (loopback only)",
    long_about = "Load generator for a VoiceFlow node (loopback only).\n\n\
fanout:  1 room, --users (500) x --sessions-per-user (2) receiver sessions, 1 sender with \
--window (64) unacked messages, --duration (10) s.\n\
rooms:   --rooms (1000) rooms x --members (10); --users defaults to --rooms and each user \
has ONE connection joined to all its rooms (1000 connections, each in 10 rooms); each \
room gets --rate (1) msg/s spread evenly in time, --duration (30) s, latency over the \
whole run and over the messages sent after --warmup (5) s.\n\
connect: --connections (10000) connect + room:join with --concurrency (256); --users (20) \
users, each a member of all --rooms (20) rooms; then RSS per idle connection.\n\
--shape community (connect, rooms): --users (200) each a member of --rooms-per-user (50) of \
--rooms (connect 100, rooms 1000) rooms with --sessions-per-user (50) sessions, each joining \
--joins-per-session of the user's rooms (most joins a user's first); --size-skew varies room sizes.\n\n\
Output: one line per figure, `name: value unit`. Runs on a current-thread runtime unless \
--threads > 1."
)]
pub struct Args {
    /// Base URL of the node (http only, must resolve to a loopback address).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// Scenario to run.
    #[arg(long, value_enum)]
    pub scenario: Scenario,

    /// PID of the node process, to report its RSS and CPU use from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Sending phase length in seconds [default: fanout 10, rooms 30; unused by connect].
    #[arg(long)]
    pub duration: Option<u64>,

    /// rooms: seconds from the start of sending after which deliveries also count in the
    /// `rooms.latency_after_warmup` figures (messages sent from then on).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,

    /// Runtime threads: 1 = current-thread runtime, N > 1 = multi-threaded runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Users to register [default: fanout 500, rooms = --rooms, connect 20].
    #[arg(long)]
    pub users: Option<usize>,

    /// Rooms to create [default: rooms 1000, connect 20; fanout always uses 1].
    #[arg(long)]
    pub rooms: Option<usize>,

    /// Membership shape of `connect` and `rooms`: `friendly` (the original shapes) or
    /// `community` (users in many rooms with many sessions; see community.rs).
    #[arg(long, value_enum, default_value_t = Shape::Friendly)]
    pub shape: Shape,

    /// fanout: WebSocket sessions per user joined to the room [default 2]; community shape:
    /// sessions per user [default 50].
    #[arg(long)]
    pub sessions_per_user: Option<usize>,

    /// community shape: rooms each user is a member of.
    #[arg(long, default_value_t = 50)]
    pub rooms_per_user: usize,

    /// community shape: rooms each session joins [default: rooms-per-user / sessions-per-user,
    /// rounded up, so every membership is joined and most joins are a user's first].
    #[arg(long)]
    pub joins_per_session: Option<usize>,

    /// community shape: 0 = rooms of equal size; s > 0 = room r's size is proportional to
    /// 1/(r+1)^s (a few large rooms, many small ones), clamped to 500.
    #[arg(long, default_value_t = 0.0)]
    pub size_skew: f64,

    /// fanout: maximum unacknowledged messages in flight from the sender.
    #[arg(long, default_value_t = 64)]
    pub window: usize,

    /// fanout: receivers recording latency, evenly spaced (0 = every receiver).
    #[arg(long, default_value_t = 50)]
    pub latency_receivers: usize,

    /// fanout/rooms: pad message content to at least this many bytes.
    #[arg(long, default_value_t = 0)]
    pub content_bytes: usize,

    /// rooms: members per room (each member user has one connection joined to it).
    #[arg(long, default_value_t = 10)]
    pub members: usize,

    /// fanout: messages per second from the sender, paced evenly (the window still caps what is
    /// unacknowledged); 0 = as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    pub send_rate: f64,

    /// rooms: messages per second sent to each room.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// connect: number of WebSocket connections (connect + hello + room:join).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,

    /// Concurrent WebSocket connection attempts (connect scenario and all setups).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,

    /// Which `room:join`s of a session ask for the member list in their ack.
    #[arg(long, value_enum, default_value_t = JoinMembers::First)]
    pub join_members: JoinMembers,

    /// WebSocket connections come from this many loopback addresses (127.0.0.1, .2, …) in
    /// turn, as real clients come from many: the node caps one address at half its open-file
    /// limit. 1 = all from 127.0.0.1.
    #[arg(long, default_value_t = 8)]
    pub source_addrs: usize,

    /// Concurrent registrations (argon2 makes each one cost the server 20-50 ms).
    #[arg(long, default_value_t = 16)]
    pub register_concurrency: usize,

    /// Concurrent REST calls other than registration (room create/join).
    #[arg(long, default_value_t = 64)]
    pub rest_concurrency: usize,

    /// Seconds to let connections sit idle before reading the server's RSS.
    #[arg(long, default_value_t = 2)]
    pub idle_secs: u64,

    /// Seconds to wait after sending stops for outstanding acks and deliveries.
    #[arg(long, default_value_t = 10)]
    pub drain_secs: u64,

    /// connect: after the idle phase, SIGTERM the node (`--server-pid`) and time its drain:
    /// until every client got its close frame, and until the process exited.
    #[arg(long)]
    pub then_stop_node: bool,

    /// Timeout in seconds for each REST call, WebSocket connect and ack.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,

    /// Hard limit on the whole run, setup included (access tokens last 15 minutes).
    #[arg(long, default_value_t = 840)]
    pub max_runtime_secs: u64,

    #[command(flatten)]
    pub cluster: cluster::ClusterArgs,
}

/// Shared per-run context.
pub struct Ctx {
    pub api: rest::Api,
    pub target: ws::WsTarget,
    /// Origin of all `t=` timestamps embedded in message contents.
    pub origin: Instant,
    /// Prefix unique to this run for user names, e-mails and room names.
    pub run_id: String,
}

impl Ctx {
    /// Nanoseconds since [`Ctx::origin`].
    pub fn now_ns(&self) -> u64 {
        stats::elapsed_ns(self.origin)
    }
}

fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("lg");
    for _ in 0..6 {
        s.push(char::from(alphabet[(x % 36) as usize]));
        x /= 36;
    }
    s
}

/// Raises the soft RLIMIT_NOFILE towards the hard limit and warns when it stays below
/// what the scenario needs.
fn raise_nofile(needed: u64) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => eprintln!(
            "warning: open-files limit is {limit} but about {needed} sockets are needed; \
             connections will fail with EMFILE (raise it with `ulimit -n 65536`)"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not raise the open-files limit: {e}"),
    }
}

fn sockets_needed(args: &Args) -> u64 {
    let conns = match args.scenario {
        Scenario::Fanout => args.users.unwrap_or(500) * args.sessions_per_user.unwrap_or(2) + 1,
        Scenario::Rooms | Scenario::Connect if args.shape == Shape::Community => {
            args.users.unwrap_or(200) * args.sessions_per_user.unwrap_or(50)
        }
        Scenario::Rooms => args.users.unwrap_or(args.rooms.unwrap_or(1000)),
        Scenario::Connect => args.connections,
        Scenario::Cluster => 2 * args.rooms.unwrap_or(1000),
    };
    (conns + args.rest_concurrency.max(args.register_concurrency) + 64) as u64
}

async fn run(args: &Args) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let target = ws::WsTarget::resolve(&args.url, timeout)
        .await
        .with_context(|| format!("resolving --url {}", args.url))?
        .with_source_addrs(args.source_addrs)
        .with_join_members(args.join_members);
    let api = rest::Api::new(&args.url, timeout)?;
    let ctx = Ctx {
        api,
        target,
        origin: Instant::now(),
        run_id: run_id(),
    };
    let against = match args.scenario {
        Scenario::Cluster => args.cluster.urls.join(","),
        _ => args.url.clone(),
    };
    eprintln!(
        "voiceflow-loadgen: scenario {} against {} (run id {})",
        args.scenario.name(),
        against,
        ctx.run_id
    );
    match args.scenario {
        Scenario::Fanout => fanout::run(args, &ctx).await,
        Scenario::Rooms => rooms::run(args, &ctx).await,
        Scenario::Connect => connect::run(args, &ctx).await,
        Scenario::Cluster => cluster::run(args, &ctx).await,
    }
}

fn validate(args: &Args) -> Result<()> {
    if args.concurrency == 0 || args.register_concurrency == 0 || args.rest_concurrency == 0 {
        bail!("concurrency flags must be at least 1");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--rate must be in (0, 1000]");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = validate(&args) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    raise_nofile(sockets_needed(&args));
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limit = Duration::from_secs(args.max_runtime_secs.max(1));
    let outcome = runtime.block_on(async { tokio::time::timeout(limit, run(&args)).await });
    // Spawned connection tasks still alive (after an error) are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "error: run exceeded --max-runtime-secs {}",
                args.max_runtime_secs
            );
            ExitCode::FAILURE
        }
    }
}
