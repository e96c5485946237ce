//! The seam between the actors and the cluster. Rooms and sessions never see QUIC: a room
//! answers a session through a [`Recipient`] (a local outbox, or a session on another node
//! reached through a [`Peer`]), and the directory asks a [`Cluster`] who owns a room and hands
//! it requests for rooms that live elsewhere. A node without a cluster has neither and runs
//! every room itself.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, RoomDelivery};
use voiceflow_wire::v1::frame::Frame;

use crate::error::ActorError;
use crate::outbox::Outbox;
use crate::room::RoomMsg;

/// Another node, as a room sees it: somewhere to send deliveries for that node's sessions.
pub trait Peer: Send + Sync {
    /// The node's id.
    fn node_id(&self) -> NodeId;
    /// Sends `delivery` for `room`, in order with everything else this room sent that node.
    fn deliver(&self, room: Snowflake, delivery: RoomDelivery);
}

impl fmt::Debug for dyn Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Peer({})", self.node_id())
    }
}

/// A session on another node, subscribed to (or answered by) one room.
#[derive(Clone, Debug)]
pub struct RemoteSession {
    /// The session's node.
    pub peer: Arc<dyn Peer>,
    /// The session (cluster-unique id).
    pub session_id: u64,
    /// The room talking to it.
    pub room: Snowflake,
}

/// Where a room sends a session's frames.
#[derive(Clone, Debug)]
pub enum Recipient {
    /// A session on this node.
    Local(Outbox),
    /// A session on another node.
    Remote(RemoteSession),
}

impl Recipient {
    /// One frame for this session.
    pub fn push(&self, frame: Frame) {
        match self {
            Recipient::Local(outbox) => {
                outbox.push(frame);
            }
            Recipient::Remote(r) => r.peer.deliver(
                r.room,
                RoomDelivery::ToSession {
                    session_id: r.session_id,
                    last: None,
                    frames: frame.wire_bytes().to_vec(),
                },
            ),
        }
    }

    /// Logged events of `room` up to seq `last` (the session's resume point moves there).
    pub fn push_room_messages(&self, room: Snowflake, last: u64, frames: &[Frame]) {
        match self {
            Recipient::Local(outbox) => {
                outbox.push_room_messages(room, last, frames);
            }
            Recipient::Remote(r) => r.peer.deliver(
                r.room,
                RoomDelivery::ToSession {
                    session_id: r.session_id,
                    last: Some(last),
                    frames: Frame::concat(frames).wire_bytes().to_vec(),
                },
            ),
        }
    }

    /// The session stops receiving `room` (and will not re-join it by itself).
    pub fn forget_room(&self, room: Snowflake) {
        match self {
            Recipient::Local(outbox) => outbox.forget_room(room),
            Recipient::Remote(r) => r.peer.deliver(
                r.room,
                RoomDelivery::Forget {
                    session_id: r.session_id,
                },
            ),
        }
    }

    /// The room added the session to its live set: from now on fan-outs include it.
    pub fn subscribed(&self) {
        if let Recipient::Remote(r) = self {
            r.peer.deliver(
                r.room,
                RoomDelivery::Subscribed {
                    session_id: r.session_id,
                },
            );
        }
    }

    /// The node of a remote session.
    pub fn remote_peer(&self) -> Option<&Arc<dyn Peer>> {
        match self {
            Recipient::Local(_) => None,
            Recipient::Remote(r) => Some(&r.peer),
        }
    }
}

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
}

/// Frames for every session of `user`, wherever in the cluster they are connected.
pub fn notify_user(ctx: &crate::NodeContext, user: Snowflake, frame: &Frame) {
    ctx.sessions.to_user(user, frame);
    if let Some(cluster) = ctx.directory.cluster() {
        cluster.to_user(user, frame);
    }
}

/// An account change (rename, revoked sign-in) for every session of `user`, wherever in the
/// cluster they are connected: this node's at once, other nodes' over their control lanes.
pub fn account_changed(
    ctx: &crate::NodeContext,
    user: Snowflake,
    op: &voiceflow_wire::cluster::UserOp,
) {
    ctx.sessions.for_user(user, op);
    if let Some(cluster) = ctx.directory.cluster() {
        cluster.for_user(user, op);
    }
}
