//! Routing between nodes: local requests for rooms owned elsewhere become [`RoomOp`] frames
//! ([`ClusterInner::forward`]); peers' frames become room requests here, or deliveries to this
//! node's sessions (`inbound`). Releases make room moves strict: a node starts a room only
//! after every live peer confirmed it does not run it (any actor that did first finished what
//! it acknowledged), so a room never has two writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use voiceflow_actors::ActorError;
use voiceflow_actors::cluster::{Cluster, Owner};
use voiceflow_actors::room::RoomMsg;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{
    MemberState, NodeId, PeerMsg, PresenceOp, RoomDelivery, RoomOp, UserOp,
};
use voiceflow_wire::v1::frame::Frame;

use super::link::Lane;
use super::send::ACQUIRE_TIMEOUT;
use super::{ClusterInner, PendingRelease, membership, room_ops};

#[async_trait]
impl Cluster for ClusterInner {
    fn node_id(&self) -> NodeId {
        self.me
    }

    fn owner(&self, room: Snowflake) -> Owner {
        let owners = self.owners.read().clone();
        match membership::owner_among(&owners, room.0) {
            Some(n) if n == self.me => Owner::Local,
            Some(n) => Owner::Remote(n),
            None => Owner::Unavailable,
        }
    }

    fn can_reach(&self, node: NodeId) -> bool {
        self.link(node).is_some()
    }

    fn forward(&self, node: NodeId, room: Snowflake, msg: RoomMsg) -> Result<(), ActorError> {
        if self.link(node).is_none() {
            tracing::warn!(peer = node, %room, "no link to the room's owner");
            return Err(ActorError::Unavailable);
        }
        let (origin, op) = room_ops::to_op(self, node, room, msg)?;
        self.send_op(node, room, origin, 0, op);
        Ok(())
    }

    async fn acquire(&self, room: Snowflake) -> Result<(), ActorError> {
        let peers: Vec<NodeId> = self
            .membership
            .lock()
            .peers()
            .iter()
            .map(|p| p.node_id)
            .collect();
        // Rooms of a node that just failed start once it fenced itself (the lease): it starts
        // no write after that. A write it began before that and lands later is an older
        // ownership epoch's, which storage never lets replace or follow the new owner's
        // entries (storage-level fencing), so nobody waits for the CQL write timeout.
        let settle = self.membership.lock().settle_deadline(Duration::ZERO);
        if let Some(settle) = settle {
            let wait = settle.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        if peers.is_empty() {
            return Ok(());
        }
        let aborted = Arc::new(AtomicBool::new(false));
        self.acquiring.lock().insert(room, aborted.clone());
        let mut waiting = Vec::new();
        for node in peers {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
            self.releases
                .lock()
                .insert(call_id, PendingRelease { node, done: tx });
            self.send_op(node, room, self.me, 0, RoomOp::Release { call_id });
            waiting.push((node, call_id, rx));
        }
        let deadline = Instant::now() + ACQUIRE_TIMEOUT;
        let mut result = Ok(());
        for (node, call_id, mut rx) in waiting {
            let released = loop {
                let alive = matches!(
                    self.membership.lock().state_of(node),
                    Some(MemberState::Up | MemberState::Leaving)
                );
                if !alive {
                    break true;
                }
                match tokio::time::timeout(Duration::from_millis(50), &mut rx).await {
                    Ok(Ok(busy)) => break !busy,
                    Ok(Err(_)) => break true,
                    Err(_) if Instant::now() > deadline => break false,
                    Err(_) => continue,
                }
            };
            self.releases.lock().remove(&call_id);
            if !released {
                tracing::info!(peer = node, %room, "peer did not release the room; retry later");
                result = Err(ActorError::Unavailable);
            }
        }
        self.acquiring.lock().remove(&room);
        if aborted.load(Ordering::Acquire) {
            tracing::info!(%room, "a peer is starting the room too; backing off");
            return Err(ActorError::Unavailable);
        }
        result
    }

    fn presence(&self, node: NodeId, user: Snowflake, op: PresenceOp) -> Result<(), ActorError> {
        let link = self.link(node).ok_or(ActorError::Unavailable)?;
        link.send(Lane::Control, PeerMsg::ToPresence { user, op });
        Ok(())
    }

    fn to_user(&self, user: Snowflake, frame: &Frame) {
        let msg = PeerMsg::ToUser {
            user,
            frames: frame.wire_bytes().to_vec(),
        };
        for link in self.links.read().values() {
            link.handle.send(Lane::Control, msg.clone());
        }
    }

    fn for_user(&self, user: Snowflake, op: &UserOp) {
        let msg = PeerMsg::ForUser {
            user,
            op: op.clone(),
        };
        for link in self.links.read().values() {
            link.handle.send(Lane::Control, msg.clone());
        }
    }

    fn handoff_batch(&self) -> usize {
        self.handoff_batch
    }

    fn handed_off(&self, node: NodeId, room: Snowflake) {
        // On the room's lane: after everything the old actor sent about the room.
        if let Some(link) = self.link(node) {
            link.send(Lane::Room(room), PeerMsg::HandedOff { room });
        }
    }

    fn room_crashed(&self, room: Snowflake) {
        for link in self.links.read().values() {
            let delivery = RoomDelivery::Closed;
            link.handle
                .send(Lane::Room(room), PeerMsg::FromRoom { room, delivery });
        }
    }
}
