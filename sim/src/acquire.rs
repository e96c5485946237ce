//! Starting a room on its new owner: acquire (release by every live peer, settle deadline),
//! load from storage, and the two-writers check when it runs.

use voiceflow_wire::cluster::NodeId;

use crate::engine::{Nanos, RttSampler, SEC};
use crate::room_types::{RoomEv, Violation};
use crate::rooms::{Phase, Rooms, Runner};

impl Rooms {
    pub(crate) fn starting(&self, node: NodeId, room: u32, token: u32) -> bool {
        self.runners[room as usize]
            .iter()
            .any(|r| r.node == node && r.token == token && matches!(r.phase, Phase::Starting))
    }

    pub(crate) fn give_up(
        &mut self,
        node: NodeId,
        room: u32,
        token: u32,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        self.runners[room as usize].retain(|r| !(r.node == node && r.token == token));
        let n = node as usize;
        self.inflight[n] = self.inflight[n].saturating_sub(1);
        // Tried again at the room's next request.
        self.request_later(room, now, sched);
        self.pump(node, now, sched);
    }

    pub(crate) fn acquire(
        &mut self,
        node: NodeId,
        room: u32,
        token: u32,
        now: Nanos,
        rtt: &mut RttSampler<'_>,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        if !self.starting(node, room, token) {
            return;
        }
        let n = node as usize;
        let peers = self.peer_mask[n].iter().filter(|p| **p).count();
        // Every live peer is asked to release the room; the slowest answer decides.
        self.stats.releases += peers as u64;
        let mut ready = now + rtt.max_of(peers.min(64));
        let retire = self.cfg.retire;
        let mut blocked = false;
        let others: Vec<Runner> = self.runners[room as usize]
            .iter()
            .filter(|r| r.node != node)
            .copied()
            .collect();
        for other in others {
            if !self.peer_mask[n][other.node as usize] {
                // Down in this node's view: the settle deadline covered its writes.
                continue;
            }
            if self.dead[other.node as usize] {
                blocked = true;
                continue;
            }
            match other.phase {
                Phase::Running => {
                    let before = self.running_count(room);
                    let t = self.token();
                    if let Some(r) = self.runners[room as usize]
                        .iter_mut()
                        .find(|r| r.node == other.node)
                    {
                        r.phase = Phase::Retiring;
                        r.token = t;
                    }
                    sched.push((
                        now + retire,
                        RoomEv::Retired {
                            node: other.node,
                            room,
                            token: t,
                        },
                    ));
                    self.became(room, before, now, sched);
                    ready = ready.max(now + retire + rtt.max_of(1));
                }
                Phase::Retiring => ready = ready.max(now + retire + rtt.max_of(1)),
                // The peer is starting it too: it answers busy, and this acquire backs off.
                Phase::Starting => blocked = true,
            }
        }
        if blocked {
            self.stats.failed_acquires += 1;
            self.give_up(node, room, token, now, sched);
            return;
        }
        if self.runners[room as usize].iter().any(|r| {
            r.node != node && r.phase == Phase::Retiring && self.peer_mask[n][r.node as usize]
        }) {
            // Answer comes once the retiring actor stopped: check again then.
            sched.push((ready, RoomEv::Acquire { node, room, token }));
            return;
        }
        // Load from storage.
        self.stats.loads += 1;
        let per_load = SEC / self.cfg.storage_loads_per_sec.max(1);
        let begin = ready.max(self.storage_free);
        self.storage_free = begin + per_load;
        if begin - ready > self.cfg.start_timeout {
            self.stats.failed_loads += 1;
            sched.push((
                ready + self.cfg.start_timeout,
                RoomEv::Loaded {
                    node,
                    room,
                    token,
                    ok: false,
                },
            ));
        } else {
            sched.push((
                begin + self.cfg.load,
                RoomEv::Loaded {
                    node,
                    room,
                    token,
                    ok: true,
                },
            ));
        }
    }

    pub(crate) fn loaded(
        &mut self,
        node: NodeId,
        room: u32,
        token: u32,
        ok: bool,
        now: Nanos,
        sched: &mut Vec<(Nanos, RoomEv)>,
    ) {
        if !self.starting(node, room, token) {
            return;
        }
        if !ok {
            self.give_up(node, room, token, now, sched);
            return;
        }
        let n = node as usize;
        self.inflight[n] = self.inflight[n].saturating_sub(1);
        let before = self.running_count(room);
        for other in self.runners[room as usize]
            .iter()
            .filter(|r| r.node != node)
        {
            if matches!(other.phase, Phase::Running | Phase::Retiring) {
                self.violations.push(Violation {
                    at: now,
                    room,
                    started: node,
                    other: other.node,
                });
            }
        }
        if let Some(r) = self.runners[room as usize]
            .iter_mut()
            .find(|r| r.node == node && r.token == token)
        {
            r.phase = Phase::Running;
        }
        self.became(room, before, now, sched);
        if !self.desired[n].contains(&room) {
            self.retire(node, room, false, now, sched);
        }
        self.pump(node, now, sched);
    }
}
