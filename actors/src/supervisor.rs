//! Supervisors. Room actors are linked to the room supervisor: when one crashes, its directory
//! entry is dropped so the next request restarts the room from storage, and the sessions that
//! were subscribed (they monitor the room) re-join and replay what they missed. Session actors
//! are linked to the session supervisor, which only logs and counts: a crashed session closes
//! its connection and the client reconnects.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::directory::RoomActors;

/// Messages to a supervisor. It acts only on supervision events.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Answers how many children crashed so far (for tests and metrics).
    CrashCount(ractor::RpcReplyPort<u64>),
}

/// What the supervisor watches.
#[derive(Clone)]
pub enum SupervisorKind {
    /// Room actors; crashed rooms are forgotten (and, in a cluster, announced to the peers).
    Rooms {
        /// The node's room actors.
        actors: Arc<RoomActors>,
        /// The cluster, if any.
        cluster: Option<Arc<dyn Cluster>>,
    },
    /// Session actors.
    Sessions,
}

/// A supervisor actor.
pub struct Supervisor;

/// Supervisor state.
pub struct SupervisorState {
    kind: SupervisorKind,
    crashes: u64,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorKind;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        kind: SupervisorKind,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState { kind, crashes: 0 })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::CrashCount(reply) => {
                let _ = reply.send(state.crashes);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match (&state.kind, event) {
            (
                SupervisorKind::Rooms { actors, cluster },
                SupervisionEvent::ActorFailed(cell, err),
            ) => {
                state.crashes += 1;
                let room = actors.forget_actor(cell.get_id());
                if let (Some(room), Some(cluster)) = (room, cluster) {
                    cluster.room_crashed(room);
                }
                tracing::error!(?room, error = %err, "room actor crashed; it restarts from storage on next use");
                metrics::counter!("voiceflow_actor_crashes_total", "kind" => "room").increment(1);
            }
            (
                SupervisorKind::Rooms { actors, .. },
                SupervisionEvent::ActorTerminated(cell, _, reason),
            ) => {
                if let Some(room) = actors.forget_actor(cell.get_id()) {
                    tracing::debug!(%room, ?reason, "room actor stopped");
                }
            }
            (SupervisorKind::Sessions, SupervisionEvent::ActorFailed(_, err)) => {
                state.crashes += 1;
                tracing::error!(error = %err, "session actor crashed; its connection is closed");
                metrics::counter!("voiceflow_actor_crashes_total", "kind" => "session")
                    .increment(1);
            }
            _ => {}
        }
        // Never escalate: one child's crash must not take its siblings down.
        Ok(())
    }
}
