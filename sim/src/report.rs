//! Runs every scenario and prints the tables.

use std::io::Write;

use crate::all_to_all::AllToAll;
use crate::engine::{Nanos, SEC};
use crate::kinds::{Build, Kind};
use crate::placement::{Ranking, placement};
use crate::rooms::Handoff;
use crate::scenarios::{Change, DetectRow, ElasticRow, PartitionRow, detect, elastic, partition};
use crate::swim::SwimNode;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest cluster (the sizes are 10, 100, 1,000 up to this, and this).
    pub nodes: usize,
    /// Rooms.
    pub rooms: usize,
    /// Seed.
    pub seed: u64,
    /// Bounded hand-off: starts at once per node.
    pub handoff_batch: usize,
    /// Node-hours per failure-detection row.
    pub node_hours: f64,
    /// Most (messages received × N) per failure-detection window (caps the windows at
    /// large N).
    pub max_work: f64,
    /// Cluster size of the elasticity and partition runs (capped at `nodes`).
    pub elastic_nodes: usize,
    /// Above this many membership messages per second in the cluster, only `observers`
    /// nodes receive and judge in the failure-detection rows.
    pub max_receive_rate: f64,
    /// See `max_receive_rate`.
    pub observers: usize,
    /// Only these tables (`detect`, `placement`, `elastic`, `partition`); empty: all.
    pub only: Vec<String>,
    /// Cluster sizes of the membership tables instead of 10, 100, 1,000 (up to `nodes`).
    pub sizes: Vec<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 1000,
            rooms: 100_000,
            seed: 7,
            handoff_batch: 64,
            node_hours: 10.0,
            max_work: 1e9,
            elastic_nodes: 100,
            max_receive_rate: 50_000.0,
            observers: 50,
            only: Vec::new(),
            sizes: Vec::new(),
        }
    }
}

impl Options {
    fn wants(&self, table: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == table)
    }

    /// The cluster sizes of the membership tables.
    pub fn sizes(&self) -> Vec<usize> {
        if !self.sizes.is_empty() {
            return self.sizes.clone();
        }
        let mut sizes: Vec<usize> = [10, 100, 1000]
            .into_iter()
            .filter(|s| *s <= self.nodes)
            .collect();
        if !sizes.contains(&self.nodes) {
            sizes.push(self.nodes);
        }
        sizes
    }
}

fn secs(t: Nanos) -> String {
    format!("{:.2} s", t as f64 / SEC as f64)
}

fn opt_secs(t: Option<Nanos>) -> String {
    t.map_or_else(|| "never".to_string(), secs)
}

fn window<M: Build>(opts: &Options, n: usize, observers: usize) -> Nanos {
    let by_hours = opts.node_hours * 3600.0 / observers as f64;
    // Receiving a membership message costs O(N) in both memberships.
    let by_budget = opts.max_work / (M::msgs_per_node_sec(n) * observers as f64 * n as f64);
    let s = by_hours.min(by_budget).clamp(2.0, 3600.0);
    (s * SEC as f64) as Nanos
}

fn detect_rows<M: Build>(opts: &Options, out: &mut impl Write, kind: Kind) -> Vec<DetectRow> {
    let mut rows = Vec::new();
    for n in opts.sizes() {
        for loss in [0.01, 0.05] {
            let started = std::time::Instant::now();
            let observers = if M::msgs_per_node_sec(n) * n as f64 > opts.max_receive_rate {
                opts.observers
            } else {
                n
            };
            let row = detect::<M>(
                n,
                loss,
                window::<M>(opts, n, observers),
                observers,
                opts.seed,
            );
            // Wall time goes to stderr: stdout stays identical for the same seed.
            eprintln!(
                "{} N={n} loss={loss}: {:.1?}",
                kind.name(),
                started.elapsed()
            );
            let _ = writeln!(
                out,
                "| {:<10} | {:>5} | {:>5} | {:>3.0}% | {:>9} | {:>9} | {:>9.1} | {:>9.2} | {:>11.2} | {:>9.1} | {:>12.0} |",
                kind.name(),
                n,
                row.observers,
                row.loss * 100.0,
                secs(row.detect_mean),
                opt_secs(row.detect_all),
                row.node_hours,
                row.false_downs,
                row.false_suspicions,
                row.msgs,
                row.bytes,
            );
            rows.push(row);
        }
    }
    rows
}

fn elastic_rows<M: Build>(
    opts: &Options,
    out: &mut impl Write,
    kind: Kind,
    handoff: Handoff,
) -> Vec<ElasticRow> {
    let n = opts.elastic_nodes.min(opts.nodes);
    let mut rows = Vec::new();
    for change in [Change::Join, Change::Leave, Change::Kill, Change::Grow10] {
        let row = elastic::<M>(n, opts.rooms, handoff, change, opts.seed);
        let _ = writeln!(
            out,
            "| {:<10} | {:<12} | {:<8} | {:>6} | {:>9} | {:>11} | {:>10} | {:>7} | {:>9} | {:>10} |",
            kind.name(),
            handoff_name(handoff),
            change.name(),
            row.moved,
            opt_secs(row.settle),
            row.max_unavailable,
            row.releases,
            row.failed_loads,
            row.failed_acquires,
            row.violations,
        );
        rows.push(row);
    }
    rows
}

fn handoff_name(h: Handoff) -> String {
    match h {
        Handoff::OnDemand => "on demand".to_string(),
        Handoff::Bounded(b) => format!("bounded {b}"),
    }
}

fn partition_row<M: Build>(
    opts: &Options,
    out: &mut impl Write,
    kind: Kind,
    handoff: Handoff,
) -> PartitionRow {
    let n = opts.elastic_nodes.min(opts.nodes);
    let row = partition::<M>(n, opts.rooms, handoff, opts.seed);
    let _ = writeln!(
        out,
        "| {:<10} | {:<12} | {:>5} | {:>16} | {:>14} | {:>16} | {:>11} | {:>13} | {:>10} | {:>10} |",
        kind.name(),
        handoff_name(handoff),
        row.nodes,
        opt_secs(row.minority_stopped),
        row.minority_rooms_at_heal,
        opt_secs(row.majority_serves_all),
        row.max_unavailable,
        row.settled_after_heal,
        row.violations,
        row.violations_after_heal,
    );
    row
}

/// Every figure of one run (for tests' assertions).
#[derive(Debug, Default)]
pub struct Figures {
    /// Failure detection and traffic, all-to-all then SWIM.
    pub detect: Vec<(Kind, DetectRow)>,
    /// Elasticity rows.
    pub elastic: Vec<(Kind, Handoff, ElasticRow)>,
    /// Partition rows.
    pub partition: Vec<(Kind, Handoff, PartitionRow)>,
}

/// Runs everything, printing the tables to `out`.
pub fn run(opts: &Options, out: &mut impl Write) -> Figures {
    let mut figures = Figures::default();
    let _ = writeln!(
        out,
        "VoiceFlow cluster simulation: seed {}, up to {} nodes, {} rooms",
        opts.seed, opts.nodes, opts.rooms
    );
    if opts.wants("detect") {
        detect_table(opts, out, &mut figures);
    }
    if opts.wants("placement") {
        placement_table(opts, out);
    }
    if opts.wants("elastic") {
        elastic_table(opts, out, &mut figures);
    }
    if opts.wants("partition") {
        partition_table(opts, out, &mut figures);
    }
    figures
}

fn detect_table(opts: &Options, out: &mut impl Write, figures: &mut Figures) {
    let _ = writeln!(
        out,
        "\n## Failure detection and membership traffic (one node killed; false verdicts over a window without failures)\n"
    );
    let _ = writeln!(
        out,
        "| membership |     N | judges | loss | detect mean | detect all | node-hours | false downs/node-h | false suspicions/node-h | msgs/node/s | bytes/node/s |"
    );
    let _ = writeln!(
        out,
        "|------------|------:|------:|-----:|----------:|----------:|----------:|----------:|------------:|----------:|-------------:|"
    );
    for row in detect_rows::<AllToAll>(opts, out, Kind::AllToAll) {
        figures.detect.push((Kind::AllToAll, row));
    }
    for row in detect_rows::<SwimNode>(opts, out, Kind::Swim) {
        figures.detect.push((Kind::Swim, row));
    }
}

fn placement_table(opts: &Options, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "\n## Placement of {} rooms (rendezvous hashing; ideal moved fraction 1/N)\n",
        opts.rooms
    );
    let _ = writeln!(
        out,
        "|     N | moved on join | moved on leave |    1/N | only to/from the changed node | max/mean | min/mean |"
    );
    let _ = writeln!(
        out,
        "|------:|--------------:|---------------:|-------:|:--:|---------:|---------:|"
    );
    let sizes = opts.sizes();
    let biggest = sizes.iter().copied().max().unwrap_or(1);
    let ranking = Ranking::new(opts.rooms, biggest + 1, opts.seed);
    for n in sizes {
        let row = placement(&ranking, n, opts.seed);
        let _ = writeln!(
            out,
            "| {:>5} | {:>12.4}% | {:>13.4}% | {:>5.3}% | {} | {:>8.3} | {:>8.3} |",
            n,
            row.moved_join * 100.0,
            row.moved_leave * 100.0,
            100.0 / n as f64,
            if row.minimal { "yes" } else { "NO" },
            row.max_over_mean,
            row.min_over_mean,
        );
    }
}

fn elastic_table(opts: &Options, out: &mut impl Write, figures: &mut Figures) {
    let n = opts.elastic_nodes.min(opts.nodes);
    let _ = writeln!(
        out,
        "\n## Elasticity: {} nodes, {} busy rooms (a request per room per second)\n",
        n, opts.rooms
    );
    let _ = writeln!(
        out,
        "| membership | hand-off     | change   |  moved | all serve | max unavailable | releases | load timeouts | backed off | two writers |"
    );
    let _ = writeln!(
        out,
        "|------------|--------------|----------|-------:|----------:|------------:|-----------:|--------:|----------:|-----------:|"
    );
    for handoff in [Handoff::OnDemand, Handoff::Bounded(opts.handoff_batch)] {
        for row in elastic_rows::<AllToAll>(opts, out, Kind::AllToAll, handoff) {
            figures.elastic.push((Kind::AllToAll, handoff, row));
        }
        for row in elastic_rows::<SwimNode>(opts, out, Kind::Swim, handoff) {
            figures.elastic.push((Kind::Swim, handoff, row));
        }
    }
}

fn partition_table(opts: &Options, out: &mut impl Write, figures: &mut Figures) {
    let n = opts.elastic_nodes.min(opts.nodes);
    let _ = writeln!(
        out,
        "\n## 60/40 partition for 60 s, then healed ({} nodes, {} rooms)\n",
        n, opts.rooms
    );
    let _ = writeln!(
        out,
        "| membership | hand-off     |     N | minority stopped | minority rooms at heal | majority serves all | max unavailable | settled after heal | two writers (split) | two writers (heal) |"
    );
    let _ = writeln!(
        out,
        "|------------|--------------|------:|-----------------:|---------------:|-----------------:|------------:|:-------------:|-----------:|-----------:|"
    );
    for handoff in [Handoff::OnDemand, Handoff::Bounded(opts.handoff_batch)] {
        let row = partition_row::<AllToAll>(opts, out, Kind::AllToAll, handoff);
        figures.partition.push((Kind::AllToAll, handoff, row));
        let row = partition_row::<SwimNode>(opts, out, Kind::Swim, handoff);
        figures.partition.push((Kind::Swim, handoff, row));
    }
}
