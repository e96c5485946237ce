//! Sending to peers, shared by the router (this node's requests) and the inbound side (peers'
//! requests passed on, answers): links are reached through [`ClusterInner::link`], so neither
//! side depends on the other.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voiceflow_actors::ActorError;
use voiceflow_actors::remote::Peer;
use voiceflow_wire::cluster::room::CallAnswer;
use voiceflow_wire::cluster::{NodeId, PeerMsg, RoomDelivery, RoomOp};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::link::Lane;
use super::{ClusterInner, PendingCall};

/// Most times a request is passed on between nodes whose views disagree.
pub(super) const MAX_HOPS: u8 = 3;
/// How long a node waits for its peers to release a room.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a call answered by a peer runs with the answer.
pub(super) type CallDone = Box<dyn FnOnce(Result<CallAnswer, ErrorBody>) + Send>;

/// The body of "unavailable, retry".
pub(super) fn unavailable_body() -> ErrorBody {
    ActorError::Unavailable.to_body()
}

/// Another node, as rooms hold it: deliveries go through whatever link to it is current.
pub struct NodeRef {
    node: NodeId,
    cluster: Arc<ClusterInner>,
}

impl Peer for NodeRef {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn deliver(&self, room: Snowflake, delivery: RoomDelivery) {
        self.cluster.send_delivery(self.node, room, delivery);
    }
}

impl ClusterInner {
    pub(super) fn node_ref(self: &Arc<Self>, node: NodeId) -> Arc<dyn Peer> {
        Arc::new(NodeRef {
            node,
            cluster: self.clone(),
        })
    }

    /// A request for `room` to `node` (its owner, as this node sees it).
    pub(super) fn send_op(
        &self,
        node: NodeId,
        room: Snowflake,
        origin: NodeId,
        hops: u8,
        op: RoomOp,
    ) {
        if let Some(link) = self.link(node) {
            let msg = PeerMsg::ToRoom {
                room,
                origin,
                hops,
                op,
            };
            link.send(Lane::Room(room), msg);
        }
    }

    /// Something from `room` (owned here) for `node`'s sessions.
    pub(super) fn send_delivery(&self, node: NodeId, room: Snowflake, delivery: RoomDelivery) {
        if let Some(link) = self.link(node) {
            link.send(Lane::Room(room), PeerMsg::FromRoom { room, delivery });
        }
    }

    /// Registers a call to `node`; its answer (or its failure) runs `done`.
    pub(super) fn register_call(&self, node: NodeId, done: CallDone) -> u64 {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().insert(
            id,
            PendingCall {
                node,
                started: Instant::now(),
                done,
            },
        );
        id
    }
}
