//! The fault soak behind `scripts/chaos`: a 4-node cluster on the CQL test server under steady
//! load (senders resend with their nonces until acknowledged; receivers follow each room from
//! any live node) while random faults are applied for a bounded time: `kill -9` and restart,
//! SIGSTOP/SIGCONT, a partition (fault injection), a drain and restart, a live add (the added
//! node is drained again), a CQL server restart, and delayed CQL writes (node 4 reaches the
//! database through a holding bridge; one of its log appends is held until its rooms were
//! taken over while it is paused).
//!
//! Faults come in rounds. Each round's first fault is the next of a shuffled deck of all
//! kinds (every kind comes up once per seven rounds); about half the rounds add a second
//! fault on another node (or the CQL server) that starts at a random offset while the first
//! is still on — a partition while another node is paused, a kill during a CQL server
//! restart, a drain while delayed writes land. Durations are random too. Everything random
//! comes from one seed, printed at the start and settable with `CHAOS_SEED`, so a failing
//! schedule replays. After each round it waits until every room acknowledged a message after
//! the round's faults were lifted (the recovery time, bounded by `CHAOS_RECOVERY_BOUND_SECS`). At the end every room's history (REST pages) is checked against
//! what was acknowledged: lost, duplicated and reordered must all be 0. Prints a table.
//!
//! `CHAOS_SECS` (default 100: the CI run) bounds the fault phase; `CHAOS_ROOMS` (12),
//! `CHAOS_SEED` (the clock), `CHAOS_OVERLAP` (percent of rounds with a second fault: 0 here, so the CI run applies one
//! fault at a time; `scripts/chaos` defaults it to 50). Needs `VOICEFLOW_TEST_CQL`; the CQL server restart also needs
//! `VOICEFLOW_TEST_CQL_DIR` (else that fault is left out, loudly).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::cluster::TestCluster;
use common::load::{self as load, Load, RoomLog};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use voiceflow_schema::cql::bridge::hold::{Hold, run_holding};
use voiceflow_schema::cql::testing::contact_points_from_env;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (xorshift), so a seed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }

    /// A duration in [lo, hi) milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    Pause,
    Partition,
    Drain,
    Add,
    CqlRestart,
    DelayedWrites,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::Kill,
        Fault::Pause,
        Fault::Partition,
        Fault::Drain,
        Fault::Add,
        Fault::CqlRestart,
        Fault::DelayedWrites,
    ];

    /// The nodes it may hit. Node 1 stays up (the load's first entry and a seed); pauses hit
    /// nodes without clients (a client of a paused node would only wait); delayed writes
    /// need node 4's holding bridge; 0 is the CQL server; `next` the node an add starts.
    fn targets(self, next: usize) -> Vec<usize> {
        match self {
            Fault::Pause => vec![3, 4],
            Fault::DelayedWrites => vec![4],
            Fault::Kill | Fault::Partition | Fault::Drain => vec![2, 3, 4],
            Fault::Add => vec![next],
            Fault::CqlRestart => vec![0],
        }
    }
}

/// One fault of a round: what, where, when after the round's start, for how long.
#[derive(Debug, Clone, Copy)]
struct Planned {
    fault: Fault,
    node: usize,
    offset: Duration,
    hold: Duration,
}

/// One round as applied.
struct Round {
    at: Duration,
    faults: Vec<Planned>,
    recovery: Duration,
}

/// What the faults share.
struct Env {
    cluster: tokio::sync::Mutex<TestCluster>,
    hold: Hold,
    logs: Vec<Arc<parking_lot::Mutex<RoomLog>>>,
    bound: Duration,
    cql_dir: Option<String>,
    /// Nodes stopped with SIGSTOP now (HTTP to them would hang).
    paused: parking_lot::Mutex<HashSet<usize>>,
    /// The peers each node should be cut off from now: a node paused while a partition
    /// around it ended missed the request that healed it, and gets it when it resumes.
    blocks: parking_lot::Mutex<HashMap<usize, Vec<usize>>>,
}

fn cassandra(command: &str, dir: &str) -> Result<()> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cassandra");
    let status = Command::new("bash")
        .arg(script)
        .arg(command)
        .arg(dir)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "scripts/cassandra {command}: {status}");
    Ok(())
}

/// Waits until every room acknowledged a message after `since`; the longest wait. Fails at
/// `deadline`.
async fn recovered(
    logs: &[Arc<parking_lot::Mutex<RoomLog>>],
    since: Instant,
    deadline: Instant,
) -> Result<Duration> {
    loop {
        let mut worst = Some(Duration::ZERO);
        for log in logs {
            let log = log.lock();
            match log
                .ack_times
                .iter()
                .rev()
                .take_while(|t| **t > since)
                .last()
            {
                Some(t) => worst = worst.map(|w| w.max(t.duration_since(since))),
                None => worst = None,
            }
        }
        if let Some(worst) = worst {
            return Ok(worst);
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> = logs
                .iter()
                .enumerate()
                .filter_map(|(i, log)| {
                    let log = log.lock();
                    let last = log.ack_times.last().copied();
                    match last {
                        Some(t) if t > since => None,
                        Some(t) => Some(format!("room {i}: last ack {:?} before", since - t)),
                        None => Some(format!("room {i}: never acked")),
                    }
                })
                .collect();
            bail!(
                "some room did not serve again within {:?} of a fault: {stuck:?}",
                deadline.duration_since(since)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `done` holds.
async fn until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

impl Env {
    fn pid(cluster: &TestCluster, node: usize) -> Result<Pid> {
        Ok(Pid::from_raw(i32::try_from(cluster.node(node).pid())?))
    }

    /// Sets node `node`'s block list, unless it is paused (its HTTP would hang; the other
    /// side's block cuts the link anyway); a node that does not answer is skipped.
    async fn block(&self, node: usize, peers: &[usize]) -> Result<()> {
        self.blocks.lock().insert(node, peers.to_vec());
        if self.paused.lock().contains(&node) {
            return Ok(());
        }
        let cluster = self.cluster.lock().await;
        if cluster.nodes[node - 1].is_none() {
            return Ok(());
        }
        match tokio::time::timeout(Duration::from_secs(3), cluster.block(node, peers)).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Node `node` runs again after SIGCONT: it gets the cut it should have now (a partition
    /// that ended while it was stopped was never lifted on it).
    async fn resumed(&self, node: usize) -> Result<()> {
        self.paused.lock().remove(&node);
        let wanted = self.blocks.lock().get(&node).cloned().unwrap_or_default();
        self.block(node, &wanted).await
    }

    /// Starts node `node` again; while the CQL server is down (a restart overlapping this
    /// fault) a node cannot start, so it is tried again until the bound.
    async fn restart(&self, node: usize) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.cluster.lock().await.restart(node).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() < self.bound => {
                    eprintln!("chaos: node {node} did not start ({e:#}); again in 1 s");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Applies one fault and ends it; returns when the cluster may recover from it (the CQL
    /// server's return for its restart).
    async fn apply(&self, p: Planned) -> Result<Option<Instant>> {
        let started = Instant::now();
        match p.fault {
            Fault::Kill => {
                self.cluster.lock().await.kill9(p.node);
                // Its rooms move before it comes back (bounded: another fault of the round
                // may keep the majority away meanwhile).
                let _ = recovered(&self.logs, started, started + self.bound).await;
                tokio::time::sleep(p.hold.saturating_sub(started.elapsed())).await;
                self.restart(p.node).await?;
            }
            Fault::Pause => {
                let pid = Self::pid(&*self.cluster.lock().await, p.node)?;
                self.paused.lock().insert(p.node);
                kill(pid, Signal::SIGSTOP)?;
                tokio::time::sleep(p.hold).await;
                kill(pid, Signal::SIGCONT)?;
                self.resumed(p.node).await?;
            }
            Fault::Partition => {
                let others: Vec<usize> = {
                    let cluster = self.cluster.lock().await;
                    (1..=cluster.nodes.len())
                        .filter(|i| *i != p.node && cluster.nodes[i - 1].is_some())
                        .collect()
                };
                self.block(p.node, &others).await?;
                for o in &others {
                    self.block(*o, &[p.node]).await?;
                }
                tokio::time::sleep(p.hold).await;
                self.block(p.node, &[]).await?;
                for o in &others {
                    self.block(*o, &[]).await?;
                }
            }
            Fault::Drain => {
                {
                    let mut cluster = self.cluster.lock().await;
                    tokio::task::block_in_place(|| cluster.drain(p.node))?;
                }
                tokio::time::sleep(p.hold.saturating_sub(started.elapsed())).await;
                self.restart(p.node).await?;
            }
            Fault::Add => {
                let id = self.cluster.lock().await.add().await?;
                // It takes rooms over, then hands them back.
                tokio::time::sleep(p.hold).await;
                let mut cluster = self.cluster.lock().await;
                tokio::task::block_in_place(|| cluster.drain(id))?;
            }
            Fault::CqlRestart => {
                let dir = self.cql_dir.clone().unwrap_or_default();
                let stop = dir.clone();
                tokio::task::spawn_blocking(move || cassandra("server-stop", &stop)).await??;
                tokio::time::sleep(p.hold).await;
                tokio::task::spawn_blocking(move || cassandra("server-start", &dir)).await??;
                // Nothing can be written while the server is down: recovery counts from its
                // return.
                return Ok(Some(Instant::now()));
            }
            Fault::DelayedWrites => {
                // Held until released: once one of its log appends is held, node 4 has a
                // batch in flight when it stops (unless it owns no busy room now).
                self.hold.set(Duration::from_secs(600));
                let held = until(Duration::from_secs(5), || {
                    self.hold.held_writes("room_events") >= 1
                })
                .await;
                let pid = Self::pid(&*self.cluster.lock().await, p.node)?;
                self.paused.lock().insert(p.node);
                kill(pid, Signal::SIGSTOP)?;
                // Its rooms are taken over and written by their new owners, then the held
                // appends land (older epoch, after newer entries), then it resumes.
                let paused = Instant::now();
                let _ = recovered(&self.logs, paused, paused + self.bound).await;
                tokio::time::sleep(p.hold.saturating_sub(paused.elapsed())).await;
                self.hold.release();
                until(Duration::from_secs(10), || self.hold.held_writes("") == 0).await;
                kill(pid, Signal::SIGCONT)?;
                self.resumed(p.node).await?;
                if !held {
                    eprintln!("chaos: node 4 had no log append in flight when paused");
                }
            }
        }
        Ok(None)
    }
}

/// The next round: a fault from the deck, and maybe a second one overlapping it.
fn plan_round(
    rng: &mut Rng,
    deck: &mut Vec<Fault>,
    allowed: &dyn Fn(Fault) -> bool,
    next: usize,
    overlap_percent: u64,
) -> Vec<Planned> {
    let first = loop {
        if deck.is_empty() {
            deck.extend(Fault::ALL);
            rng.shuffle(deck);
        }
        let f = deck.remove(0);
        if allowed(f) {
            break f;
        }
    };
    let hold = |rng: &mut Rng| rng.millis(3_000, 8_000);
    let mut round = vec![Planned {
        fault: first,
        node: rng.pick(&first.targets(next)),
        offset: Duration::ZERO,
        hold: hold(rng),
    }];
    if rng.next() % 100 < overlap_percent {
        let busy: Vec<usize> = round.iter().map(|p| p.node).collect();
        let second: Vec<(Fault, usize)> = Fault::ALL
            .iter()
            .filter(|f| **f != first && allowed(**f))
            .flat_map(|f| f.targets(next).into_iter().map(move |n| (*f, n)))
            .filter(|(_, n)| !busy.contains(n))
            // A node cannot be added while the CQL server is down (it needs it to start).
            .filter(|(f, _)| {
                !matches!(
                    (first, *f),
                    (Fault::CqlRestart, Fault::Add) | (Fault::Add, Fault::CqlRestart)
                )
            })
            .collect();
        if !second.is_empty() {
            let (fault, node) = rng.pick(&second);
            round.push(Planned {
                fault,
                node,
                offset: rng.millis(0, 3_000),
                hold: hold(rng),
            });
        }
    }
    round
}

fn describe(faults: &[Planned]) -> String {
    faults
        .iter()
        .map(|p| {
            let what = match p.node {
                0 => format!("{:?}", p.fault),
                n => format!("{:?} {n}", p.fault),
            };
            match p.offset.is_zero() {
                true => format!("{what} {:.0}s", p.hold.as_secs_f64()),
                false => format!(
                    "+{:.1}s {what} {:.0}s",
                    p.offset.as_secs_f64(),
                    p.hold.as_secs_f64()
                ),
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_duplicates_and_reorders_nothing() -> Result<()> {
    let secs = env_u64("CHAOS_SECS", 100);
    let rooms = env_u64("CHAOS_ROOMS", 12) as usize;
    let seed = env_u64("CHAOS_SEED", voiceflow_wire::ids::now_ms()).max(1);
    let bound = Duration::from_secs(env_u64("CHAOS_RECOVERY_BOUND_SECS", 30));
    // Percent of rounds with a second, overlapping fault.
    let overlap = env_u64("CHAOS_OVERLAP", 0).min(100);
    let cql_dir = std::env::var("VOICEFLOW_TEST_CQL_DIR").ok();
    let Some(points) = contact_points_from_env() else {
        voiceflow_schema::cql::testing::announce_skip("chaos");
        return Ok(());
    };
    if cql_dir.is_none() {
        eprintln!("*** chaos: VOICEFLOW_TEST_CQL_DIR is not set: no CQL server restarts");
    }
    eprintln!("chaos: {secs} s of faults, {rooms} rooms, seed {seed} (replay: CHAOS_SEED={seed})");
    // Node 4 reaches the database through a holding bridge (delayed CQL writes).
    let upstream: SocketAddr = tokio::net::lookup_host(points[0].as_str())
        .await?
        .next()
        .context("CQL contact point")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bridge = listener.local_addr()?;
    let hold = Hold::default();
    tokio::spawn(run_holding(listener, upstream, false, hold.clone()));

    let Some(mut cluster) = TestCluster::start_with(3, "chaos", "fault_injection = true").await?
    else {
        return Ok(());
    };
    cluster.contact_points.insert(4, bridge);
    cluster.add().await?;
    cluster.wait_converged(Duration::from_secs(20)).await?;
    // Clients enter through nodes 1 and 2.
    let mut load = Load::start(&cluster, rooms, &[1, 2]).await?;
    load.check_stalls = false;
    let (room_ids, authors) = (load.rooms.clone(), load.authors.clone());
    let env = Env {
        cluster: tokio::sync::Mutex::new(cluster),
        hold,
        logs: load.logs.clone(),
        bound,
        cql_dir,
        paused: Default::default(),
        blocks: Default::default(),
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut rng = Rng(seed);
    let mut deck = Vec::new();
    let started = Instant::now();
    let mut rounds: Vec<Round> = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let next = env.cluster.lock().await.nodes.len() + 1;
        let allowed = |f: Fault| match f {
            Fault::CqlRestart => env.cql_dir.is_some(),
            // Certificates exist for nodes 1..=8.
            Fault::Add => next <= 8,
            _ => true,
        };
        let faults = plan_round(&mut rng, &mut deck, &allowed, next, overlap);
        let at = started.elapsed();
        eprintln!(
            "chaos: round {} at {at:?}: {}",
            rounds.len() + 1,
            describe(&faults)
        );
        let runs = faults.iter().map(|p| {
            let env = &env;
            async move {
                tokio::time::sleep(p.offset).await;
                env.apply(*p)
                    .await
                    .with_context(|| format!("{:?} node {}", p.fault, p.node))
            }
        });
        // Every fault runs to its end (a CQL server stopped by one is started again) even if
        // another failed.
        let returns = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        // Every room must serve again after the faults were lifted (an ack between the
        // round's start and a fault's effect proves nothing).
        let lifted = Instant::now();
        let since = returns
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(lifted)
            .max(lifted);
        let recovery = recovered(&env.logs, since, Instant::now() + bound).await?;
        let cluster = env.cluster.lock().await;
        cluster.wait_converged(bound).await?;
        // Entries of restarted nodes moved: give the load the current addresses.
        {
            let mut addrs = load.addrs.lock();
            for (i, id) in [1usize, 2].iter().enumerate() {
                if let Some(n) = &cluster.nodes[id - 1] {
                    addrs[i] = n.addr;
                }
            }
        }
        drop(cluster);
        rounds.push(Round {
            at,
            faults,
            recovery,
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let (total, gap, reconnects) = load.finish().await?;
    let cluster = env.cluster.into_inner();
    // Every room's stored history against what was acknowledged.
    let (lost, duplicated, reordered) =
        load::check_histories(&cluster, &room_ids, &authors, &env.logs).await?;
    println!(
        "\nchaos: seed {seed}, {rooms} rooms, {total} acknowledged messages, {reconnects} reconnects, longest gap between acks {gap:?}"
    );
    println!(
        "{:<4} {:>8}  {:>12}  faults (start offset, fault, node, duration)",
        "#", "at (s)", "recovery (s)"
    );
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "{:<4} {:>8.1}  {:>12.2}  {}",
            i + 1,
            r.at.as_secs_f64(),
            r.recovery.as_secs_f64(),
            describe(&r.faults)
        );
    }
    let worst = rounds.iter().map(|r| r.recovery).max().unwrap_or_default();
    let overlapping = rounds.iter().filter(|r| r.faults.len() > 1).count();
    println!(
        "{} rounds ({overlapping} with overlapping faults); lost {lost}, duplicated {duplicated}, reordered {reordered}; slowest recovery {worst:?}",
        rounds.len()
    );
    anyhow::ensure!(
        lost == 0 && duplicated == 0 && reordered == 0,
        "lost {lost}, duplicated {duplicated}, reordered {reordered} (seed {seed})"
    );
    anyhow::ensure!(rounds.len() >= 3, "only {} rounds applied", rounds.len());
    Ok(())
}
