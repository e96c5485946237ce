//! `cluster` scenario: its flags (`ClusterArgs`), the dispatch to its two parts and the
//! helpers they share. A VoiceFlow cluster driven through several nodes at once
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
//!
//! Files: `nodes.rs` (nodes, connections, frames, room setup), `metrics.rs` (HTTP probes,
//! `/metrics`, `/proc` CPU), `latency.rs` and `churn.rs` (the two parts), `churn_events.rs`
//! (the join and the kill), `clients.rs` (the per-room client tasks), `report.rs` (figures).

mod churn;
mod churn_events;
mod clients;
mod latency;
mod metrics;
mod nodes;
mod report;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{Args, Ctx};

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

pub async fn run(args: &Args, ctx: &Ctx) -> Result<()> {
    match args.cluster.cluster_part {
        Part::Latency => latency::latency(args, ctx).await,
        Part::Churn => churn::churn(args, ctx).await,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn secs_since(t: Instant, base: Instant) -> f64 {
    t.saturating_duration_since(base).as_secs_f64()
}

/// The REST / WebSocket timeout (`--timeout-secs`, at least 1 s).
fn timeout(args: &Args) -> Duration {
    Duration::from_secs(args.timeout_secs.max(1))
}
