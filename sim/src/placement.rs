//! Placement: which node owns each room, by the node's rendezvous hashing (`owner_among`).
//!
//! Computing an owner is O(N) per room; with 1,000 nodes and 100,000 rooms, re-placing every
//! room on every view change of every node would be too slow. So each room keeps its top K
//! nodes by the same weight: its owner among any set is the first of those in the set, and
//! `owner_among` decides only when none is (never seen in practice; tests check agreement).

use voiceflow_wire::cluster::NodeId;

// The same weight and owner rule the node uses (`node/src/cluster/membership.rs`).
use crate::all_to_all::{owner_among, weight};
use crate::rng::{Draw, derive};

/// Candidates kept per room.
pub const TOP_K: usize = 16;

/// The top-K candidates of every room, and the reverse index.
pub struct Ranking {
    ids: Vec<u64>,
    k: usize,
    top: Vec<NodeId>,
    by_node: Vec<Vec<(u32, u8)>>,
}

impl Ranking {
    /// Rooms with ids drawn from `seed`, ranked over nodes `0..capacity`.
    pub fn new(rooms: usize, capacity: usize, seed: u64) -> Self {
        let mut rng = derive(seed, 0x200);
        let ids: Vec<u64> = (0..rooms)
            .map(|_| (rng.unit() * (1u64 << 53) as f64) as u64 * 2048 + rng.below(2048))
            .collect();
        let k = TOP_K.min(capacity);
        let mut top = Vec::with_capacity(rooms * k);
        let mut by_node = vec![Vec::new(); capacity];
        let mut best: Vec<(u64, NodeId)> = Vec::with_capacity(k + 1);
        for (room, id) in ids.iter().enumerate() {
            best.clear();
            for node in 0..capacity as NodeId {
                let key = (weight(*id, node), node);
                if best.len() < k || key > best[best.len() - 1] {
                    let at = best.partition_point(|b| *b > key);
                    best.insert(at, key);
                    best.truncate(k);
                }
            }
            for (rank, (_, node)) in best.iter().enumerate() {
                top.push(*node);
                by_node[*node as usize].push((room as u32, rank as u8));
            }
        }
        Ranking {
            ids,
            k,
            top,
            by_node,
        }
    }

    /// The id of room `room`.
    pub fn room_id(&self, room: usize) -> u64 {
        self.ids[room]
    }

    /// The room's candidates, best first.
    pub fn top(&self, room: usize) -> &[NodeId] {
        &self.top[room * self.k..(room + 1) * self.k]
    }

    /// The rooms `node` is a candidate for, with its rank.
    pub fn candidates(&self, node: NodeId) -> &[(u32, u8)] {
        &self.by_node[node as usize]
    }

    /// The owner of `room` among `owners` (sorted).
    pub fn owner(&self, room: usize, owners: &[NodeId]) -> Option<NodeId> {
        self.top(room)
            .iter()
            .copied()
            .find(|n| owners.binary_search(n).is_ok())
            .or_else(|| owner_among(owners, self.ids[room]))
    }
}

/// The placement figures for one cluster size.
#[derive(Debug, Clone)]
pub struct PlacementRow {
    /// Nodes.
    pub nodes: usize,
    /// Fraction of rooms that moved when one node joined.
    pub moved_join: f64,
    /// Fraction of rooms that moved when one node left.
    pub moved_leave: f64,
    /// Whether every moved room moved to the joiner / from the leaver.
    pub minimal: bool,
    /// Most rooms on one node over the mean.
    pub max_over_mean: f64,
    /// Fewest rooms on one node over the mean.
    pub min_over_mean: f64,
}

/// Placement of `ranking`'s rooms over `n` nodes, one joining, one leaving.
pub fn placement(ranking: &Ranking, n: usize, seed: u64) -> PlacementRow {
    let owners: Vec<NodeId> = (0..n as NodeId).collect();
    let joined: Vec<NodeId> = (0..=n as NodeId).collect();
    let leaver = derive(seed, 0x300 + n as u64).below(n as u64) as NodeId;
    let left: Vec<NodeId> = owners.iter().copied().filter(|o| *o != leaver).collect();
    let rooms = ranking.ids.len();
    let (mut moved_join, mut moved_leave, mut minimal) = (0usize, 0usize, true);
    let mut load = vec![0usize; n];
    for room in 0..rooms {
        let before = ranking.owner(room, &owners);
        if let Some(b) = before {
            load[b as usize] += 1;
        }
        let after_join = ranking.owner(room, &joined);
        if after_join != before {
            moved_join += 1;
            minimal &= after_join == Some(n as NodeId);
        }
        let after_leave = ranking.owner(room, &left);
        if after_leave != before {
            moved_leave += 1;
            minimal &= before == Some(leaver);
        }
    }
    let mean = rooms as f64 / n as f64;
    PlacementRow {
        nodes: n,
        moved_join: moved_join as f64 / rooms as f64,
        moved_leave: moved_leave as f64 / rooms as f64,
        minimal,
        max_over_mean: load.iter().copied().max().unwrap_or(0) as f64 / mean,
        min_over_mean: load.iter().copied().min().unwrap_or(0) as f64 / mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_agrees_with_owner_among() {
        let r = Ranking::new(2000, 40, 3);
        for owners in [
            (0..40).collect::<Vec<NodeId>>(),
            (0..40).filter(|n| n % 3 != 0).collect(),
            vec![5, 17],
        ] {
            for room in 0..2000 {
                assert_eq!(
                    r.owner(room, &owners),
                    owner_among(&owners, r.room_id(room))
                );
            }
        }
        let row = placement(&r, 39, 3);
        assert!(row.minimal);
        assert!((row.moved_join - 1.0 / 40.0).abs() < 0.015, "{row:?}");
    }
}
