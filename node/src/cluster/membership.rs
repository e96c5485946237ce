//! Who is in the cluster, who is alive, and who owns a room: pure logic, no sockets.
//!
//! Liveness is decided by each node from the heartbeats it receives directly; gossip (the
//! member lists inside heartbeats) only introduces nodes it has not met, newer incarnations
//! of restarted nodes, and graceful departures. Placement is rendezvous hashing over the
//! members this node sees Up, so nodes with the same view agree without a coordinator. A node
//! that cannot see a majority of the members (Down ones included) owns nothing: in a
//! partition only the majority side serves rooms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId};

/// One member as this node tracks it.
#[derive(Debug, Clone)]
struct Member {
    info: MemberInfo,
    last_heard: Instant,
}

/// What an update changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The set of room owners (or the quorum) changed: rooms must be rebalanced.
    pub placement: bool,
    /// Nodes to dial (newly known, or restarted).
    pub dial: Vec<MemberInfo>,
    /// Nodes that just went down (their sessions and calls are void).
    pub down: Vec<NodeId>,
}

impl Change {
    pub(super) fn merge(&mut self, other: Change) {
        self.placement |= other.placement;
        self.dial.extend(other.dial);
        self.down.extend(other.down);
    }
}

/// The membership view of one node.
#[derive(Debug)]
pub struct Membership {
    me: NodeId,
    members: BTreeMap<NodeId, Member>,
    failure_timeout: Duration,
    /// Fenced: this node has not heard from a majority within the lease (two thirds of the
    /// failure timeout). It owns nothing, and stops before the others (who wait the whole
    /// failure timeout) can take its rooms over.
    fenced: bool,
    /// Whether it served at the last update.
    was_serving: bool,
    /// Catching up after starting or regaining a quorum (a healed partition): the peers it
    /// has not heard (again) yet are missing or Down in its view, and an acquire asks only
    /// the members it sees alive, so a room it started now could still run on one of them
    /// (the simulator found both: `sim/`). It owns nothing until every reachable member had
    /// time to heartbeat it.
    catching_up_until: Option<Instant>,
}

/// Whether a member in `state` is counted alive (owns rooms or hands them off).
fn is_alive(state: MemberState) -> bool {
    matches!(state, MemberState::Up | MemberState::Leaving)
}

/// Rendezvous weight of `node` for `room`: highest wins.
pub fn weight(room: u64, node: NodeId) -> u64 {
    // splitmix64 of the pair: well mixed, identical on every node and build.
    let mut z = room ^ (u64::from(node).wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Membership {
    /// A view holding only this node.
    pub fn new(me: MemberInfo, failure_timeout: Duration, now: Instant) -> Self {
        let id = me.node_id;
        let mut members = BTreeMap::new();
        members.insert(
            id,
            Member {
                info: me,
                last_heard: now,
            },
        );
        Membership {
            me: id,
            members,
            failure_timeout,
            fenced: false,
            was_serving: true,
            // A node that just started knows only itself (or its seeds) until the first
            // heartbeats with member lists arrive: it catches up too.
            catching_up_until: Some(now + failure_timeout / 3),
        }
    }

    /// How long a node that regained a quorum waits before owning rooms again (a third of
    /// the failure timeout: every live peer heartbeats several times within it).
    pub fn catch_up(&self) -> Duration {
        self.failure_timeout / 3
    }

    /// Starts or ends catching up; returns whether owning rooms changed.
    fn review(&mut self, now: Instant) -> bool {
        let serving = !self.fenced && self.has_quorum();
        let mut changed = false;
        if serving && !self.was_serving {
            self.catching_up_until = Some(now + self.catch_up());
            changed = true;
        }
        if self.catching_up_until.is_some_and(|until| now >= until) {
            self.catching_up_until = None;
            changed = true;
        }
        self.was_serving = serving;
        changed
    }

    /// How recently a majority must have been heard for this node to own rooms.
    pub fn lease(&self) -> Duration {
        self.failure_timeout * 2 / 3
    }

    /// Re-checks the lease; returns whether being fenced changed.
    fn refresh_fence(&mut self, now: Instant) -> bool {
        let lease = self.lease();
        let (mut recent, mut total) = (0usize, 0usize);
        for m in self.members.values() {
            if m.info.state == MemberState::Left {
                continue;
            }
            total += 1;
            let alive = matches!(m.info.state, MemberState::Up | MemberState::Leaving);
            if m.info.node_id == self.me || (alive && now.duration_since(m.last_heard) < lease) {
                recent += 1;
            }
        }
        let fenced = recent * 2 <= total;
        let changed = fenced != self.fenced;
        self.fenced = fenced;
        changed
    }

    /// When rooms of recently failed nodes may start elsewhere: their last write may still
    /// be landing until `lease + write_timeout` after they were last heard (they fence
    /// themselves after the lease and start no write after that).
    pub fn settle_deadline(&self, write_timeout: Duration) -> Option<Instant> {
        self.members
            .values()
            .filter(|m| m.info.state == MemberState::Down)
            .map(|m| m.last_heard + self.lease() + write_timeout)
            .max()
    }

    /// This node's own entry.
    pub fn me(&self) -> MemberInfo {
        self.members
            .get(&self.me)
            .map(|m| m.info.clone())
            .unwrap_or_else(|| unreachable_me(self.me))
    }

    /// Updates the figures this node gossips about itself.
    pub fn set_my_counts(&mut self, rooms: u32, sessions: u32) {
        if let Some(m) = self.members.get_mut(&self.me) {
            m.info.rooms = rooms;
            m.info.sessions = sessions;
        }
    }

    /// This node starts draining: it owns nothing from now on.
    pub fn set_leaving(&mut self) -> Change {
        if let Some(m) = self.members.get_mut(&self.me) {
            m.info.state = MemberState::Leaving;
        }
        Change {
            placement: true,
            ..Change::default()
        }
    }

    /// Every member, this node included.
    pub fn list(&self) -> Vec<MemberInfo> {
        self.members.values().map(|m| m.info.clone()).collect()
    }

    /// Members worth talking to (alive, not this node).
    pub fn peers(&self) -> Vec<MemberInfo> {
        self.members
            .values()
            .filter(|m| m.info.node_id != self.me)
            .filter(|m| matches!(m.info.state, MemberState::Up | MemberState::Leaving))
            .map(|m| m.info.clone())
            .collect()
    }

    /// A member's state.
    pub fn state_of(&self, node: NodeId) -> Option<MemberState> {
        self.members.get(&node).map(|m| m.info.state)
    }

    /// Whether `node` has been silent for half the failure timeout: it may be dead, and
    /// whatever is passed on to it now could be lost with it.
    pub fn is_silent(&self, node: NodeId, now: Instant) -> bool {
        node != self.me
            && self
                .members
                .get(&node)
                .is_some_and(|m| now.duration_since(m.last_heard) >= self.failure_timeout / 2)
    }

    /// The nodes that own rooms now (Up), sorted, or empty without a quorum.
    pub fn owners(&self) -> Vec<NodeId> {
        if !self.serving() {
            return Vec::new();
        }
        self.members
            .values()
            .filter(|m| m.info.state == MemberState::Up)
            .map(|m| m.info.node_id)
            .collect()
    }

    /// Whether this node may own rooms: a majority alive and heard within the lease.
    pub fn serving(&self) -> bool {
        !self.fenced && self.has_quorum() && self.catching_up_until.is_none()
    }

    /// Whether this node sees a strict majority of the members alive.
    pub fn has_quorum(&self) -> bool {
        let counted = self
            .members
            .values()
            .filter(|m| m.info.state != MemberState::Left);
        let (mut alive, mut total) = (0usize, 0usize);
        for m in counted {
            total += 1;
            if matches!(m.info.state, MemberState::Up | MemberState::Leaving) {
                alive += 1;
            }
        }
        alive * 2 > total
    }

    /// A peer spoke to us directly (hello or heartbeat).
    pub fn heard(&mut self, info: MemberInfo, now: Instant) -> Change {
        if info.node_id == self.me {
            return Change::default();
        }
        let mut change = Change::default();
        match self.members.get_mut(&info.node_id) {
            Some(m) if m.info.incarnation > info.incarnation => return change,
            Some(m) => {
                let before = m.info.state;
                let restarted = m.info.incarnation < info.incarnation;
                // Within one incarnation, leaving is for good: a hello made before the node
                // started draining (on a stream opened late) must not bring it back.
                let state = match (before, info.state) {
                    (MemberState::Leaving | MemberState::Left, MemberState::Up) if !restarted => {
                        before
                    }
                    (MemberState::Left, MemberState::Leaving) if !restarted => before,
                    _ => info.state,
                };
                m.info = info.clone();
                m.info.state = state;
                m.last_heard = now;
                change.placement = before != m.info.state;
                if restarted {
                    change.dial.push(info);
                    change.placement = true;
                } else if !is_alive(before) && is_alive(state) {
                    // Known only as Down (hearsay, or it was cut off): there may be no link
                    // to it yet. Without one it never hears our heartbeats and declares us
                    // down while we count it up (a chaos run: a node restarted during a
                    // partition learned its peer from gossip as Down, never dialled it, and
                    // each side stayed wrong about the other until the run's bound).
                    change.dial.push(info);
                }
            }
            None => {
                change.placement = info.state == MemberState::Up;
                change.dial.push(info.clone());
                self.members.insert(
                    info.node_id,
                    Member {
                        info,
                        last_heard: now,
                    },
                );
            }
        }
        change.placement |= self.refresh_fence(now);
        change.placement |= self.review(now);
        change
    }

    /// Gossip: a peer's view of the members.
    pub fn merge(&mut self, members: &[MemberInfo], now: Instant) -> Change {
        let mut change = Change::default();
        for info in members {
            if info.node_id == self.me {
                continue;
            }
            match self.members.get_mut(&info.node_id) {
                None => {
                    // Hearsay: it proves itself with heartbeats within the failure timeout.
                    let state = match info.state {
                        MemberState::Up | MemberState::Leaving => info.state,
                        other => other,
                    };
                    change.placement |= state == MemberState::Up;
                    if matches!(state, MemberState::Up | MemberState::Leaving) {
                        change.dial.push(info.clone());
                    }
                    let mut info = info.clone();
                    info.state = state;
                    self.members.insert(
                        info.node_id,
                        Member {
                            info,
                            last_heard: now,
                        },
                    );
                }
                Some(m) if info.incarnation > m.info.incarnation => {
                    change.merge(self.heard(info.clone(), now));
                }
                Some(m)
                    if info.incarnation == m.info.incarnation
                        && info.state == MemberState::Left
                        && m.info.state != MemberState::Left =>
                {
                    change.placement |= m.info.state == MemberState::Up;
                    m.info.state = MemberState::Left;
                }
                Some(_) => {}
            }
        }
        change.placement |= self.review(now);
        change
    }

    /// The next instant at which [`tick`](Self::tick) could change something: a peer passing
    /// the failure timeout or the lease, or catching up ending. The heartbeat loop sleeps
    /// until then rather than to its next heartbeat, so a silent peer is declared down when
    /// its timeout passes, not up to one heartbeat interval later.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let lease = self.lease();
        let peers = self
            .members
            .values()
            .filter(|m| m.info.node_id != self.me && is_alive(m.info.state));
        peers
            .flat_map(|m| [m.last_heard + lease, m.last_heard + self.failure_timeout])
            .chain(self.catching_up_until)
            .filter(|at| *at > now)
            .min()
    }

    /// Marks silent members: Up → Down, Leaving → Left.
    pub fn tick(&mut self, now: Instant) -> Change {
        let mut change = Change::default();
        for m in self.members.values_mut() {
            if m.info.node_id == self.me || now.duration_since(m.last_heard) < self.failure_timeout
            {
                continue;
            }
            match m.info.state {
                MemberState::Up => {
                    m.info.state = MemberState::Down;
                    change.placement = true;
                    change.down.push(m.info.node_id);
                }
                MemberState::Leaving => {
                    m.info.state = MemberState::Left;
                    change.placement = true;
                    change.down.push(m.info.node_id);
                }
                MemberState::Down | MemberState::Left => {}
            }
        }
        change.placement |= self.refresh_fence(now);
        change.placement |= self.review(now);
        change
    }
}

/// The owner of `room` among `owners` (rendezvous hashing), if any. Rooms and users (their
/// presence actors) are placed by the same rule.
pub fn owner_among(owners: &[NodeId], room: u64) -> Option<NodeId> {
    owners
        .iter()
        .copied()
        .max_by_key(|n| (weight(room, *n), *n))
}

fn unreachable_me(me: NodeId) -> MemberInfo {
    MemberInfo {
        node_id: me,
        incarnation: 0,
        quic_addr: String::new(),
        http_addr: String::new(),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (0, 0),
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
