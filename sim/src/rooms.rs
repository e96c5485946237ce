//! Virtual rooms and their hand-off between nodes, as the node does it today or in bounded
//! batches, with a checker that no room ever has two writers.
//!
//! Each node owns the rooms that rendezvous hashing (the node's `owner_among`) gives it among
//! the owners of *its own* view. When its view changes it retires the rooms it no longer owns
//! (they stop taking requests, finish what they acknowledged, stop) and starts the ones it
//! gained: an acquire asks every live peer to release the room (the last owner answers once
//! its actor stopped), waits for the settle deadline of recently failed nodes, then loads the
//! room from storage. Storage is one FIFO server of `storage_loads_per_sec`; a load that
//! waited longer than `start_timeout` fails (the work is still done: it is a retry storm's
//! waste) and the room is tried again.
//!
//! - `Handoff::OnDemand` (today): rooms retire at once and start at their next request
//!   (busy rooms: one every `request_interval` on average), all in parallel.
//! - `Handoff::Bounded(b)`: a node retires the rooms it lost `b` at a time and tells each new
//!   owner, which starts them at once, `b` at a time (a fenced node still stops everything).

use std::collections::{BTreeSet, VecDeque};

use voiceflow_wire::cluster::NodeId;

use crate::all_to_all::owner_among;
use crate::engine::{Nanos, RttSampler};
use crate::placement::Ranking;
use crate::rng::{Draw, SimRng, derive};
pub use crate::room_types::{Handoff, RoomConfig, RoomEv, RoomStats, Violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting,
    Running,
    Retiring,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Runner {
    pub(crate) node: NodeId,
    pub(crate) phase: Phase,
    pub(crate) token: u32,
    /// Retired by a bounded hand-off: tell the new owner when stopped.
    pub(crate) handing_off: bool,
}

/// The rooms of a simulated cluster.
pub struct Rooms {
    /// Settings.
    pub cfg: RoomConfig,
    pub(crate) ranking: Ranking,
    /// Per node: whether each node is an owner in its view.
    pub(crate) owner_mask: Vec<Vec<bool>>,
    /// Per node: whether each node is a live peer (Up or Leaving) in its view.
    pub(crate) peer_mask: Vec<Vec<bool>>,
    pub(crate) settle: Vec<Option<Nanos>>,
    pub(crate) desired: Vec<BTreeSet<u32>>,
    pub(crate) runners: Vec<Vec<Runner>>,
    pub(crate) pending_request: Vec<bool>,
    pub(crate) rng: SimRng,
    pub(crate) queue: Vec<VecDeque<u32>>,
    pub(crate) inflight: Vec<usize>,
    pub(crate) retire_queue: Vec<VecDeque<u32>>,
    pub(crate) retiring: Vec<usize>,
    pub(crate) parked: Vec<BTreeSet<u32>>,
    pub(crate) dead: Vec<bool>,
    pub(crate) storage_free: Nanos,
    pub(crate) next_token: u32,
    /// Rooms no node runs now.
    pub unavailable: usize,
    /// The most rooms unavailable at once since the last `reset_marks`.
    pub max_unavailable: usize,
    /// When `unavailable` last became 0 (or the last mark reset).
    pub available_since: Nanos,
    /// Rooms found with two writers.
    pub violations: Vec<Violation>,
    /// Counters.
    pub stats: RoomStats,
}

impl Rooms {
    /// `rooms` rooms over nodes `0..capacity`; nobody runs anything yet.
    pub fn new(cfg: RoomConfig, rooms: usize, capacity: usize, seed: u64) -> Self {
        let ranking = Ranking::new(rooms, capacity, seed);
        Rooms {
            cfg,
            ranking,
            owner_mask: vec![vec![false; capacity]; capacity],
            peer_mask: vec![vec![false; capacity]; capacity],
            settle: vec![None; capacity],
            desired: vec![BTreeSet::new(); capacity],
            runners: vec![Vec::new(); rooms],
            pending_request: vec![false; rooms],
            rng: derive(seed, 0x700),
            queue: vec![VecDeque::new(); capacity],
            inflight: vec![0; capacity],
            retire_queue: vec![VecDeque::new(); capacity],
            retiring: vec![0; capacity],
            parked: vec![BTreeSet::new(); capacity],
            dead: vec![false; capacity],
            storage_free: 0,
            next_token: 1,
            unavailable: rooms,
            max_unavailable: 0,
            available_since: 0,
            violations: Vec::new(),
            stats: RoomStats::default(),
        }
    }

    /// Every room running on its owner among `owners` (a settled cluster at time 0).
    pub fn place_all(&mut self, owners: &[NodeId]) {
        for room in 0..self.runners.len() {
            if let Some(owner) = self.ranking.owner(room, owners) {
                self.runners[room] = vec![Runner {
                    node: owner,
                    phase: Phase::Running,
                    token: 0,
                    handing_off: false,
                }];
                self.desired[owner as usize].insert(room as u32);
                self.unavailable -= 1;
            }
        }
        self.max_unavailable = self.unavailable;
    }

    /// Starts a new observation window.
    pub fn reset_marks(&mut self, now: Nanos) {
        self.max_unavailable = self.unavailable;
        self.available_since = now;
    }

    /// Rooms running on `node`.
    pub fn running_on(&self, node: NodeId) -> usize {
        self.runners
            .iter()
            .filter(|rs| {
                rs.iter()
                    .any(|r| r.node == node && r.phase != Phase::Retiring)
            })
            .count()
    }

    /// Rooms running (or starting) on any of the nodes in `mask`.
    pub fn running_on_any(&self, mask: &[bool]) -> usize {
        self.runners
            .iter()
            .filter(|rs| {
                rs.iter()
                    .any(|r| mask[r.node as usize] && r.phase != Phase::Retiring)
            })
            .count()
    }

    /// Number of rooms.
    pub fn len(&self) -> usize {
        self.runners.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.runners.is_empty()
    }

    /// The node running `room` (if exactly one does).
    pub fn runner_of(&self, room: usize) -> Option<NodeId> {
        let mut running = self.runners[room]
            .iter()
            .filter(|r| r.phase == Phase::Running);
        let first = running.next()?;
        running.next().is_none().then_some(first.node)
    }

    pub(crate) fn token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }

    pub(crate) fn running_count(&self, room: u32) -> usize {
        self.runners[room as usize]
            .iter()
            .filter(|r| r.phase == Phase::Running)
            .count()
    }

    pub(crate) fn became(
        &mut self,
        room: u32,
        before: usize,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        let after = self.running_count(room);
        if before > 0 && after == 0 {
            self.unavailable += 1;
            self.max_unavailable = self.max_unavailable.max(self.unavailable);
            self.request_later(room, now, sched);
        } else if before == 0 && after > 0 {
            self.unavailable -= 1;
            if self.unavailable == 0 {
                self.available_since = now;
            }
        }
    }

    /// A node's view changed: it retires what it lost and starts what it gained.
    pub fn on_view(
        &mut self,
        node: NodeId,
        owners: &[NodeId],
        peers: &[NodeId],
        settle: Option<Nanos>,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        let n = node as usize;
        if self.dead[n] {
            return;
        }
        let mask = &mut self.owner_mask[n];
        mask.iter_mut().for_each(|m| *m = false);
        for o in owners {
            mask[*o as usize] = true;
        }
        let pm = &mut self.peer_mask[n];
        pm.iter_mut().for_each(|m| *m = false);
        for p in peers {
            pm[*p as usize] = true;
        }
        self.settle[n] = settle;
        let desired: BTreeSet<u32> = if owners.contains(&node) {
            self.ranking
                .candidates(node)
                .iter()
                .filter(|(room, rank)| {
                    self.ranking.top(*room as usize)[..*rank as usize]
                        .iter()
                        .all(|o| !self.owner_mask[n][*o as usize])
                })
                .map(|(room, _)| *room)
                .collect()
        } else {
            BTreeSet::new()
        };
        let lost: Vec<u32> = self.desired[n].difference(&desired).copied().collect();
        let gained: Vec<u32> = desired.difference(&self.desired[n]).copied().collect();
        self.desired[n] = desired;
        let fenced = owners.is_empty();
        for room in lost {
            match self.cfg.handoff {
                // A fenced node stops everything at once; so does today's hand-off.
                Handoff::Bounded(_) if !fenced => self.retire_queue[n].push_back(room),
                _ => self.retire(node, room, false, now, sched),
            }
        }
        self.queue[n].retain(|r| self.desired[n].contains(r));
        for room in gained {
            if self.parked[n].remove(&room) && !self.runs(node, room) {
                self.queue[n].push_back(room);
            }
        }
        self.pump(node, now, sched);
        self.pump_retire(node, now, sched);
    }

    /// Bounded hand-off: retires the next rooms this node lost, `bound` at a time.
    fn pump_retire(&mut self, node: NodeId, now: Nanos, sched: &mut Vec<(Nanos, RoomEv)>) {
        let Handoff::Bounded(bound) = self.cfg.handoff else {
            return;
        };
        let n = node as usize;
        while self.retiring[n] < bound {
            let Some(room) = self.retire_queue[n].pop_front() else {
                break;
            };
            let running = self.runners[room as usize]
                .iter()
                .any(|r| r.node == node && r.phase == Phase::Running);
            if running && !self.desired[n].contains(&room) {
                self.retiring[n] += 1;
                self.retire(node, room, true, now, sched);
            }
        }
    }

    pub(crate) fn runs(&self, node: NodeId, room: u32) -> bool {
        self.runners[room as usize].iter().any(|r| r.node == node)
    }

    pub(crate) fn request_later(
        &mut self,
        room: u32,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        if !std::mem::replace(&mut self.pending_request[room as usize], true) {
            let after = self.rng.exp(self.cfg.request_interval as f64) as Nanos;
            sched.push((now + after.max(1), RoomEv::Request { room }));
        }
    }

    /// The owner of `room` in `node`'s view.
    pub(crate) fn owner_in_view(&self, node: NodeId, room: u32) -> Option<NodeId> {
        let mask = &self.owner_mask[node as usize];
        self.ranking
            .top(room as usize)
            .iter()
            .copied()
            .find(|o| mask[*o as usize])
    }

    fn request(&mut self, room: u32, now: Nanos, sched: &mut Vec<(Nanos, RoomEv)>) {
        self.pending_request[room as usize] = false;
        if self.running_count(room) > 0 {
            return;
        }
        // Sessions are everywhere: the request comes from a random live node.
        let live: Vec<NodeId> = (0..self.dead.len() as NodeId)
            .filter(|n| !self.dead[*n as usize] && self.owner_mask[*n as usize].iter().any(|m| *m))
            .collect();
        let from = if live.is_empty() {
            None
        } else {
            Some(live[self.rng.below(live.len() as u64) as usize])
        };
        let owner = from.and_then(|f| self.owner_in_view(f, room));
        match owner {
            Some(o)
                if !self.dead[o as usize]
                    && self.desired[o as usize].contains(&room)
                    && !self.runs(o, room) =>
            {
                match self.cfg.handoff {
                    Handoff::OnDemand => self.begin_start(o, room, now, sched),
                    Handoff::Bounded(_) => {
                        self.queue[o as usize].push_back(room);
                        self.pump(o, now, sched);
                    }
                }
            }
            // Nobody agrees to own it yet (views differ, or the owner is dead): the client
            // gets "unavailable" and tries again.
            _ => {}
        }
        if !self.runs_any(room) {
            self.request_later(room, now, sched);
        }
    }

    fn runs_any(&self, room: u32) -> bool {
        self.runners[room as usize]
            .iter()
            .any(|r| r.phase != Phase::Retiring)
    }

    pub(crate) fn retire(
        &mut self,
        node: NodeId,
        room: u32,
        handing_off: bool,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        let before = self.running_count(room);
        let retire = self.cfg.retire;
        let token = self.token();
        let rs = &mut self.runners[room as usize];
        if let Some(i) = rs.iter().position(|r| r.node == node) {
            match rs[i].phase {
                Phase::Starting => {
                    rs.remove(i);
                    self.inflight[node as usize] = self.inflight[node as usize].saturating_sub(1);
                }
                Phase::Running => {
                    rs[i].phase = Phase::Retiring;
                    rs[i].token = token;
                    rs[i].handing_off = handing_off;
                    sched.push((now + retire, RoomEv::Retired { node, room, token }));
                }
                Phase::Retiring => {}
            }
        }
        self.became(room, before, now, sched);
    }

    pub(crate) fn pump(&mut self, node: NodeId, now: Nanos, sched: &mut Vec<(Nanos, RoomEv)>) {
        let Handoff::Bounded(bound) = self.cfg.handoff else {
            return;
        };
        let n = node as usize;
        while self.inflight[n] < bound {
            let Some(room) = self.queue[n].pop_front() else {
                break;
            };
            if self.desired[n].contains(&room) && !self.runs(node, room) {
                self.begin_start(node, room, now, sched);
            }
        }
    }

    fn begin_start(
        &mut self,
        node: NodeId,
        room: u32,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        let token = self.token();
        self.runners[room as usize].push(Runner {
            node,
            phase: Phase::Starting,
            token,
            handing_off: false,
        });
        self.inflight[node as usize] += 1;
        let at = self.settle[node as usize].map_or(now, |s| s.max(now));
        sched.push((at, RoomEv::Acquire { node, room, token }));
    }

    /// A node was killed: it stops at once. Writes it had in flight may still land until
    /// `write_timeout`, so its rooms count as written by it until then.
    pub fn on_kill(&mut self, node: NodeId, now: Nanos, sched: &mut Vec<(Nanos, RoomEv)>) {
        self.dead[node as usize] = true;
        self.desired[node as usize].clear();
        self.queue[node as usize].clear();
        self.retire_queue[node as usize].clear();
        self.parked[node as usize].clear();
        for room in 0..self.runners.len() as u32 {
            let before = self.running_count(room);
            let wt = self.cfg.write_timeout;
            let token = self.token();
            let rs = &mut self.runners[room as usize];
            rs.retain(|r| !(r.node == node && matches!(r.phase, Phase::Starting)));
            for r in rs.iter_mut().filter(|r| r.node == node) {
                r.phase = Phase::Retiring;
                r.token = token;
                sched.push((now + wt, RoomEv::Retired { node, room, token }));
            }
            self.became(room, before, now, sched);
        }
    }

    /// Whether `node` still runs anything (a draining node waits for none to be left).
    pub fn busy(&self, node: NodeId) -> bool {
        self.runners
            .iter()
            .any(|rs| rs.iter().any(|r| r.node == node))
    }

    /// Handles a room event.
    pub fn on_event(
        &mut self,
        ev: RoomEv,
        now: Nanos,
        mut rtt: RttSampler<'_>,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        match ev {
            RoomEv::Request { room } => self.request(room, now, sched),
            RoomEv::Acquire { node, room, token } => {
                self.acquire(node, room, token, now, &mut rtt, sched)
            }
            RoomEv::Loaded {
                node,
                room,
                token,
                ok,
            } => self.loaded(node, room, token, ok, now, sched),
            RoomEv::Retired { node, room, token } => {
                let before = self.running_count(room);
                let rs = &mut self.runners[room as usize];
                let Some(i) = rs.iter().position(|r| r.node == node && r.token == token) else {
                    return;
                };
                let handed = rs.remove(i).handing_off;
                self.became(room, before, now, sched);
                if handed && !self.dead[node as usize] {
                    self.retiring[node as usize] = self.retiring[node as usize].saturating_sub(1);
                    self.pump_retire(node, now, sched);
                    if let Some(to) = self.owner_in_view(node, room).filter(|t| *t != node) {
                        sched.push((now + rtt.max_of(1) / 2, RoomEv::HandOff { node: to, room }));
                    }
                }
            }
            RoomEv::HandOff { node, room } => {
                let n = node as usize;
                if self.dead[n] || self.runs(node, room) {
                    return;
                }
                if self.desired[n].contains(&room) {
                    self.queue[n].push_back(room);
                    self.pump(node, now, sched);
                } else {
                    // Its view has not caught up yet: start it when it does.
                    self.parked[n].insert(room);
                }
            }
        }
    }

    /// Whether every room runs exactly once, on the owner its node agrees it has.
    pub fn settled(&self) -> bool {
        self.unavailable == 0
            && self.runners.iter().all(|rs| rs.len() == 1)
            && self.queue.iter().all(VecDeque::is_empty)
            && self.retire_queue.iter().all(VecDeque::is_empty)
    }

    /// Checks the placement in force against `owner_among` for a sample of rooms (tests).
    pub fn agrees_with_owner_among(&self, owners: &[NodeId], sample: usize) -> bool {
        (0..self.runners.len().min(sample))
            .all(|r| self.ranking.owner(r, owners) == owner_among(owners, self.ranking.room_id(r)))
    }
}
