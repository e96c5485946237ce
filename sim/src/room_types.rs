//! The room model's settings, events and findings.

use voiceflow_wire::cluster::NodeId;

use crate::engine::{MS, Nanos, SEC};

/// How rooms that moved are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Today: at the next request for the room, no bound.
    OnDemand,
    /// Eagerly, at most this many at a time per node.
    Bounded(usize),
}

/// Settings of the room model.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// How long a storage write may take (`[scylla] request_timeout_ms`).
    pub write_timeout: Nanos,
    /// A retiring room finishes what it acknowledged in this long.
    pub retire: Nanos,
    /// Latency of loading a room from storage.
    pub load: Nanos,
    /// Loads storage serves per second, cluster-wide.
    pub storage_loads_per_sec: u64,
    /// A load queued longer than this fails.
    pub start_timeout: Nanos,
    /// Mean time between requests to a busy room.
    pub request_interval: Nanos,
    /// How moved rooms start.
    pub handoff: Handoff,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            write_timeout: 5 * SEC,
            retire: 20 * MS,
            load: 10 * MS,
            storage_loads_per_sec: 5_000,
            start_timeout: 5 * SEC,
            request_interval: SEC,
            handoff: Handoff::OnDemand,
        }
    }
}

/// A room event.
#[derive(Debug, Clone, Copy)]
pub enum RoomEv {
    /// A request for `room` arrives at a random node, which routes it to the owner in its
    /// view; an owner that agrees and does not run the room starts it.
    Request { room: u32 },
    /// The acquire of `room` by `node` may go on (peers answered, settle passed).
    Acquire { node: NodeId, room: u32, token: u32 },
    /// The load of `room` on `node` finished (or timed out).
    Loaded {
        node: NodeId,
        room: u32,
        token: u32,
        ok: bool,
    },
    /// `node`'s actor of `room` stopped.
    Retired { node: NodeId, room: u32, token: u32 },
    /// Bounded hand-off: the last owner retired `room` and tells `node` (its new owner) to
    /// start it.
    HandOff { node: NodeId, room: u32 },
}

/// A room found with two writers.
#[derive(Debug, Clone, Copy)]
pub struct Violation {
    /// When.
    pub at: Nanos,
    /// Which room.
    pub room: u32,
    /// The node that started it.
    pub started: NodeId,
    /// The node that still ran (or was finishing) it.
    pub other: NodeId,
}

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct RoomStats {
    /// Release requests sent by acquires (each answered).
    pub releases: u64,
    /// Loads started.
    pub loads: u64,
    /// Loads that timed out (retried later).
    pub failed_loads: u64,
    /// Acquires given up on (unanswered peers, or a competing start).
    pub failed_acquires: u64,
}
