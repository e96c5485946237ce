//! Frames from peers: requests for rooms this node owns (or passes on), and deliveries from
//! rooms on other nodes to this node's sessions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voiceflow_actors::cluster::Owner;
use voiceflow_actors::remote::{Recipient, RemoteSession};
use voiceflow_actors::room::leave_answer;
use voiceflow_actors::{ActorError, NodeContext};
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, PeerMsg, PresenceOp, RoomDelivery, RoomOp};
use voiceflow_wire::v1::frame::{self, Frame};

use super::ClusterInner;
use super::room_ops::{self, FromOp};
use super::send::{ACQUIRE_TIMEOUT, MAX_HOPS};

/// Handles one frame from peer `from`.
pub async fn handle(cluster: &Arc<ClusterInner>, ctx: &NodeContext, from: NodeId, msg: PeerMsg) {
    match msg {
        // A stream's sender is the node its certificate names (checked at its first hello).
        PeerMsg::Hello(info) if info.node_id == from => cluster.on_hello(ctx, info),
        PeerMsg::Heartbeat {
            from: info,
            members,
        } if info.node_id == from => cluster.on_heartbeat(ctx, info, &members),
        PeerMsg::Hello(_) | PeerMsg::Heartbeat { .. } => {
            tracing::warn!(peer = from, "a peer spoke for another node; ignored");
        }
        PeerMsg::ToRoom {
            room,
            origin,
            hops,
            op,
        } => to_room(cluster, ctx, room, origin, hops, op).await,
        PeerMsg::FromRoom { room, delivery } => from_room(cluster, from, room, delivery),
        PeerMsg::ToPresence { user, op } => to_presence(cluster, ctx, from, user, op).await,
        PeerMsg::ForUser { user, op } => {
            cluster.sessions.for_user(user, &op);
        }
        PeerMsg::Search {
            call_id,
            rooms,
            query,
        } => cluster.on_search(ctx, from, call_id, rooms, query),
        PeerMsg::SearchAnswer { call_id, result } => {
            cluster.on_search_answer(from, call_id, result);
        }
        // Version 11 (swim).
        PeerMsg::Swim { packet } => cluster.on_swim(ctx, from, &packet),
        PeerMsg::HandedOff { room } => ctx.directory.handed_over(room),
        PeerMsg::ToUser { user, frames } => match Frame::from_wire(bytes::Bytes::from(frames)) {
            Some(frame) => {
                cluster.sessions.to_user(user, &frame);
            }
            None => {
                tracing::warn!(
                    peer = from,
                    "peer sent malformed frames for a user; dropped"
                );
                metrics::counter!("voiceflow_cluster_bad_frames_total").increment(1);
            }
        },
    }
}

/// An op for a presence actor: applied here if this node owns the user (or the sender
/// thinks so and this node sees the sender as owner: views differ for a moment during a
/// rebalance), else passed on once to the owner this node sees.
async fn to_presence(
    cluster: &Arc<ClusterInner>,
    ctx: &NodeContext,
    from: NodeId,
    user: Snowflake,
    op: PresenceOp,
) {
    match ctx.directory.owner(user) {
        Owner::Remote(node) if node != from => {
            use voiceflow_actors::cluster::Cluster;
            let _ = cluster.presence(node, user, op);
        }
        Owner::Unavailable => {}
        _ => ctx.presence.local(user, op).await,
    }
}

/// Tells a session on `origin` (or here) that its request failed.
fn fail_session(
    cluster: &Arc<ClusterInner>,
    room: Snowflake,
    origin: NodeId,
    session_id: u64,
    req_id: Option<u64>,
    error: &ActorError,
) {
    let frame = frame::failure(req_id, &error.to_body());
    recipient(cluster, room, origin, session_id).push(frame);
}

/// A node's own re-join (no client request) that cannot be served now: it tries again shortly,
/// and the client sees nothing.
fn join_later(cluster: &Arc<ClusterInner>, room: Snowflake, origin: NodeId, session_id: u64) {
    cluster
        .node_ref(origin)
        .deliver(room, RoomDelivery::JoinLater { session_id });
}

/// A client's join refused: the client gets the error, and its node stops waiting for a
/// confirmation (which would send the join again and answer the request twice).
fn fail_join(
    cluster: &Arc<ClusterInner>,
    room: Snowflake,
    origin: NodeId,
    session_id: u64,
    req_id: Option<u64>,
    error: &ActorError,
) {
    fail_session(cluster, room, origin, session_id, req_id, error);
    cluster
        .node_ref(origin)
        .deliver(room, RoomDelivery::Forget { session_id });
}

fn recipient(
    cluster: &Arc<ClusterInner>,
    room: Snowflake,
    origin: NodeId,
    session_id: u64,
) -> Recipient {
    Recipient::Remote(RemoteSession {
        peer: cluster.node_ref(origin),
        session_id,
        room,
    })
}

/// Who owns `room` as this node sees it, waiting a little while it sees no owner at all. A
/// node that just (re)joined owns nothing until it has caught up on the members (a third of
/// the failure timeout), while its peers already route its rooms to it: refused, every post
/// sent meanwhile came back to its client as UNAVAILABLE, on every rolling restart. Held, it
/// is served once the placement settles (the op task of this stream waits, so requests for
/// the room stay in order). A node without a quorum still refuses, after the same wait.
async fn settled_owner(cluster: &ClusterInner, ctx: &NodeContext, room: Snowflake) -> Owner {
    let wait = cluster.membership.lock().catch_up() * 3 / 2;
    let deadline = Instant::now() + wait;
    loop {
        match ctx.directory.owner(room) {
            Owner::Unavailable if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            owner => return owner,
        }
    }
}

async fn to_room(
    cluster: &Arc<ClusterInner>,
    ctx: &NodeContext,
    room: Snowflake,
    origin: NodeId,
    hops: u8,
    op: RoomOp,
) {
    // A release is for this node whoever owns the room (the sender is about to).
    if let RoomOp::Release { call_id } = op {
        return release(cluster, ctx, room, origin, call_id).await;
    }
    // Not ours (any more, or yet): pass it on to the owner we see, a few times at most. Not to
    // one gone silent: the sender's view is likely newer (it declared that node down first,
    // and sent this here because of it); passed on, the request would be lost with that node,
    // while refused it is tried again in a moment (the heartbeat's tick updates this view).
    let silent = |node| cluster.membership.lock().is_silent(node, Instant::now());
    match settled_owner(cluster, ctx, room).await {
        Owner::Local => {}
        Owner::Remote(node) if hops < MAX_HOPS && !silent(node) => {
            cluster.send_op(node, room, origin, hops + 1, op);
            return;
        }
        _ => return refuse(cluster, room, origin, op),
    }
    let to = |session_id| recipient(cluster, room, origin, session_id);
    match room_ops::from_op(op, to) {
        FromOp::Join {
            msg,
            session_id,
            req_id,
        } => match ctx.directory.send(room, msg).await {
            Ok(_) => {}
            // The session's node re-joining by itself: no client to answer, so it is told to
            // try again soon (an error frame would reach the client instead).
            Err(e) if req_id.is_none() && e.is_transient() => {
                join_later(cluster, room, origin, session_id)
            }
            Err(e) => fail_join(cluster, room, origin, session_id, req_id, &e),
        },
        FromOp::Session {
            msg,
            session_id,
            req_id,
        } => {
            if let Err(e) = ctx.directory.send(room, msg).await {
                fail_session(cluster, room, origin, session_id, req_id, &e);
            }
        }
        FromOp::Leave {
            msg,
            session_id,
            user_id,
            req_id,
        } => {
            if !ctx.directory.send_if_running(room, msg)
                && let Some(id) = req_id
            {
                let answer = leave_answer(ctx.store.as_ref(), room, user_id).await;
                to(session_id).push(match answer {
                    Ok(ack) => frame::ack_ok(id, &ack),
                    Err(e) => frame::failure(Some(id), &e.to_body()),
                });
            }
        }
        FromOp::Typing {
            msg,
            session_id,
            req_id,
        } => {
            if !ctx.directory.send_if_running(room, msg) {
                let refused = ActorError::Forbidden("join the room before typing in it");
                fail_session(cluster, room, origin, session_id, req_id, &refused);
            }
        }
        FromOp::IfRunning(msg) => {
            ctx.directory.send_if_running(room, msg);
        }
        FromOp::Call { call_id, call } => {
            let cluster = cluster.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let result = room_ops::room_call(&ctx, room, call).await;
                cluster.send_delivery(origin, room, RoomDelivery::CallResult { call_id, result });
            });
        }
        FromOp::Release { call_id } => release(cluster, ctx, room, origin, call_id).await,
    }
}

/// Answers a request that cannot be served anywhere right now.
fn refuse(cluster: &Arc<ClusterInner>, room: Snowflake, origin: NodeId, op: RoomOp) {
    tracing::info!(%room, origin, "cannot route a room request (no owner, or too many hops)");
    let e = ActorError::Unavailable;
    match op {
        // A node's own re-join (no client request): try again shortly, nothing for the client.
        RoomOp::Join {
            session_id,
            req_id: None,
            ..
        } => join_later(cluster, room, origin, session_id),
        RoomOp::Join {
            session_id, req_id, ..
        } => fail_join(cluster, room, origin, session_id, req_id, &e),
        RoomOp::Post {
            session_id, req_id, ..
        }
        | RoomOp::Act {
            session_id, req_id, ..
        }
        | RoomOp::Voice {
            session_id, req_id, ..
        } => fail_session(cluster, room, origin, session_id, req_id, &e),
        RoomOp::Leave {
            session_id, req_id, ..
        }
        | RoomOp::Typing {
            session_id, req_id, ..
        } if req_id.is_some() => fail_session(cluster, room, origin, session_id, req_id, &e),
        RoomOp::Call { call_id, .. } => cluster.send_delivery(
            origin,
            room,
            RoomDelivery::CallResult {
                call_id,
                result: Err(e.to_body()),
            },
        ),
        // Nothing waits for these: news for the room, a leave or typing without a client
        // request id, a release (answered before routing, never refused here).
        RoomOp::Leave { .. }
        | RoomOp::Typing { .. }
        | RoomOp::Presence { .. }
        | RoomOp::Renamed { .. }
        | RoomOp::Release { .. } => {}
    }
}

/// A peer is about to start `room`: stop ours (if it runs) once it finished its writes.
async fn release(
    cluster: &Arc<ClusterInner>,
    ctx: &NodeContext,
    room: Snowflake,
    origin: NodeId,
    call_id: u64,
) {
    let competing = cluster.acquiring.lock().get(&room).cloned();
    let busy = match competing {
        // Both are starting it: the higher node id goes ahead, the other backs off.
        Some(_) if cluster.me > origin => true,
        Some(flag) => {
            flag.store(true, Ordering::Release);
            false
        }
        None => false,
    };
    if !busy {
        ctx.directory.release(room, ACQUIRE_TIMEOUT).await;
    }
    tracing::debug!(%room, origin, busy, "released");
    cluster.send_delivery(origin, room, RoomDelivery::Released { call_id, busy });
}

/// A room on `from` sent something for this node's sessions.
fn from_room(cluster: &Arc<ClusterInner>, from: NodeId, room: Snowflake, delivery: RoomDelivery) {
    let sessions = &cluster.sessions;
    let frames = |bytes: Vec<u8>| {
        let frame = Frame::from_wire(bytes::Bytes::from(bytes));
        if frame.is_none() {
            tracing::warn!(peer = from, %room, "peer sent malformed client frames; dropped");
            metrics::counter!("voiceflow_cluster_bad_frames_total").increment(1);
        }
        frame
    };
    match delivery {
        RoomDelivery::ToSession {
            session_id,
            last,
            frames: bytes,
        } => {
            if let Some(frame) = frames(bytes) {
                sessions.to_session(room, session_id, last, frame);
            }
        }
        RoomDelivery::Subscribed { session_id } => sessions.activate(room, from, session_id),
        RoomDelivery::Forget { session_id } => sessions.forget(room, session_id),
        RoomDelivery::JoinLater { session_id } => sessions.join_later(room, from, session_id),
        RoomDelivery::Fanout {
            except_user,
            last,
            frames: bytes,
        } => {
            if let Some(frame) = frames(bytes) {
                let n = sessions.fanout(room, from, except_user, last, &frame);
                if last.is_some() {
                    // Message batches, counted like the owner counts its local sessions.
                    metrics::counter!("voiceflow_deliveries_total")
                        .increment((n * frame.count()) as u64);
                }
            }
        }
        RoomDelivery::Closed => sessions.room_closed(room, Some(from)),
        RoomDelivery::CallResult { call_id, result } => {
            let call = cluster.calls.lock().remove(&call_id);
            if let Some(call) = call {
                (call.done)(result);
            }
        }
        RoomDelivery::Released { call_id, busy } => {
            tracing::debug!(%room, from, busy, call_id, "release answered");
            let release = cluster.releases.lock().remove(&call_id);
            if let Some(release) = release {
                let _ = release.done.send(busy);
            }
        }
    }
}
