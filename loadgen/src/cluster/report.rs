//! Figures: the latency part's counts, latencies, inter-node traffic and CPU; the churn
//! part's delivery waits, ack gaps, event counts and the final exactly-once check.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::churn::{ChurnRoom, ProbeLog, Waited};
use super::latency::{CATS, LatRoom, LatShared, Window, sum};
use super::nodes::Nodes;
use super::{lock, secs_since};
use crate::Args;
use crate::stats::{SharedHist, fig, fig_f, latency_figs, per_sec, snapshot};

/// Everything the latency part prints (`cluster.*`, `loadgen.cpu_util_pct`).
pub(super) fn latency_figures(
    args: &Args,
    n: usize,
    rooms: &[Arc<LatRoom>],
    shared: &LatShared,
    duration: Duration,
    w: &Window,
) {
    let elapsed = w.elapsed;
    let p = "cluster";
    fig(&format!("{p}.nodes"), args.cluster.urls.len(), "nodes");
    fig(&format!("{p}.rooms"), rooms.len(), "rooms");
    for (c, name) in CATS.iter().enumerate() {
        let count = rooms.iter().filter(|r| r.cat == c).count();
        fig(&format!("{p}.rooms_{name}"), count, "rooms");
    }
    fig_f(&format!("{p}.rate_per_room"), args.rate, "msg/s");
    fig_f(&format!("{p}.duration_secs"), duration.as_secs_f64(), "s");
    let sent = shared.sent.load(Ordering::Relaxed);
    let acked = sum(&shared.acked);
    let delivered = sum(&shared.delivered);
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
    for room in rooms {
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
        for (b, a) in w.before.iter().zip(&w.after) {
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
    for (way, bytes) in [("sent", sent_b), ("received", recv_b)] {
        if let Some(bytes) = bytes {
            fig_f(
                &format!("{p}.internode_bytes_{way}_per_sec"),
                bytes / secs,
                "B/s",
            );
        }
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
    let mut cpu_ok = !w.cpu0.nodes.is_empty();
    for (i, (a, b)) in w.cpu0.nodes.iter().zip(&w.cpu1.nodes).enumerate() {
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
    if let (Some(a), Some(b)) = (w.cpu0.own, w.cpu1.own) {
        fig_f("loadgen.cpu_util_pct", (b - a) / secs * 100.0, "%");
    }
    if let Some(e) = lock(&shared.first_error).clone() {
        eprintln!("error: first refused message:send: {e}");
    }
}

/// The exactly-once check over every room's probes (`churn.sent`, `.lost`, ...), the
/// probe latency, and a line about each of the first rooms that failed it.
pub(super) fn churn_figures(
    nodes: &Nodes,
    rooms: &[Arc<ChurnRoom>],
    latency: &SharedHist,
    started: Instant,
    events: &str,
) {
    let (mut sent, mut acked, mut lost, mut dup, mut reordered, mut mismatch) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut unacked_delivered, mut unacked, mut refusals) = (0usize, 0usize, 0u64);
    let mut first_refusal = None;
    let mut bad_rooms = Vec::new();
    let mut bad_count = 0usize;
    let mut bad_by_receiver: BTreeMap<String, usize> = Default::default();
    for room in rooms {
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
                bad_rooms.push(describe(nodes, room, &log, started));
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
    latency_figs("churn.latency", &snapshot(latency));
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

/// `<prefix>_rooms_without_probe`, and over the rooms that delivered, seconds from `base`:
/// `<prefix>_max_secs` (= every room, when none is missing) and `<prefix>_p50_secs`.
pub(super) fn waited_figs(prefix: &str, w: &Waited, base: Instant) {
    fig(&format!("{prefix}_rooms_without_probe"), w.missing, "rooms");
    let mut secs: Vec<f64> = w.times.iter().map(|&t| secs_since(t, base)).collect();
    if secs.is_empty() {
        return;
    }
    secs.sort_by(f64::total_cmp);
    let q = |f: f64| secs[((secs.len() as f64 * f).ceil() as usize).clamp(1, secs.len()) - 1];
    fig_f(&format!("{prefix}_max_secs"), secs[secs.len() - 1], "s");
    fig_f(&format!("{prefix}_p99_secs"), q(0.99), "s");
    fig_f(&format!("{prefix}_p90_secs"), q(0.90), "s");
    fig_f(
        &format!("{prefix}_p50_secs"),
        secs[(secs.len() - 1) / 2],
        "s",
    );
    // The bound: every room serving again within 5 s.
    let over = secs.iter().filter(|s| **s > 5.0).count();
    fig(&format!("{prefix}_rooms_over_5s"), over, "rooms");
}

/// Longest ack gap per room within `[a, b]`: max, p99 and p50 over rooms.
pub(super) fn gap_figs(prefix: &str, rooms: &[Arc<ChurnRoom>], a: Instant, b: Instant) {
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
pub(super) fn event_counts(prefix: &str, rooms: &[Arc<ChurnRoom>], a: Instant, b: Instant) {
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

fn count_in(times: &[Instant], a: Instant, b: Instant) -> usize {
    times.iter().filter(|&&t| t >= a && t <= b).count()
}
