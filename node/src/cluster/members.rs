//! The membership a node runs (`cluster.membership`): all-to-all heartbeats
//! ([`Membership`]) or SWIM ([`Swim`]), behind one face for the rest of the cluster code.

use std::time::{Duration, Instant};

use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId};

use super::membership::{Change, Membership};
use super::swim::Swim;

/// The membership of this node.
pub enum Members {
    /// Every node heartbeats every other one.
    AllToAll(Membership),
    /// SWIM (foca) with the same fencing rules.
    Swim(Box<Swim>),
}

impl Members {
    /// This node's own entry.
    pub fn me(&self) -> MemberInfo {
        match self {
            Members::AllToAll(m) => m.me(),
            Members::Swim(s) => s.me(),
        }
    }

    /// Every member, this node included.
    pub fn list(&self) -> Vec<MemberInfo> {
        match self {
            Members::AllToAll(m) => m.list(),
            Members::Swim(s) => s.list(),
        }
    }

    /// Members worth talking to (alive, not this node).
    pub fn peers(&self) -> Vec<MemberInfo> {
        match self {
            Members::AllToAll(m) => m.peers(),
            Members::Swim(s) => s.peers(),
        }
    }

    /// A member's state.
    pub fn state_of(&self, node: NodeId) -> Option<MemberState> {
        match self {
            Members::AllToAll(m) => m.state_of(node),
            Members::Swim(s) => s.state_of(node),
        }
    }

    /// The nodes that own rooms now, or none without a quorum.
    pub fn owners(&self) -> Vec<NodeId> {
        match self {
            Members::AllToAll(m) => m.owners(),
            Members::Swim(s) => s.owners(),
        }
    }

    /// Whether this node may own rooms.
    pub fn serving(&self) -> bool {
        match self {
            Members::AllToAll(m) => m.serving(),
            Members::Swim(s) => s.serving(),
        }
    }

    /// Whether `node` may be dead (what is passed on to it now could be lost with it).
    pub fn is_silent(&self, node: NodeId, now: Instant) -> bool {
        match self {
            Members::AllToAll(m) => m.is_silent(node, now),
            Members::Swim(s) => s.is_silent(node),
        }
    }

    /// When rooms of recently failed nodes may start elsewhere.
    pub fn settle_deadline(&self, write_timeout: Duration) -> Option<Instant> {
        match self {
            Members::AllToAll(m) => m.settle_deadline(write_timeout),
            Members::Swim(s) => s.settle_deadline(write_timeout),
        }
    }

    /// How long a node that (re)gained a quorum owns nothing.
    pub fn catch_up(&self) -> Duration {
        match self {
            Members::AllToAll(m) => m.catch_up(),
            Members::Swim(s) => s.catch_up(),
        }
    }

    /// Updates the figures this node reports about itself.
    pub fn set_my_counts(&mut self, rooms: u32, sessions: u32) {
        match self {
            Members::AllToAll(m) => m.set_my_counts(rooms, sessions),
            Members::Swim(s) => s.set_my_counts(rooms, sessions),
        }
    }

    /// This node starts draining.
    pub fn set_leaving(&mut self, now: Instant) -> Change {
        match self {
            Members::AllToAll(m) => m.set_leaving(),
            Members::Swim(s) => s.set_leaving(now),
        }
    }

    /// A peer said hello (or, all-to-all, heartbeated).
    pub fn heard(&mut self, info: MemberInfo, now: Instant) -> Change {
        match self {
            Members::AllToAll(m) => m.heard(info, now),
            Members::Swim(s) => s.heard(info, now),
        }
    }

    /// When [`tick`](Self::tick) must run next.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        match self {
            Members::AllToAll(m) => m.next_deadline(now),
            Members::Swim(s) => s.next_deadline(now),
        }
    }

    /// Time passed: silent members, leases, timers.
    pub fn tick(&mut self, now: Instant) -> Change {
        match self {
            Members::AllToAll(m) => m.tick(now),
            Members::Swim(s) => s.tick(now),
        }
    }

    /// The all-to-all membership, if this node runs it.
    pub fn all_to_all(&mut self) -> Option<&mut Membership> {
        match self {
            Members::AllToAll(m) => Some(m),
            Members::Swim(_) => None,
        }
    }

    /// The SWIM membership, if this node runs it.
    pub fn swim(&mut self) -> Option<&mut Swim> {
        match self {
            Members::AllToAll(_) => None,
            Members::Swim(s) => Some(s),
        }
    }
}
