//! The measured scenarios: failure detection and traffic, elasticity, partitions.

use voiceflow_wire::cluster::NodeId;

use crate::engine::{Engine, MS, Nanos, NetConfig, SEC};
use crate::kinds::Build;
use crate::rng::{Draw, derive};
use crate::rooms::{Handoff, RoomConfig, Rooms};

/// Failure detection and membership traffic of one (membership, N, loss).
#[derive(Debug, Clone)]
pub struct DetectRow {
    /// Nodes.
    pub nodes: usize,
    /// Packet loss.
    pub loss: f64,
    /// Nodes that received and judged (all of them, or a sample).
    pub observers: usize,
    /// Simulated node-hours of the false-suspicion window (of the observers).
    pub node_hours: f64,
    /// Live nodes wrongly declared down, per node-hour.
    pub false_downs: f64,
    /// Live nodes wrongly suspected (SWIM), per node-hour.
    pub false_suspicions: f64,
    /// Mean time for a live node to declare a killed node down.
    pub detect_mean: Nanos,
    /// Time until every live node did (`None`: not within the limit).
    pub detect_all: Option<Nanos>,
    /// Membership messages per node per second.
    pub msgs: f64,
    /// Membership bytes per node per second.
    pub bytes: f64,
}

fn formed<M: Build>(n: usize, capacity: usize, net: NetConfig, seed: u64) -> Engine<M> {
    let mut eng = Engine::new(capacity, net, seed);
    let all: Vec<NodeId> = (0..n as NodeId).collect();
    for id in &all {
        M::formed(&mut eng, *id, &all, seed);
    }
    eng
}

/// Runs the failure-detection scenario: a window without failures (traffic, false
/// suspicions), then one node is killed.
///
/// With `observers < n`, only nodes `0..observers` receive and judge (every node still sends
/// all its messages, which are counted): all-to-all costs O(N) per heartbeat received (the
/// node's `heard` re-checks the lease over every member), so simulating all 1,000 receivers
/// would take 2·10⁹ member visits per simulated second.
pub fn detect<M: Build>(
    n: usize,
    loss: f64,
    window: Nanos,
    observers: usize,
    seed: u64,
) -> DetectRow {
    let net = NetConfig {
        loss,
        ..NetConfig::default()
    };
    let mut eng: Engine<M> = formed(n, n, net, seed);
    let observers = observers.min(n);
    if observers < n {
        eng.receivers = Some((0..n).map(|i| i < observers).collect());
        for id in observers..n {
            M::set_passive(&mut eng, id as NodeId);
        }
    }
    let warmup = 2 * SEC;
    eng.run_until(warmup);
    let start_verdicts = eng.verdicts.len();
    let start_suspicions = eng.suspicions.len();
    for s in eng.stats.iter_mut() {
        *s = Default::default();
    }
    eng.run_until(warmup + window);
    let node_hours = observers as f64 * window as f64 / (3600.0 * SEC as f64);
    let false_downs = (eng.verdicts.len() - start_verdicts) as f64 / node_hours;
    let false_suspicions = (eng.suspicions.len() - start_suspicions) as f64 / node_hours;
    let secs = window as f64 / SEC as f64;
    let msgs = eng.stats.iter().map(|s| s.msgs).sum::<u64>() as f64 / n as f64 / secs;
    let bytes = eng.stats.iter().map(|s| s.bytes).sum::<u64>() as f64 / n as f64 / secs;

    // The victim is never an observer.
    let victim = (observers as u64
        + derive(seed, 0x400 + n as u64).below((n - observers).max(1) as u64))
    .min(n as u64 - 1) as NodeId;
    let victim = if observers < n {
        victim
    } else {
        derive(seed, 0x400 + n as u64).below(n as u64) as NodeId
    };
    let killed_at = eng.now;
    let first = eng.verdicts.len();
    eng.kill(victim);
    let limit = killed_at + 120 * SEC;
    let mut detect_all = None;
    let mut seen = vec![None; n];
    while eng.now < limit {
        let next = eng.now + 100 * MS;
        eng.run_until(next);
        for v in &eng.verdicts[first..] {
            if v.target == victim && seen[v.observer as usize].is_none() {
                seen[v.observer as usize] = Some(v.at - killed_at);
            }
        }
        let live = (0..observers).filter(|i| *i != victim as usize);
        if live.clone().all(|i| seen[i].is_some()) {
            detect_all = live.filter_map(|i| seen[i]).max();
            break;
        }
    }
    let found: Vec<Nanos> = seen.iter().flatten().copied().collect();
    let detect_mean = if found.is_empty() {
        0
    } else {
        found.iter().sum::<Nanos>() / found.len() as Nanos
    };
    DetectRow {
        nodes: n,
        observers,
        loss,
        node_hours,
        false_downs,
        false_suspicions,
        detect_mean,
        detect_all,
        msgs,
        bytes,
    }
}

/// What changes in an elasticity run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One node joins.
    Join,
    /// One node leaves gracefully (drains first).
    Leave,
    /// One node is killed.
    Kill,
    /// 10% more nodes join at once.
    Grow10,
}

impl Change {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Change::Join => "join 1",
            Change::Leave => "leave 1",
            Change::Kill => "kill 1",
            Change::Grow10 => "add 10%",
        }
    }
}

/// Rooms through one membership change.
#[derive(Debug, Clone)]
pub struct ElasticRow {
    /// The change.
    pub change: Change,
    /// Rooms that ended on another node.
    pub moved: usize,
    /// Time from the change until every room served again at its new owner.
    pub settle: Option<Nanos>,
    /// Most rooms unavailable at one moment.
    pub max_unavailable: usize,
    /// Release requests sent by acquires.
    pub releases: u64,
    /// Loads that timed out in storage's queue (retries).
    pub failed_loads: u64,
    /// Acquires that backed off.
    pub failed_acquires: u64,
    /// Rooms seen with two writers.
    pub violations: usize,
}

fn with_rooms<M: Build>(
    n: usize,
    capacity: usize,
    rooms: usize,
    handoff: Handoff,
    seed: u64,
) -> Engine<M> {
    let mut eng: Engine<M> = formed(n, capacity, NetConfig::default(), seed);
    // The cluster has been up for a while (past the catch-up after a start) when the rooms
    // are placed.
    eng.run_until(4 * SEC);
    let cfg = RoomConfig {
        handoff,
        ..RoomConfig::default()
    };
    let mut model = Rooms::new(cfg, rooms, capacity, seed);
    let owners: Vec<NodeId> = (0..n as NodeId).collect();
    model.place_all(&owners);
    eng.rooms = Some(model);
    eng.refresh_all_views();
    eng.run_until(eng.now + SEC);
    eng
}

fn views_agree<M: Build>(eng: &Engine<M>, expected: &[NodeId]) -> bool {
    eng.live()
        .iter()
        .filter_map(|id| eng.nodes[*id as usize].as_ref())
        .all(|m| m.owners() == expected)
}

/// Runs one elasticity scenario on a formed cluster of `n` nodes.
pub fn elastic<M: Build>(
    n: usize,
    rooms: usize,
    handoff: Handoff,
    change: Change,
    seed: u64,
) -> ElasticRow {
    let added = (n / 10).max(1);
    let capacity = n + added;
    let mut eng: Engine<M> = with_rooms(n, capacity, rooms, handoff, seed);
    let before: Vec<Option<NodeId>> = match eng.rooms.as_ref() {
        Some(r) => (0..r.len()).map(|i| r.runner_of(i)).collect(),
        None => Vec::new(),
    };
    let t0 = eng.now;
    if let Some(r) = eng.rooms.as_mut() {
        r.reset_marks(t0);
    }
    let victim = derive(seed, 0x500).below(n as u64) as NodeId;
    let mut expected: Vec<NodeId> = (0..n as NodeId).collect();
    let mut leaving = None;
    match change {
        Change::Join => {
            M::join(&mut eng, n as NodeId, 0, n + 1, seed);
            expected.push(n as NodeId);
        }
        Change::Grow10 => {
            for i in 0..added {
                M::join(
                    &mut eng,
                    (n + i) as NodeId,
                    (i % n) as NodeId,
                    n + added,
                    seed,
                );
                expected.push((n + i) as NodeId);
            }
        }
        Change::Kill => {
            eng.kill(victim);
            expected.retain(|e| *e != victim);
        }
        Change::Leave => {
            eng.with_node(victim, |m, now, out| m.begin_leave(now, out));
            expected.retain(|e| *e != victim);
            leaving = Some(victim);
        }
    }
    let limit = t0 + 180 * SEC;
    let mut agreed_at = None;
    while eng.now < limit {
        let next = eng.now + 50 * MS;
        eng.run_until(next);
        if let Some(l) = leaving
            && eng.rooms.as_ref().is_some_and(|r| !r.busy(l))
        {
            eng.with_node(l, |m, now, out| m.finish_leave(now, out));
            eng.run_until(eng.now + MS);
            eng.remove(l);
            leaving = None;
        }
        let agree = leaving.is_none() && views_agree(&eng, &expected);
        if std::env::var_os("SIM_DEBUG").is_some() && (eng.now - t0) % SEC < 50 * MS {
            let off: Vec<(NodeId, usize)> = eng
                .live()
                .iter()
                .filter_map(|id| eng.nodes[*id as usize].as_ref().map(|m| (*id, m.owners())))
                .filter(|(_, o)| o != &expected)
                .map(|(id, o)| (id, o.len()))
                .collect();
            eprintln!(
                "{:?} t+{:.1}s disagree: {:?}",
                change,
                (eng.now - t0) as f64 / 1e9,
                off
            );
        }
        if agree && agreed_at.is_none() {
            agreed_at = Some(eng.now);
        }
        if agree && eng.rooms.as_ref().is_some_and(Rooms::settled) {
            break;
        }
    }
    let Some(r) = eng.rooms.as_ref() else {
        unreachable!("the scenario installed rooms")
    };
    let settled = r.settled() && agreed_at.is_some();
    let moved = (0..r.len())
        .filter(|i| r.runner_of(*i) != before[*i])
        .count();
    let settle = settled.then(|| r.available_since.max(agreed_at.unwrap_or(0)).max(t0) - t0);
    ElasticRow {
        change,
        moved,
        settle,
        max_unavailable: r.max_unavailable,
        releases: r.stats.releases,
        failed_loads: r.stats.failed_loads,
        failed_acquires: r.stats.failed_acquires,
        violations: r.violations.len(),
    }
}

/// A 60/40 partition, healed after a minute.
#[derive(Debug, Clone)]
pub struct PartitionRow {
    /// Nodes.
    pub nodes: usize,
    /// Time until the minority ran no room (`None`: never, within the minute).
    pub minority_stopped: Option<Nanos>,
    /// Rooms the minority still ran when the partition healed.
    pub minority_rooms_at_heal: usize,
    /// Time until every room ran on the majority again.
    pub majority_serves_all: Option<Nanos>,
    /// Most rooms unavailable at once.
    pub max_unavailable: usize,
    /// Whether every room ran exactly once 60 s after the heal.
    pub settled_after_heal: bool,
    /// Rooms seen with two writers while split.
    pub violations: usize,
    /// Rooms seen with two writers after the heal.
    pub violations_after_heal: usize,
}

/// Runs the partition scenario.
pub fn partition<M: Build>(n: usize, rooms: usize, handoff: Handoff, seed: u64) -> PartitionRow {
    let mut eng: Engine<M> = with_rooms(n, n, rooms, handoff, seed);
    let t0 = eng.now;
    if let Some(r) = eng.rooms.as_mut() {
        r.reset_marks(t0);
    }
    // The minority: 40% of the nodes, picked from the seed.
    let mut order: Vec<NodeId> = (0..n as NodeId).collect();
    let mut rng = derive(seed, 0x600);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let minority: Vec<NodeId> = order[..n * 2 / 5].to_vec();
    let mut mask = vec![false; n];
    for m in &minority {
        eng.group[*m as usize] = 1;
        mask[*m as usize] = true;
    }
    let (mut minority_stopped, mut majority_serves_all) = (None, None);
    while eng.now < t0 + 60 * SEC {
        eng.run_until(eng.now + 100 * MS);
        let Some(r) = eng.rooms.as_ref() else { break };
        let on_minority = r.running_on_any(&mask);
        if on_minority == 0 && minority_stopped.is_none() {
            minority_stopped = Some(eng.now - t0);
        } else if on_minority > 0 {
            minority_stopped = None;
        }
        if r.unavailable == 0 && on_minority == 0 && majority_serves_all.is_none() {
            majority_serves_all = Some(eng.now - t0);
        }
    }
    let healed_at = eng.now;
    let minority_rooms_at_heal = eng.rooms.as_ref().map_or(0, |r| r.running_on_any(&mask));
    for g in eng.group.iter_mut() {
        *g = 0;
    }
    eng.run_until(eng.now + 60 * SEC);
    let Some(r) = eng.rooms.as_ref() else {
        unreachable!("the scenario installed rooms")
    };
    if std::env::var_os("SIM_DEBUG").is_some() {
        for v in &r.violations {
            eprintln!(
                "violation at {:.3}s (split at {:.3}s, heal at {:.3}s): room {} started on {} while {} ran it; minority {:?}",
                v.at as f64 / 1e9,
                t0 as f64 / 1e9,
                healed_at as f64 / 1e9,
                v.room,
                v.started,
                v.other,
                minority.contains(&v.other)
            );
        }
    }
    let Some(r) = eng.rooms.as_ref() else {
        unreachable!("the scenario installed rooms")
    };
    PartitionRow {
        nodes: n,
        minority_stopped,
        minority_rooms_at_heal,
        majority_serves_all,
        max_unavailable: r.max_unavailable,
        settled_after_heal: r.settled(),
        violations: r.violations.iter().filter(|v| v.at < healed_at).count(),
        violations_after_heal: r.violations.iter().filter(|v| v.at >= healed_at).count(),
    }
}
