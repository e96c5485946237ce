//! Bounded hand-off (`cluster.handoff_batch`): when placement moves rooms away from this
//! node, it retires them at most `batch` at a time (each finishes what it acknowledged and
//! stops) and, as each stops, tells its new owner, which starts it at once, also at most
//! `batch` at a time. So a membership change that moves thousands of rooms neither stops
//! them all in one burst nor leaves them down until their next request (the simulator's
//! `Handoff::Bounded`, sim/src/rooms.rs). A room still queued here keeps serving its
//! requests the way any room does while placement moves: a request reaching its new owner
//! first makes it acquire the room, and the release stops it here at once (outside the
//! bound). A node without a quorum (fenced) still stops everything at once (`rebalance`).
//! A notice that arrives before this node's own view gives it the room (it is still catching
//! up after its start, or the change has not reached it yet) is parked and acted on at the
//! next placement change, for [`PARK_FOR`] at most.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use voiceflow_wire::Snowflake;

use super::{CALL_TIMEOUT, RoomDirectory};
use crate::cluster::Owner;
use crate::room::RoomMsg;

/// How long a notice waits for this node's view to give it the room.
const PARK_FOR: Duration = Duration::from_secs(30);

/// The two queues of the bounded hand-off.
#[derive(Default)]
pub(super) struct Handoffs {
    /// Lost rooms waiting to retire, and how many are retiring now.
    retire: VecDeque<Snowflake>,
    retire_queued: HashSet<Snowflake>,
    retiring: usize,
    /// Rooms handed over to this node waiting to start, and how many are starting now.
    start: VecDeque<Snowflake>,
    start_queued: HashSet<Snowflake>,
    starting: usize,
    /// Notices for rooms this node's view did not give it yet, and when each came.
    parked: HashMap<Snowflake, Instant>,
}

impl RoomDirectory {
    /// The bound (0: no bounded hand-off).
    pub(super) fn handoff_batch(&self) -> usize {
        self.cluster().map_or(0, |c| c.handoff_batch())
    }

    /// Queues lost rooms for retirement and starts as many as the bound allows.
    pub(super) fn queue_retire(&self, rooms: Vec<Snowflake>) {
        {
            let mut h = self.0.handoffs.lock();
            for room in rooms {
                if h.retire_queued.insert(room) {
                    h.retire.push_back(room);
                }
            }
        }
        self.pump_retire();
    }

    fn pump_retire(&self) {
        let batch = self.handoff_batch().max(1);
        loop {
            let room = {
                let mut h = self.0.handoffs.lock();
                if h.retiring >= batch {
                    return;
                }
                let Some(room) = h.retire.pop_front() else {
                    return;
                };
                h.retire_queued.remove(&room);
                h.retiring += 1;
                room
            };
            let dir = self.clone();
            tokio::spawn(async move {
                dir.hand_off(room).await;
                dir.0.handoffs.lock().retiring -= 1;
                dir.pump_retire();
            });
        }
    }

    /// Retires `room` if it still runs here and belongs elsewhere, then tells its owner.
    async fn hand_off(&self, room: Snowflake) {
        let Owner::Remote(_) = self.owner(room) else {
            // Placement moved back, or this node is fenced (rebalance stopped everything).
            return;
        };
        let Some(actor) = self.running(room) else {
            // Already stopped: its new owner acquired it (a request reached it first).
            return;
        };
        let _ = actor.cast(RoomMsg::Retire);
        let _ = actor.get_cell().wait(Some(CALL_TIMEOUT)).await;
        self.wait_retired(room, CALL_TIMEOUT).await;
        metrics::counter!("voiceflow_rooms_handed_off_total").increment(1);
        if let (Some(cluster), Owner::Remote(node)) = (self.cluster(), self.owner(room)) {
            cluster.handed_off(node, room);
        }
    }

    /// A peer stopped `room`, which placement gives this node: start it soon (bounded).
    pub fn handed_over(&self, room: Snowflake) {
        {
            let mut h = self.0.handoffs.lock();
            if h.start_queued.insert(room) {
                h.start.push_back(room);
            }
        }
        self.pump_start();
    }

    fn pump_start(&self) {
        let batch = self.handoff_batch().max(1);
        loop {
            let room = {
                let mut h = self.0.handoffs.lock();
                if h.starting >= batch {
                    return;
                }
                let Some(room) = h.start.pop_front() else {
                    return;
                };
                h.start_queued.remove(&room);
                h.starting += 1;
                room
            };
            let dir = self.clone();
            tokio::spawn(async move {
                if dir.owner(room) != Owner::Local {
                    // Not this node's yet in its own view: wait for the placement change.
                    dir.0.handoffs.lock().parked.insert(room, Instant::now());
                } else if dir.running(room).is_none() {
                    match dir.get_or_start(room).await {
                        Ok(_) => metrics::counter!("voiceflow_rooms_taken_over_total").increment(1),
                        // It starts at its next request, as without the hand-off.
                        Err(e) => tracing::debug!(%room, error = %e, "handed-off room not started"),
                    }
                }
                dir.0.handoffs.lock().starting -= 1;
                dir.pump_start();
            });
        }
    }

    /// Placement changed: parked notices of rooms now this node's are started (bounded);
    /// those older than [`PARK_FOR`] are forgotten (their rooms start at their next request).
    pub(super) fn unpark(&self) {
        let ready: Vec<Snowflake> = {
            let mut h = self.0.handoffs.lock();
            h.parked.retain(|_, at| at.elapsed() < PARK_FOR);
            let ready: Vec<Snowflake> = h
                .parked
                .keys()
                .copied()
                .filter(|room| self.owner(*room) == Owner::Local)
                .collect();
            for room in &ready {
                h.parked.remove(room);
            }
            ready
        };
        for room in ready {
            self.handed_over(room);
        }
    }
}
