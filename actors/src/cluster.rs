//! The seam between the room directory and the cluster: the directory asks a [`Cluster`] who
//! owns a room ([`Owner`]) and hands it requests for rooms that live elsewhere. A node without
//! a cluster has none and runs every room itself. (How rooms reach sessions on other nodes is
//! [`crate::remote`].)

use async_trait::async_trait;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::v1::frame::Frame;

use crate::error::ActorError;
use crate::room::RoomMsg;

/// Who runs a room, as this node sees the cluster now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This node.
    Local,
    /// Another node.
    Remote(NodeId),
    /// Nobody may run it now (this node cannot see a majority of the cluster).
    Unavailable,
}

/// What the directory needs from the cluster.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> NodeId;
    /// Who owns `room` (rendezvous hashing over the live members).
    fn owner(&self, room: Snowflake) -> Owner;
    /// Whether there is a link to `node` to send on now.
    fn can_reach(&self, node: NodeId) -> bool;
    /// Sends a request to the room's actor on `node`.
    fn forward(&self, node: NodeId, room: Snowflake, msg: RoomMsg) -> Result<(), ActorError>;
    /// Called before this node starts `room`'s actor: returns once no other node runs it
    /// (each peer that did has finished what it acknowledged and stopped).
    async fn acquire(&self, room: Snowflake) -> Result<(), ActorError>;
    /// A room actor here crashed: sessions on other nodes that followed it must re-join.
    fn room_crashed(&self, room: Snowflake);
    /// Sends an op to the presence actor of `user` on `node`.
    fn presence(
        &self,
        node: NodeId,
        user: Snowflake,
        op: voiceflow_wire::cluster::PresenceOp,
    ) -> Result<(), ActorError>;
    /// Sends frames to every session of `user` on every other node.
    fn to_user(&self, user: Snowflake, frame: &Frame);
    /// Sends an account change to every other node, for the sessions of `user` there.
    fn for_user(&self, user: Snowflake, op: &voiceflow_wire::cluster::UserOp);
    /// Bounded hand-off: how many lost rooms this node retires at a time, and how many
    /// handed-off rooms it starts at a time (`cluster.handoff_batch`; 0: every lost room
    /// retires at once and its new owner starts it at its next request).
    fn handoff_batch(&self) -> usize;
    /// Bounded hand-off: tells `node`, the new owner of `room`, that this node stopped it
    /// (everything it acknowledged is written), so it starts it now.
    fn handed_off(&self, node: NodeId, room: Snowflake);
}

/// Who owns `id` (a room, or a user's presence) under `cluster`: this node without one.
pub fn owner_in(cluster: Option<&dyn Cluster>, id: Snowflake) -> Owner {
    match cluster {
        Some(cluster) => cluster.owner(id),
        None => Owner::Local,
    }
}
