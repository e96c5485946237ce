//! Part `churn`: each room's probe log, the rooms and what their clients share, the
//! `GET /cluster` poller, the run itself (setup, warm-up, events, drain) and its waits.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::churn_events::Events;
use super::clients::churn_client;
use super::metrics::{Http, members, owners};
use super::nodes::{Nodes, setup_nodes, setup_rooms};
use super::report::{churn_figures, gap_figs};
use super::{lock, secs_since};
use crate::stats::{SharedHist, fig, fig_f, shared_histogram};
use crate::ws::Signal;
use crate::{Args, Ctx, conns};

/// Which client of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Sender,
    Receiver,
}

pub(super) struct Probe {
    pub(super) first_sent: Instant,
    /// (ack time, acknowledged message id)
    pub(super) acked: Option<(Instant, u64)>,
}

#[derive(Default)]
pub(super) struct ProbeLog {
    /// Indexed by probe sequence number k.
    pub(super) sends: Vec<Probe>,
    /// (k, message id, receive time), in receive order.
    pub(super) recv: Vec<(u64, u64, Instant)>,
    /// Ack times in order.
    pub(super) acks: Vec<Instant>,
    /// (when the acknowledged attempt was sent, when its ack came), in order.
    pub(super) served: Vec<(Instant, Instant)>,
    pub(super) sender_node: usize,
    pub(super) receiver_node: usize,
    pub(super) sender_first: usize,
    pub(super) receiver_first: usize,
    pub(super) resends: Vec<Instant>,
    pub(super) sender_reconnects: Vec<Instant>,
    pub(super) receiver_reconnects: Vec<Instant>,
    pub(super) refusals: u64,
    pub(super) first_refusal: Option<String>,
}

impl ProbeLog {
    /// Notes that the room's `side` client (re)connected to node `node`.
    pub(super) fn connected(&mut self, side: Side, node: usize, reconnect: bool) {
        let (current, first, reconnects) = match side {
            Side::Sender => (
                &mut self.sender_node,
                &mut self.sender_first,
                &mut self.sender_reconnects,
            ),
            Side::Receiver => (
                &mut self.receiver_node,
                &mut self.receiver_first,
                &mut self.receiver_reconnects,
            ),
        };
        *current = node;
        if reconnect {
            reconnects.push(Instant::now());
        } else {
            *first = node;
        }
    }

    /// When this room first delivered a probe first sent at or after `x`.
    pub(super) fn delivered_after(&self, x: Instant) -> Option<Instant> {
        self.recv
            .iter()
            .find(|(k, _, _)| {
                self.sends
                    .get(*k as usize)
                    .is_some_and(|p| p.first_sent >= x)
            })
            .map(|r| r.2)
    }

    /// When the room first acknowledged an attempt (a probe or a resend of one) sent at or
    /// after `x`: when it served again, whatever the probe schedule.
    pub(super) fn served_after(&self, x: Instant) -> Option<Instant> {
        self.served
            .iter()
            .find(|(sent, _)| *sent >= x)
            .map(|(_, acked)| *acked)
    }

    /// Longest time without an ack within `[a, b]` (gaps overlapping the window, an
    /// open gap running to `b` included).
    pub(super) fn longest_gap(&self, a: Instant, b: Instant) -> Duration {
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

pub(super) struct ChurnRoom {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) offset: Duration,
    pub(super) sender_token: Arc<str>,
    pub(super) receiver_token: Arc<str>,
    pub(super) log: Mutex<ProbeLog>,
}

impl ChurnRoom {
    pub(super) fn token(&self, side: Side) -> &str {
        match side {
            Side::Sender => &self.sender_token,
            Side::Receiver => &self.receiver_token,
        }
    }
}

pub(super) struct ChurnShared {
    pub(super) start: Signal,
    pub(super) start_at: OnceLock<Instant>,
    /// No new probes.
    pub(super) stop_sending: Signal,
    /// Everything stops.
    pub(super) hard_stop: Signal,
    pub(super) interval: Duration,
    pub(super) resend: Duration,
    pub(super) origin: Instant,
    pub(super) run_id: String,
    pub(super) latency: SharedHist,
    pub(super) ready: AtomicUsize,
}

/// One observation of `GET /cluster`.
pub(super) struct Seen {
    pub(super) at: Instant,
    pub(super) owners: Vec<u64>,
    pub(super) members: Vec<(u64, String, u64)>,
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

pub(super) async fn churn(args: &Args, ctx: &Ctx) -> Result<()> {
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

    let (users, created) = setup_rooms(args, ctx, &nodes, users_n, rooms_n, "churn").await?;

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
        for (side, node) in [(Side::Receiver, receiver_node), (Side::Sender, sender_node)] {
            let (nodes, room, shared, sem) =
                (nodes.clone(), room.clone(), shared.clone(), sem.clone());
            handles.push(tokio::spawn(churn_client(
                nodes, room, shared, sem, side, node,
            )));
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

    let mut events = Events {
        nodes,
        http,
        rooms,
        seen,
        node_ids,
        n0,
        started,
        settle,
        event_timeout,
        log: String::new(),
    };
    if let Some(cmd) = &ca.join_command {
        events.join(cmd, &initial_owners).await;
    }
    if let Some(cmd) = &ca.kill_command {
        events.kill(cmd).await;
    }
    let rooms = &events.rooms;

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

    churn_figures(&events.nodes, rooms, &shared.latency, started, &events.log);
    Ok(())
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

pub(super) struct Waited {
    /// When the last room delivered (all did).
    pub(super) at: Option<Instant>,
    /// Rooms that did not deliver in time.
    pub(super) missing: usize,
    /// Delivery time of each room that did.
    pub(super) times: Vec<Instant>,
}

impl Waited {
    /// Each room's time by `time_of` (as of now); `at` is the latest, if every room has one.
    fn of(rooms: &[Arc<ChurnRoom>], time_of: impl Fn(&ProbeLog) -> Option<Instant>) -> Self {
        let mut times = Vec::with_capacity(rooms.len());
        let mut missing = 0;
        for room in rooms {
            match time_of(&lock(&room.log)) {
                Some(t) => times.push(t),
                None => missing += 1,
            }
        }
        Waited {
            at: times.iter().copied().max().filter(|_| missing == 0),
            missing,
            times,
        }
    }
}

/// When each room acknowledged an attempt sent at or after `x` (see
/// [`ProbeLog::served_after`]), as of now.
pub(super) fn served(rooms: &[Arc<ChurnRoom>], x: Instant) -> Waited {
    Waited::of(rooms, |log| log.served_after(x))
}

/// Waits until every room delivered a probe first sent at or after `x`;
/// returns the latest of those delivery times.
pub(super) async fn wait_delivered(
    rooms: &[Arc<ChurnRoom>],
    x: Instant,
    limit: Duration,
) -> Waited {
    loop {
        let waited = Waited::of(rooms, |log| log.delivered_after(x));
        if waited.missing == 0 {
            // No rooms at all count as delivered at once.
            let at = Some(waited.at.unwrap_or(x));
            return Waited { at, ..waited };
        }
        if x.elapsed() > limit {
            return waited;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
