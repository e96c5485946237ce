//! Today's membership, as the node runs it: every node sends every peer a heartbeat carrying
//! its whole member list every `heartbeat_interval`, and marks silent peers down after
//! `failure_timeout` (the node's `[cluster]` defaults: 500 ms and 3 s). The state machine is
//! the node's own `node/src/cluster/membership.rs`, compiled into the simulator unchanged;
//! this adapter only does what `node/src/cluster/mod.rs` does around it (send heartbeats on
//! a timer, hello on a new link, merge gossip, tick).

use std::sync::Arc;
use std::time::{Duration, Instant};

use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId, PeerMsg, encode};

use crate::engine::{MS, Member, Nanos, Outbox};

#[allow(dead_code)]
#[path = "../../node/src/cluster/membership.rs"]
mod core;

use core::{Change, Membership};
pub use core::{owner_among, weight};

/// Settings of the all-to-all membership.
#[derive(Debug, Clone)]
pub struct AllToAllConfig {
    /// `[cluster] heartbeat_interval_ms`.
    pub heartbeat: Nanos,
    /// `[cluster] failure_timeout_ms`.
    pub failure_timeout: Nanos,
}

impl Default for AllToAllConfig {
    fn default() -> Self {
        AllToAllConfig {
            heartbeat: 500 * MS,
            failure_timeout: 3000 * MS,
        }
    }
}

/// One heartbeat, shared by all its recipients (it is the same frame for every peer).
#[derive(Debug)]
pub struct Heartbeat {
    from: MemberInfo,
    members: Vec<MemberInfo>,
    /// Changes whenever the sender's list changes: merging the same list twice is a no-op,
    /// so a receiver merges a given list once (an exact shortcut that keeps N = 1,000
    /// affordable).
    generation: u64,
}

/// A frame on a control stream.
#[derive(Debug, Clone)]
pub enum Msg {
    /// First frame of a new link.
    Hello(MemberInfo),
    /// Periodic heartbeat with gossip.
    Heartbeat(Arc<Heartbeat>),
}

/// The member info of a simulated node.
pub fn info(id: NodeId) -> MemberInfo {
    MemberInfo {
        node_id: id,
        incarnation: 1,
        quic_addr: format!("10.0.{}.{}:4000", id / 250, id % 250),
        http_addr: format!("10.0.{}.{}:3000", id / 250, id % 250),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (
            voiceflow_wire::cluster::MIN_PROTOCOL_VERSION,
            voiceflow_wire::cluster::PROTOCOL_VERSION,
        ),
    }
}

/// One node running today's membership.
pub struct AllToAll {
    me: NodeId,
    cfg: AllToAllConfig,
    membership: Membership,
    base: Instant,
    /// Peers this node has a link to (it heartbeats all of them, as the node does).
    links: Vec<bool>,
    /// Last list generation merged, per sender.
    merged: Vec<u64>,
    last_list: Vec<MemberInfo>,
    heartbeat: Option<Arc<Heartbeat>>,
    /// The member list may have changed since the heartbeat was built (any non-empty
    /// `Change`; the simulator gossips no room or session counts, so nothing else changes it).
    dirty: bool,
    bytes: u32,
    view_changed: bool,
    /// Sends its heartbeats but runs no failure detection (it receives nothing: see
    /// `Engine::receivers`).
    pub passive: bool,
}

/// The heartbeat timer.
#[derive(Debug, Clone, Copy)]
pub struct Tick;

impl AllToAll {
    /// A node started at `now`.
    pub fn new(
        me: NodeId,
        capacity: usize,
        cfg: AllToAllConfig,
        base: Instant,
        now: Nanos,
    ) -> Self {
        let membership = Membership::new(
            info(me),
            Duration::from_nanos(cfg.failure_timeout),
            base + Duration::from_nanos(now),
        );
        AllToAll {
            me,
            cfg,
            membership,
            base,
            links: vec![false; capacity],
            merged: vec![u64::MAX; capacity],
            last_list: Vec::new(),
            heartbeat: None,
            dirty: true,
            bytes: 0,
            view_changed: true,
            passive: false,
        }
    }

    fn at(&self, now: Nanos) -> Instant {
        self.base + Duration::from_nanos(now)
    }

    /// Starts: links to `seeds` (hello first), and the heartbeat timer at `phase`.
    pub fn start(&mut self, seeds: &[NodeId], phase: Nanos, out: &mut Outbox<Self>) {
        let hello = Msg::Hello(self.membership.me());
        let bytes = encode(&PeerMsg::Hello(self.membership.me())).len() as u32;
        for s in seeds {
            if *s != self.me && !self.links[*s as usize] {
                self.links[*s as usize] = true;
                out.sends.push((*s, hello.clone(), bytes));
            }
        }
        out.timers.push((phase, Tick));
    }

    /// A formed cluster: this node already heard everyone in `all` at time 0.
    pub fn know_all(&mut self, all: &[NodeId]) {
        let now = self.at(0);
        for n in all {
            if *n != self.me {
                self.membership.heard(info(*n), now);
                self.links[*n as usize] = true;
            }
        }
        self.view_changed = true;
        self.dirty = true;
    }

    fn apply(&mut self, change: Change, out: &mut Outbox<Self>) {
        if change != Change::default() {
            self.dirty = true;
        }
        for info in change.dial {
            let n = info.node_id as usize;
            if info.node_id != self.me && n < self.links.len() && !self.links[n] {
                self.links[n] = true;
                let me = self.membership.me();
                let bytes = encode(&PeerMsg::Hello(me.clone())).len() as u32;
                out.sends.push((info.node_id, Msg::Hello(me), bytes));
            }
        }
        out.downs.extend(change.down.iter().copied());
        if change.placement || !change.down.is_empty() {
            self.view_changed = true;
        }
    }

    fn send_heartbeats(&mut self, out: &mut Outbox<Self>) {
        if self.dirty {
            self.dirty = false;
            let list = self.membership.list();
            if self.heartbeat.is_some() && list == self.last_list {
                self.last_list = list;
            } else {
                self.rebuild(list);
            }
        }
        let Some(hb) = self.heartbeat.clone() else {
            return;
        };
        for (peer, linked) in self.links.iter().enumerate() {
            if *linked {
                out.sends
                    .push((peer as NodeId, Msg::Heartbeat(hb.clone()), self.bytes));
            }
        }
    }

    fn rebuild(&mut self, list: Vec<MemberInfo>) {
        let generation = self.heartbeat.as_ref().map_or(0, |h| h.generation + 1);
        let from = self.membership.me();
        self.bytes = encode(&PeerMsg::Heartbeat {
            from: from.clone(),
            members: list.clone(),
        })
        .len() as u32;
        self.heartbeat = Some(Arc::new(Heartbeat {
            from,
            members: list.clone(),
            generation,
        }));
        self.last_list = list;
    }
}

impl Member for AllToAll {
    type Msg = Msg;
    type Timer = Tick;
    const RELIABLE: bool = true;

    fn id(&self) -> NodeId {
        self.me
    }

    fn on_timer(&mut self, _: Tick, now: Nanos, out: &mut Outbox<Self>) {
        self.send_heartbeats(out);
        if !self.passive {
            let change = self.membership.tick(self.at(now));
            self.apply(change, out);
        }
        out.timers.push((self.cfg.heartbeat, Tick));
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, now: Nanos, out: &mut Outbox<Self>) {
        let at = self.at(now);
        let change = match msg {
            Msg::Hello(info) => self.membership.heard(info, at),
            Msg::Heartbeat(hb) => {
                let mut change = self.membership.heard(hb.from.clone(), at);
                let slot = &mut self.merged[from as usize];
                if *slot != hb.generation {
                    *slot = hb.generation;
                    let gossip = self.membership.merge(&hb.members, at);
                    change.placement |= gossip.placement;
                    change.dial.extend(gossip.dial);
                    change.down.extend(gossip.down);
                }
                change
            }
        };
        self.apply(change, out);
    }

    fn owners(&self) -> Vec<NodeId> {
        self.membership.owners()
    }

    fn peers(&self) -> Vec<NodeId> {
        self.membership.peers().iter().map(|p| p.node_id).collect()
    }

    fn take_view_changed(&mut self) -> bool {
        std::mem::take(&mut self.view_changed)
    }

    fn settle_deadline(&self, write_timeout: Nanos) -> Option<Nanos> {
        self.membership
            .settle_deadline(Duration::from_nanos(write_timeout))
            .map(|t| t.saturating_duration_since(self.base).as_nanos() as Nanos)
    }

    fn begin_leave(&mut self, _now: Nanos, out: &mut Outbox<Self>) {
        let change = self.membership.set_leaving();
        self.apply(change, out);
        self.send_heartbeats(out);
    }

    fn finish_leave(&mut self, _now: Nanos, out: &mut Outbox<Self>) {
        self.membership.set_leaving();
        self.dirty = true;
        let mut me = self.membership.me();
        me.state = MemberState::Left;
        let hb = Arc::new(Heartbeat {
            from: me.clone(),
            members: vec![me.clone()],
            generation: u64::MAX - 1,
        });
        let bytes = encode(&PeerMsg::Heartbeat {
            from: me.clone(),
            members: vec![me],
        })
        .len() as u32;
        for (peer, linked) in self.links.iter().enumerate() {
            if *linked {
                out.sends
                    .push((peer as NodeId, Msg::Heartbeat(hb.clone()), bytes));
            }
        }
    }
}
