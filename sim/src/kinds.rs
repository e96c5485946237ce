//! The two memberships behind one interface, so every scenario runs on both.

use std::time::Instant;

use voiceflow_wire::cluster::NodeId;

use crate::all_to_all::{AllToAll, AllToAllConfig};
use crate::engine::{Engine, Member, Nanos};
use crate::rng::{Draw, derive};
use crate::swim::{SwimConfig, SwimNode};

/// Which membership a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Today's heartbeats from every node to every node.
    AllToAll,
    /// SWIM (foca) with the quorum and lease fencing rules.
    Swim,
}

impl Kind {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AllToAll => "all-to-all",
            Kind::Swim => "swim",
        }
    }
}

/// Builds and starts nodes of one membership kind.
pub trait Build: Member {
    /// Membership messages per node per second, roughly (to size simulated windows).
    fn msgs_per_node_sec(n: usize) -> f64;
    /// A node of a formed cluster of the nodes in `all`.
    fn formed(eng: &mut Engine<Self>, id: NodeId, all: &[NodeId], seed: u64);
    /// Makes node `id` passive (sends, runs no failure detection) where that exists.
    fn set_passive(_eng: &mut Engine<Self>, _id: NodeId) {}
    /// A node joining through `seed_node`.
    fn join(eng: &mut Engine<Self>, id: NodeId, seed_node: NodeId, n: usize, seed: u64);
}

fn phase(seed: u64, id: NodeId, period: Nanos) -> Nanos {
    derive(seed, 0x100 + u64::from(id)).below(period).max(1)
}

/// One `Instant` for every node: the simulator's time 0.
fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Build for AllToAll {
    fn msgs_per_node_sec(n: usize) -> f64 {
        2.0 * n as f64
    }

    fn formed(eng: &mut Engine<Self>, id: NodeId, all: &[NodeId], seed: u64) {
        let cfg = AllToAllConfig::default();
        let p = phase(seed, id, cfg.heartbeat);
        let mut node = AllToAll::new(id, eng.nodes.len(), cfg, base(), eng.now);
        node.know_all(all);
        eng.add(node, |m, _, out| m.start(&[], p, out));
    }

    fn set_passive(eng: &mut Engine<Self>, id: NodeId) {
        if let Some(node) = eng.nodes[id as usize].as_mut() {
            node.passive = true;
        }
    }

    fn join(eng: &mut Engine<Self>, id: NodeId, seed_node: NodeId, _n: usize, seed: u64) {
        let cfg = AllToAllConfig::default();
        let p = phase(seed, id, cfg.heartbeat);
        let node = AllToAll::new(id, eng.nodes.len(), cfg, base(), eng.now);
        eng.add(node, |m, _, out| m.start(&[seed_node], p, out));
    }
}

impl Build for SwimNode {
    fn msgs_per_node_sec(_n: usize) -> f64 {
        20.0
    }

    fn formed(eng: &mut Engine<Self>, id: NodeId, all: &[NodeId], seed: u64) {
        let node = SwimNode::new(id, eng.nodes.len(), all.len(), SwimConfig::default(), seed);
        eng.add(node, |m, now, out| m.start(all, None, now, out));
    }

    fn join(eng: &mut Engine<Self>, id: NodeId, seed_node: NodeId, n: usize, seed: u64) {
        let node = SwimNode::new(id, eng.nodes.len(), n, SwimConfig::default(), seed);
        eng.add(node, |m, now, out| m.start(&[], Some(seed_node), now, out));
    }
}
