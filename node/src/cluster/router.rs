//! Routing between nodes: local requests for rooms owned elsewhere become [`RoomOp`] frames
//! ([`ClusterInner::forward`]); peers' frames become room requests here, or deliveries to this
//! node's sessions (`inbound`). Releases make room moves strict: a node starts a room only
//! after every live peer confirmed it does not run it (any actor that did first finished what
//! it acknowledged), so a room never has two writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ractor::RpcReplyPort;
use voiceflow_actors::ActorError;
use voiceflow_actors::remote::{Cluster, Owner, Peer, Recipient};
use voiceflow_actors::room::{Reply, RoomMsg};
use voiceflow_wire::cluster::room::{CallAnswer, FromAnswer};
use voiceflow_wire::cluster::{
    MemberState, NodeId, PeerMsg, PresenceOp, RoomCall, RoomDelivery, RoomOp, UserOp,
};
use voiceflow_wire::v1::frame::Frame;
use voiceflow_wire::{ErrorBody, Snowflake};

use super::link::Lane;
use super::{ClusterInner, PendingCall, PendingRelease, membership};

/// Most times a request is passed on between nodes whose views disagree.
pub(super) const MAX_HOPS: u8 = 3;
/// How long a node waits for its peers to release a room.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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
        if let Some(link) = self.cluster.link(self.node) {
            link.send(Lane::Room(room), &PeerMsg::FromRoom { room, delivery });
        }
    }
}

/// What a call answered by a peer runs with the answer.
pub(super) type CallDone = Box<dyn FnOnce(Result<CallAnswer, ErrorBody>) + Send>;

/// The body of "unavailable, retry".
pub fn unavailable_body() -> ErrorBody {
    ActorError::Unavailable.to_body()
}

/// Sends a peer's answer to a typed reply port (an answer of another kind than the call
/// names: unavailable).
fn answer<T: FromAnswer + Send + 'static>(port: RpcReplyPort<Result<T, ActorError>>) -> CallDone {
    Box::new(move |result| {
        let value = match result {
            Ok(answer) => T::from_answer(answer).ok_or(ActorError::Unavailable),
            Err(body) => Err(ActorError::Client(body)),
        };
        let _ = port.send(value);
    })
}

impl ClusterInner {
    pub(super) fn node_ref(self: &Arc<Self>, node: NodeId) -> Arc<dyn Peer> {
        Arc::new(NodeRef {
            node,
            cluster: self.clone(),
        })
    }

    pub(super) fn send_op(
        &self,
        node: NodeId,
        room: Snowflake,
        origin: NodeId,
        hops: u8,
        op: RoomOp,
    ) {
        if let Some(link) = self.link(node) {
            link.send(
                Lane::Room(room),
                &PeerMsg::ToRoom {
                    room,
                    origin,
                    hops,
                    op,
                },
            );
        }
    }

    fn register_call(&self, node: NodeId, done: CallDone) -> u64 {
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

/// Where a session's answers go: its node (this one, or the one it came from).
fn origin_of(me: NodeId, to: &Recipient) -> NodeId {
    match to {
        Recipient::Local(_) => me,
        Recipient::Remote(r) => r.peer.node_id(),
    }
}

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
        let me = self.me;
        let (origin, op) = match msg {
            RoomMsg::Join {
                session,
                since,
                epoch,
                members,
                reply,
            } => {
                let origin = origin_of(me, &session.to);
                if origin == me
                    && let Some(ctx) = self.ctx()
                {
                    ctx.sessions.follow(room, node, session.session_id);
                }
                let req_id = match reply {
                    Reply::Session { req_id, .. } => req_id,
                    Reply::Port(_) => None,
                };
                let op = RoomOp::Join {
                    session_id: session.session_id,
                    user_id: session.user_id,
                    username: session.username,
                    since,
                    epoch,
                    members,
                    req_id,
                };
                (origin, op)
            }
            RoomMsg::Leave {
                session_id,
                user_id,
                reply,
            } => {
                let (origin, req_id) = match &reply {
                    Some(Reply::Session { to, req_id, .. }) => (origin_of(me, to), *req_id),
                    _ => (me, None),
                };
                let op = RoomOp::Leave {
                    session_id,
                    user_id,
                    req_id,
                };
                (origin, op)
            }
            RoomMsg::Post {
                author,
                post,
                reply,
            } => {
                let Reply::Session {
                    to,
                    session_id,
                    req_id,
                } = reply
                else {
                    return Err(ActorError::Unavailable);
                };
                let op = RoomOp::Post {
                    session_id,
                    user_id: author.user_id,
                    username: author.username,
                    post,
                    req_id,
                };
                (origin_of(me, &to), op)
            }
            RoomMsg::Act {
                author,
                action,
                reply,
            } => {
                let Reply::Session {
                    to,
                    session_id,
                    req_id,
                } = reply
                else {
                    return Err(ActorError::Unavailable);
                };
                let op = RoomOp::Act {
                    session_id,
                    user_id: author.user_id,
                    username: author.username,
                    action,
                    req_id,
                };
                (origin_of(me, &to), op)
            }
            RoomMsg::Voice { session, op, reply } => {
                let req_id = match reply {
                    Reply::Session { req_id, .. } => req_id,
                    Reply::Port(_) => None,
                };
                let op = RoomOp::Voice {
                    session_id: session.session_id,
                    user_id: session.user_id,
                    username: session.username,
                    op,
                    req_id,
                };
                (origin_of(me, &session.to), op)
            }
            RoomMsg::Presence(note) => (
                me,
                RoomOp::Presence {
                    user_id: note.user_id,
                    status: note.status,
                    last_seen: note.last_seen,
                    version: note.version,
                    source: note.source,
                },
            ),
            RoomMsg::Typing {
                session_id,
                user_id,
                start,
                reply,
            } => {
                let (origin, req_id) = match &reply {
                    Some(Reply::Session { to, req_id, .. }) => (origin_of(me, to), *req_id),
                    _ => (me, None),
                };
                let op = RoomOp::Typing {
                    session_id,
                    user_id,
                    start,
                    req_id,
                };
                (origin, op)
            }
            RoomMsg::Renamed { user_id, username } => (me, RoomOp::Renamed { user_id, username }),
            RoomMsg::AddMember { author, reply } => {
                let call = RoomCall::AddMember {
                    user_id: author.user_id,
                    username: author.username,
                };
                (me, self.call_op(node, call, answer(reply)))
            }
            RoomMsg::RemoveMember {
                user_id,
                removed_by,
                reply,
            } => {
                let call = RoomCall::RemoveMember {
                    user_id,
                    removed_by,
                };
                (me, self.call_op(node, call, answer(reply)))
            }
            RoomMsg::DeleteMessage {
                message_id,
                by,
                reply,
            } => {
                let call = RoomCall::DeleteMessage { message_id, by };
                (me, self.call_op(node, call, answer(reply)))
            }
            RoomMsg::DeleteRoom { by, reply } => {
                let call = RoomCall::DeleteRoom { by };
                (me, self.call_op(node, call, answer(reply)))
            }
            RoomMsg::Members(reply) => (me, self.call_op(node, RoomCall::Members, answer(reply))),
            RoomMsg::Updated(record) => {
                let call = RoomCall::Updated { room: record };
                (me, self.call_op(node, call, Box::new(|_| {})))
            }
            _ => return Err(ActorError::Unavailable),
        };
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
        link.send(Lane::Control, &PeerMsg::ToPresence { user, op });
        Ok(())
    }

    fn to_user(&self, user: Snowflake, frame: &Frame) {
        let msg = PeerMsg::ToUser {
            user,
            frames: frame.wire_bytes().to_vec(),
        };
        for link in self.links.read().values() {
            link.handle.send(Lane::Control, &msg);
        }
    }

    fn for_user(&self, user: Snowflake, op: &UserOp) {
        let msg = PeerMsg::ForUser {
            user,
            op: op.clone(),
        };
        for link in self.links.read().values() {
            link.handle.send(Lane::Control, &msg);
        }
    }

    fn room_crashed(&self, room: Snowflake) {
        for link in self.links.read().values() {
            link.handle.send(
                Lane::Room(room),
                &PeerMsg::FromRoom {
                    room,
                    delivery: RoomDelivery::Closed,
                },
            );
        }
    }
}

impl ClusterInner {
    fn call_op(&self, node: NodeId, call: RoomCall, done: CallDone) -> RoomOp {
        let call_id = self.register_call(node, done);
        RoomOp::Call { call_id, call }
    }
}
