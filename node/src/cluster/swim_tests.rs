//! The SWIM membership on a virtual clock and network: nodes exchange their packets through
//! an in-memory queue with a fixed latency, links can be cut, and every run is the same.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId};

use super::{Swim, SwimSettings};

const LATENCY: Duration = Duration::from_millis(1);

fn settings() -> SwimSettings {
    SwimSettings {
        probe_period: Duration::from_millis(500),
        suspect_to_down: Duration::from_millis(3000),
    }
}

fn info(node: NodeId) -> MemberInfo {
    MemberInfo {
        node_id: node,
        incarnation: 1_000 + u64::from(node),
        quic_addr: addr(node).to_string(),
        http_addr: format!("127.0.0.1:{}", 8000 + node),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (7, 11),
    }
}

fn addr(node: NodeId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000 + node))
}

/// Nodes 1..=n on a virtual network.
struct Net {
    start: Instant,
    now: Instant,
    nodes: Vec<Option<Swim>>,
    /// (deliver at, to, from, packet), in sending order.
    wire: Vec<(Instant, NodeId, NodeId, Vec<u8>)>,
    /// Cut links (both ways).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Nodes each node reported down, with when.
    downs: Vec<(NodeId, NodeId, Instant)>,
}

impl Net {
    fn new(n: u16) -> Self {
        let start = Instant::now();
        let nodes = (1..=n)
            .map(|i| {
                Some(Swim::new(
                    info(i),
                    addr(i),
                    settings(),
                    u64::from(i) * 7,
                    start,
                ))
            })
            .collect();
        Net {
            start,
            now: start,
            nodes,
            wire: Vec::new(),
            cut: BTreeSet::new(),
            downs: Vec::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Swim {
        self.nodes[usize::from(id) - 1].as_mut().expect("running")
    }

    fn collect(&mut self, from: NodeId, change: super::Change) {
        for down in change.down {
            self.downs.push((from, down, self.now));
        }
        let now = self.now;
        for (to, packet) in self.node(from).take_packets() {
            self.wire.push((now + LATENCY, to.node, from, packet));
        }
    }

    /// `joiner` says hello to `seed` (as its introduce loop does).
    fn hello(&mut self, joiner: NodeId, seed: NodeId) {
        let now = self.now;
        let change = self.node(seed).heard(info(joiner), now);
        self.collect(seed, change);
    }

    fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Runs the network for `d` of virtual time.
    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let mut next = until;
            for (at, ..) in &self.wire {
                next = next.min(*at);
            }
            for n in self.nodes.iter().flatten() {
                if let Some(at) = n.next_deadline(self.now) {
                    next = next.min(at.max(self.now));
                }
            }
            self.now = next;
            let now = next;
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
                .into_iter()
                .partition(|(at, ..)| *at <= now);
            self.wire = later;
            for (_, to, from, packet) in due {
                if self.is_cut(to, from) || self.nodes[usize::from(to) - 1].is_none() {
                    continue;
                }
                let change = self
                    .node(to)
                    .on_packet(from, &packet, now)
                    .expect("valid packet");
                self.collect(to, change);
            }
            for id in 1..=self.nodes.len() as NodeId {
                if self.nodes[usize::from(id) - 1].is_some() {
                    let change = self.node(id).tick(now);
                    self.collect(id, change);
                }
            }
            if now >= until {
                return;
            }
        }
    }

    /// Runs until `done` holds (checked every 10 ms of virtual time); the time it took.
    fn run_until(&mut self, within: Duration, mut done: impl FnMut(&mut Self) -> bool) -> Duration {
        let from = self.now;
        while !done(self) {
            assert!(self.now - from < within, "not within {within:?}");
            self.run(Duration::from_millis(10));
        }
        self.now - from
    }

    fn owners(&mut self, id: NodeId) -> Vec<NodeId> {
        self.node(id).owners()
    }
}

/// `n` nodes joined through node 1 as their seed, all serving.
fn formed(n: u16) -> Net {
    let mut net = Net::new(n);
    for joiner in 2..=n {
        net.hello(joiner, 1);
    }
    let all: Vec<NodeId> = (1..=n).collect();
    net.run_until(Duration::from_secs(10), |net| {
        (1..=n).all(|i| net.owners(i) == all)
    });
    net
}

#[test]
fn nodes_introduced_to_a_seed_find_each_other_and_serve() {
    let mut net = formed(5);
    for i in 1..=5 {
        let list = net.node(i).list();
        assert_eq!(list.len(), 5);
        assert!(list.iter().all(|m| m.state == MemberState::Up));
        assert!(net.node(i).serving());
    }
    // Hello info is kept (the seed heard every joiner's hello).
    let seen_by_seed = net.node(1).list();
    assert_eq!(seen_by_seed[1].http_addr, "127.0.0.1:8002");
}

#[test]
fn a_single_node_serves_after_catching_up() {
    let mut net = Net::new(1);
    assert!(net.owners(1).is_empty(), "catching up at start");
    let took = net.run_until(Duration::from_secs(5), |net| net.owners(1) == vec![1]);
    assert_eq!(took, settings().catch_up());
}

#[test]
fn a_killed_node_is_declared_down_everywhere_and_its_rooms_settle() {
    let mut net = formed(5);
    let killed_at = net.now;
    net.nodes[2] = None;
    let took = net.run_until(Duration::from_secs(30), |net| {
        [1, 2, 4, 5]
            .iter()
            .all(|i| net.owners(*i) == vec![1, 2, 4, 5])
    });
    // Probed within a few periods, then the suspicion timeout.
    assert!(took >= settings().suspect_to_down, "{took:?}");
    assert!(
        took < settings().suspect_to_down + Duration::from_secs(4),
        "{took:?}"
    );
    for i in [1, 2, 4, 5] {
        assert_eq!(net.node(i).state_of(3), Some(MemberState::Down));
        assert!(
            net.downs
                .iter()
                .any(|(by, down, at)| *by == i && *down == 3 && *at > killed_at)
        );
        assert!(net.node(i).settle_deadline(Duration::ZERO).is_some());
        assert!(net.node(i).is_silent(3));
    }
}

#[test]
fn a_cut_off_minority_stops_serving_before_the_majority_takes_over() {
    let mut net = formed(5);
    let minority = [4u16, 5];
    for a in minority {
        for b in 1..=3 {
            net.cut.insert((b, a));
        }
    }
    // Step the run and watch the order of events: a majority node must not own anything
    // the minority may still serve. Track when each minority node stops serving.
    let mut stopped: [Option<Instant>; 2] = [None, None];
    let mut taken_over = None;
    let start = net.now;
    while net.now - start < Duration::from_secs(30) {
        net.run(Duration::from_millis(10));
        for (k, m) in minority.iter().enumerate() {
            if stopped[k].is_none() && !net.node(*m).serving() {
                stopped[k] = Some(net.now);
            }
        }
        if taken_over.is_none() && (1..=3).all(|i| net.owners(i) == vec![1, 2, 3]) {
            taken_over = Some(net.now);
        }
        if taken_over.is_some() && stopped.iter().all(Option::is_some) {
            break;
        }
    }
    let taken_over = taken_over.expect("the majority took over");
    for (k, at) in stopped.iter().enumerate() {
        let at = at.expect("the minority stopped");
        assert!(
            at < taken_over,
            "node {} stopped at {:?}, majority took over at {:?}",
            minority[k],
            at - start,
            taken_over - start
        );
    }
    // Healed: everyone meets again and serves (foca re-announces to members it declared
    // down; the minority rejoins under renewed identities).
    net.cut.clear();
    let all = vec![1, 2, 3, 4, 5];
    net.run_until(Duration::from_secs(30), |net| {
        (1..=5).all(|i| net.owners(i) == all)
    });
}

#[test]
fn a_draining_node_owns_nothing_and_then_leaves() {
    let mut net = formed(3);
    let now = net.now;
    let change = net.node(3).set_leaving(now);
    assert!(change.placement);
    net.collect(3, change);
    net.run_until(Duration::from_secs(10), |net| {
        net.owners(1) == vec![1, 2] && net.owners(2) == vec![1, 2]
    });
    assert_eq!(net.node(1).state_of(3), Some(MemberState::Leaving));
    let now = net.now;
    net.node(3).leave(now);
    net.collect(3, super::Change::default());
    net.nodes[2] = None;
    net.run_until(Duration::from_secs(10), |net| {
        net.node(1).state_of(3) == Some(MemberState::Left)
            && net.node(2).state_of(3) == Some(MemberState::Left)
    });
    // Left members do not count: two nodes still make a quorum.
    assert!(net.node(1).serving());
}

#[test]
fn a_packet_naming_another_sender_is_refused() {
    let mut net = formed(3);
    let now = net.now;
    // A hello from a node it does not know makes node 1 announce itself to it.
    let _ = net.node(1).heard(info(4), now);
    let packets = net.node(1).take_packets();
    let (to, packet) = packets.first().cloned().expect("an announce");
    assert_eq!(to.node, 4);
    assert!(
        net.node(3).on_packet(2, &packet, now).is_err(),
        "node 1's packet claimed by node 2"
    );
    assert!(net.node(3).on_packet(2, &[1, 2, 3], now).is_err(), "junk");
    assert!(
        net.node(3).on_packet(1, &packet, now).is_ok(),
        "its own sender's"
    );
}

#[test]
fn the_same_seeds_give_the_same_run() {
    let trace = || {
        let mut net = formed(4);
        net.nodes[1] = None;
        net.run(Duration::from_secs(8));
        (
            net.now - net.start,
            net.downs
                .iter()
                .map(|(a, b, at)| (*a, *b, *at - net.start))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(trace(), trace());
}
