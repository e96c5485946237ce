//! The virtual clock and network, and the loop that drives N membership state machines.
//!
//! Everything happens at a virtual time in nanoseconds, in the order of (time, sequence
//! number); all randomness comes from generators derived from the run's seed. Links have a
//! base latency plus uniform jitter; each packet is lost with the configured probability;
//! nodes can be partitioned into groups (traffic between groups is dropped), paused (their
//! events wait until they resume) or killed (their events are dropped).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use voiceflow_wire::cluster::NodeId;

use crate::rng::{Draw, SimRng, derive};
use crate::rooms::{RoomEv, Rooms};

/// Virtual time, ns.
pub type Nanos = u64;
/// One millisecond of virtual time.
pub const MS: Nanos = 1_000_000;
/// One second of virtual time.
pub const SEC: Nanos = 1_000 * MS;
/// Largest payload of one packet: bigger messages are several packets.
const PACKET_BYTES: u64 = 1200;

/// The virtual network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// One-way base latency.
    pub latency: Nanos,
    /// Extra one-way delay, uniform in `0..jitter`.
    pub jitter: Nanos,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Reliable transports (QUIC streams) resend a lost packet after this probe timeout,
    /// doubling per consecutive loss (QUIC's PTO on a LAN: smoothed RTT + 4 × RTT variance +
    /// 25 ms of maximum ACK delay).
    pub pto: Nanos,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: 250_000,
            jitter: 500_000,
            loss: 0.0,
            pto: 30 * MS,
        }
    }
}

/// What a membership state machine wants done.
pub struct Outbox<M: Member> {
    /// Messages to send: (to, message, encoded size in bytes).
    pub sends: Vec<(NodeId, M::Msg, u32)>,
    /// Timers: (delay, timer).
    pub timers: Vec<(Nanos, M::Timer)>,
    /// Members this node just declared down (or left).
    pub downs: Vec<NodeId>,
    /// Members this node just started suspecting.
    pub suspects: Vec<NodeId>,
}

impl<M: Member> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            sends: Vec::new(),
            timers: Vec::new(),
            downs: Vec::new(),
            suspects: Vec::new(),
        }
    }
}

/// A membership implementation driven by the simulator (the real cores behind an adapter).
pub trait Member: Sized {
    /// A message between nodes.
    type Msg: Clone;
    /// A timer.
    type Timer;
    /// Whether messages travel on a reliable stream (loss delays them) or as datagrams
    /// (loss drops them).
    const RELIABLE: bool;
    /// This node's id.
    fn id(&self) -> NodeId;
    /// A timer fired.
    fn on_timer(&mut self, timer: Self::Timer, now: Nanos, out: &mut Outbox<Self>);
    /// A message arrived.
    fn on_message(&mut self, from: NodeId, msg: Self::Msg, now: Nanos, out: &mut Outbox<Self>);
    /// The nodes that own rooms in this node's view, sorted (empty: it serves nothing).
    fn owners(&self) -> Vec<NodeId>;
    /// Live peers in this node's view (Up or Leaving), whom an acquire asks to release.
    fn peers(&self) -> Vec<NodeId>;
    /// Whether the view may have changed since the last call (cleared by the call).
    fn take_view_changed(&mut self) -> bool;
    /// When rooms of recently failed nodes may start here (their last writes landed).
    fn settle_deadline(&self, write_timeout: Nanos) -> Option<Nanos>;
    /// Starts a graceful leave: this node owns nothing from now on.
    fn begin_leave(&mut self, now: Nanos, out: &mut Outbox<Self>);
    /// Says goodbye (after the hand-off).
    fn finish_leave(&mut self, now: Nanos, out: &mut Outbox<Self>);
}

/// Something scheduled.
enum Ev<M: Member> {
    Deliver {
        to: NodeId,
        from: NodeId,
        msg: M::Msg,
    },
    Timer {
        node: NodeId,
        timer: M::Timer,
    },
    Room(RoomEv),
}

struct Entry<M: Member> {
    at: Nanos,
    seq: u64,
    ev: Ev<M>,
}

impl<M: Member> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M: Member> Eq for Entry<M> {}
impl<M: Member> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M: Member> Ord for Entry<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Earliest first out of the max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Per-node counters.
#[derive(Debug, Default, Clone)]
pub struct NodeStats {
    /// Membership messages sent.
    pub msgs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A down (or left) verdict: `observer` declared `target` down at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    /// When.
    pub at: Nanos,
    /// Who decided.
    pub observer: NodeId,
    /// About whom.
    pub target: NodeId,
}

/// The simulation: nodes, network, clock.
pub struct Engine<M: Member> {
    /// Current virtual time.
    pub now: Nanos,
    seq: u64,
    queue: BinaryHeap<Entry<M>>,
    /// The nodes, by id (`None`: not started yet, or gone).
    pub nodes: Vec<Option<M>>,
    /// The network.
    pub net: NetConfig,
    rng: SimRng,
    /// Partition group of each node: traffic flows only within a group.
    pub group: Vec<u8>,
    /// Killed nodes.
    pub killed: Vec<bool>,
    paused_until: Vec<Nanos>,
    /// Ordered delivery on reliable links: the last delivery time per (from, to).
    link_clock: Vec<Nanos>,
    /// Counters per node.
    pub stats: Vec<NodeStats>,
    /// Every down verdict.
    pub verdicts: Vec<Verdict>,
    /// Every suspicion (SWIM only).
    pub suspicions: Vec<Verdict>,
    /// The rooms, when the run models them.
    pub rooms: Option<Rooms>,
    /// When set, only these nodes receive messages (the others' are counted, then dropped).
    pub receivers: Option<Vec<bool>>,
}

impl<M: Member> Engine<M> {
    /// An empty simulation with room for `capacity` nodes.
    pub fn new(capacity: usize, net: NetConfig, seed: u64) -> Self {
        Engine {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: (0..capacity).map(|_| None).collect(),
            net,
            rng: derive(seed, 0xE7),
            group: vec![0; capacity],
            killed: vec![false; capacity],
            paused_until: vec![0; capacity],
            link_clock: vec![0; capacity * capacity],
            stats: vec![NodeStats::default(); capacity],
            verdicts: Vec::new(),
            suspicions: Vec::new(),
            rooms: None,
            receivers: None,
        }
    }

    fn push(&mut self, at: Nanos, ev: Ev<M>) {
        self.seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Adds a node and runs `init` on it (its first timers and messages).
    pub fn add(&mut self, node: M, init: impl FnOnce(&mut M, Nanos, &mut Outbox<M>)) {
        let id = node.id() as usize;
        self.nodes[id] = Some(node);
        self.killed[id] = false;
        self.with_node(id as NodeId, |m, now, out| init(m, now, out));
    }

    /// Runs `f` on a live node and carries out what it asked for.
    pub fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut M, Nanos, &mut Outbox<M>)) {
        let now = self.now;
        let mut out = Outbox::default();
        let changed = match self.nodes[id as usize].as_mut() {
            Some(m) => {
                f(m, now, &mut out);
                m.take_view_changed()
            }
            None => return,
        };
        self.carry_out(id, out);
        if changed {
            self.view_changed(id);
        }
    }

    fn view_changed(&mut self, id: NodeId) {
        let Some(m) = self.nodes[id as usize].as_ref() else {
            return;
        };
        let Some(rooms) = self.rooms.as_mut() else {
            return;
        };
        let owners = m.owners();
        let peers = m.peers();
        let settle = m.settle_deadline(rooms.cfg.write_timeout);
        let mut sched = Vec::new();
        rooms.on_view(id, &owners, &peers, settle, self.now, &mut sched);
        for (at, ev) in sched {
            self.push(at, Ev::Room(ev));
        }
    }

    fn carry_out(&mut self, id: NodeId, out: Outbox<M>) {
        let now = self.now;
        for (after, timer) in out.timers {
            self.push(now + after, Ev::Timer { node: id, timer });
        }
        for target in out.downs {
            self.verdicts.push(Verdict {
                at: now,
                observer: id,
                target,
            });
        }
        for target in out.suspects {
            self.suspicions.push(Verdict {
                at: now,
                observer: id,
                target,
            });
        }
        for (to, msg, bytes) in out.sends {
            let s = &mut self.stats[id as usize];
            s.msgs += 1;
            s.bytes += u64::from(bytes);
            if self
                .receivers
                .as_ref()
                .is_some_and(|r| !r.get(to as usize).copied().unwrap_or(false))
            {
                continue;
            }
            if let Some(at) = self.transit(id, to, bytes) {
                self.push(at, Ev::Deliver { to, from: id, msg });
            }
        }
    }

    /// When a message sent now arrives, or `None` if it is lost.
    fn transit(&mut self, from: NodeId, to: NodeId, bytes: u32) -> Option<Nanos> {
        let (f, t) = (from as usize, to as usize);
        if t >= self.nodes.len() || self.group[f] != self.group[t] {
            return None;
        }
        let packets = u64::from(bytes).div_ceil(PACKET_BYTES).max(1) as i32;
        let p = self.net.loss;
        let mut at = self.now + self.net.latency + self.rng.below(self.net.jitter.max(1));
        if M::RELIABLE {
            // Rounds of retransmission the slowest of its packets needs.
            let u = self.rng.unit();
            let mut rounds = 0u32;
            while rounds < 10 && u < 1.0 - (1.0 - p.powi(rounds as i32 + 1)).powi(packets) {
                rounds += 1;
            }
            at += self.net.pto * ((1u64 << rounds) - 1);
            let slot = f * self.nodes.len() + t;
            at = at.max(self.link_clock[slot]);
            self.link_clock[slot] = at;
            Some(at)
        } else if self.rng.chance(1.0 - (1.0 - p).powi(packets)) {
            None
        } else {
            Some(at)
        }
    }

    /// Runs every event up to `until` (inclusive); the clock ends at `until`.
    pub fn run_until(&mut self, until: Nanos) {
        while let Some(top) = self.queue.peek() {
            if top.at > until {
                break;
            }
            let Some(Entry { at, ev, .. }) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.dispatch(ev);
        }
        self.now = until;
    }

    fn dispatch(&mut self, ev: Ev<M>) {
        let target = match &ev {
            Ev::Deliver { to, .. } => Some(*to),
            Ev::Timer { node, .. } => Some(*node),
            Ev::Room(_) => None,
        };
        if let Some(node) = target {
            let n = node as usize;
            if self.killed[n] || self.nodes[n].is_none() {
                return;
            }
            if self.paused_until[n] > self.now {
                // Frozen: the kernel holds its packets and timers until it resumes.
                let resume = self.paused_until[n];
                self.push(resume, ev);
                return;
            }
        }
        match ev {
            Ev::Deliver { to, from, msg } => {
                self.with_node(to, |m, now, out| m.on_message(from, msg, now, out));
            }
            Ev::Timer { node, timer } => {
                self.with_node(node, |m, now, out| m.on_timer(timer, now, out));
            }
            Ev::Room(ev) => {
                if let Some(rooms) = self.rooms.as_mut() {
                    let mut sched = Vec::new();
                    let rtts = RttSampler {
                        rng: &mut self.rng,
                        net: &self.net,
                    };
                    rooms.on_event(ev, self.now, rtts, &mut sched);
                    for (at, ev) in sched {
                        self.push(at, Ev::Room(ev));
                    }
                }
            }
        }
    }

    /// Kills a node now: it stops at once, without a word.
    pub fn kill(&mut self, id: NodeId) {
        self.killed[id as usize] = true;
        if let Some(rooms) = self.rooms.as_mut() {
            let mut sched = Vec::new();
            rooms.on_kill(id, self.now, &mut sched);
            for (at, ev) in sched {
                self.push(at, Ev::Room(ev));
            }
        }
    }

    /// Freezes a node for `pause` (a long GC pause, a stopped VM).
    pub fn pause(&mut self, id: NodeId, pause: Nanos) {
        self.paused_until[id as usize] = self.now + pause;
    }

    /// Removes a node that left gracefully.
    pub fn remove(&mut self, id: NodeId) {
        self.nodes[id as usize] = None;
    }

    /// Live node ids.
    pub fn live(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some() && !self.killed[*i])
            .map(|i| i as NodeId)
            .collect()
    }

    /// Recomputes every node's rooms (after the room model was installed).
    pub fn refresh_all_views(&mut self) {
        for id in self.live() {
            self.view_changed(id);
        }
    }
}

/// Round-trip times of request/answer exchanges the room model does not simulate message by
/// message (a release answered by every peer).
pub struct RttSampler<'a> {
    rng: &'a mut SimRng,
    net: &'a NetConfig,
}

impl RttSampler<'_> {
    /// The slowest of `n` round trips on reliable links.
    pub fn max_of(&mut self, n: usize) -> Nanos {
        let mut worst = 0;
        for _ in 0..n {
            let mut rtt = 2 * self.net.latency
                + self.rng.below(self.net.jitter.max(1))
                + self.rng.below(self.net.jitter.max(1));
            let p = self.net.loss;
            let u = self.rng.unit();
            let mut rounds = 0u32;
            while rounds < 10 && u < 1.0 - (1.0 - p.powi(rounds as i32 + 1)).powi(2) {
                rounds += 1;
            }
            rtt += self.net.pto * ((1u64 << rounds) - 1);
            worst = worst.max(rtt);
        }
        worst
    }

    /// A uniform draw in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.rng.unit()
    }
}
