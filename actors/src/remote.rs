//! How rooms reach sessions on other nodes. Rooms and sessions never see QUIC: a room answers
//! a session through a [`Recipient`] (a local outbox, or a session on another node reached
//! through a [`Peer`]); account changes and user frames reach a user's sessions on every node.
//! What the directory needs from the cluster (who owns a room, forwarding) is
//! [`crate::cluster`], kept apart so that this module, which rooms use, needs nothing of them.

use std::fmt;
use std::sync::Arc;

use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, RoomDelivery};
use voiceflow_wire::v1::frame::Frame;

use crate::outbox::Outbox;

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
