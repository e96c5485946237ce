//! The one mapping between room messages and the cluster's room requests: [`to_op`] turns a
//! [`RoomMsg`] for a room owned elsewhere into a [`RoomOp`], [`from_op`] turns a peer's
//! [`RoomOp`] back into what this node does with it, and [`room_call`] serves REST-side calls.
//! Both matches are exhaustive: a new room message or request is a compile error here, not a
//! request that works on one node and fails in a cluster.

use ractor::RpcReplyPort;
use voiceflow_actors::presence::PresenceNote;
use voiceflow_actors::remote::Recipient;
use voiceflow_actors::room::{Author, Reply, RoomMsg, SessionLink};
use voiceflow_actors::{ActorError, NodeContext};
use voiceflow_wire::cluster::room::{CallAnswer, FromAnswer};
use voiceflow_wire::cluster::{NodeId, RoomCall, RoomOp};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::ClusterInner;
use super::send::CallDone;

/// Where a session's answers go: its node (this one, or the one it came from).
fn origin_of(me: NodeId, to: &Recipient) -> NodeId {
    match to {
        Recipient::Local(_) => me,
        Recipient::Remote(r) => r.peer.node_id(),
    }
}

/// The client request id a session's reply acknowledges (a port has none).
fn req_id_of<T>(reply: &Reply<T>) -> Option<u64> {
    match reply {
        Reply::Session { req_id, .. } => *req_id,
        Reply::Port(_) => None,
    }
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

/// `msg` for `room`, owned by `node`, as a request: the node its answers go to, and the op.
/// REST calls register their reply port to wait for the answer.
pub(super) fn to_op(
    cluster: &ClusterInner,
    node: NodeId,
    room: Snowflake,
    msg: RoomMsg,
) -> Result<(NodeId, RoomOp), ActorError> {
    let me = cluster.me;
    let call = |call: RoomCall, done: CallDone| RoomOp::Call {
        call_id: cluster.register_call(node, done),
        call,
    };
    Ok(match msg {
        RoomMsg::Join {
            session,
            since,
            epoch,
            members,
            reply,
        } => {
            let origin = origin_of(me, &session.to);
            if origin == me {
                cluster.sessions.follow(room, node, session.session_id);
            }
            let op = RoomOp::Join {
                session_id: session.session_id,
                user_id: session.user_id,
                username: session.username,
                since,
                epoch,
                members,
                req_id: req_id_of(&reply),
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
        // Posts and message actions from sessions are relayed; one answered through a port
        // (a REST handler) is not (no call carries it): the caller gets UNAVAILABLE, as
        // before version 8.
        RoomMsg::Post {
            author,
            post,
            reply:
                Reply::Session {
                    to,
                    session_id,
                    req_id,
                },
        } => {
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
            reply:
                Reply::Session {
                    to,
                    session_id,
                    req_id,
                },
        } => {
            let op = RoomOp::Act {
                session_id,
                user_id: author.user_id,
                username: author.username,
                action,
                req_id,
            };
            (origin_of(me, &to), op)
        }
        RoomMsg::Post {
            reply: Reply::Port(_),
            ..
        }
        | RoomMsg::Act {
            reply: Reply::Port(_),
            ..
        } => return Err(ActorError::Unavailable),
        RoomMsg::Voice { session, op, reply } => {
            let op = RoomOp::Voice {
                session_id: session.session_id,
                user_id: session.user_id,
                username: session.username,
                op,
                req_id: req_id_of(&reply),
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
            let op = RoomCall::AddMember {
                user_id: author.user_id,
                username: author.username,
            };
            (me, call(op, answer(reply)))
        }
        RoomMsg::RemoveMember {
            user_id,
            removed_by,
            reply,
        } => {
            let op = RoomCall::RemoveMember {
                user_id,
                removed_by,
            };
            (me, call(op, answer(reply)))
        }
        RoomMsg::DeleteMessage {
            message_id,
            by,
            reply,
        } => {
            let op = RoomCall::DeleteMessage { message_id, by };
            (me, call(op, answer(reply)))
        }
        RoomMsg::DeleteRoom { by, reply } => (me, call(RoomCall::DeleteRoom { by }, answer(reply))),
        RoomMsg::Members(reply) => (me, call(RoomCall::Members, answer(reply))),
        RoomMsg::DisconnectVoice {
            user_id,
            moved_to,
            by,
            reply,
        } => {
            let op = RoomCall::DisconnectVoice {
                user_id,
                moved_to,
                by,
            };
            (me, call(op, answer(reply)))
        }
        RoomMsg::Updated(room) => (me, call(RoomCall::Updated { room }, Box::new(|_| {}))),
        // The room's own timers, storage completions, media events and lifecycle: they only
        // ever reach the actor they concern, on the node where it runs.
        RoomMsg::Committed(_)
        | RoomMsg::Resynced(_)
        | RoomMsg::FlushPresence
        | RoomMsg::FlushReceipts
        | RoomMsg::Reprobe(_)
        | RoomMsg::AnswerMembers
        | RoomMsg::VoiceEvent(_)
        | RoomMsg::CallReport(_)
        | RoomMsg::VoiceTick
        | RoomMsg::VoiceJoined(_)
        | RoomMsg::TypingExpired { .. }
        | RoomMsg::IdleCheck
        | RoomMsg::Retire
        | RoomMsg::RetireMarker
        | RoomMsg::NodeDown(_)
        | RoomMsg::Registered => return Err(ActorError::Unavailable),
    })
}

/// What a peer's room request asks of this node (the owner).
pub(super) enum FromOp {
    /// A client's join: sent to the room (started if need be).
    Join {
        msg: RoomMsg,
        session_id: u64,
        req_id: Option<u64>,
    },
    /// A session's request for the room (started if need be); a failure goes back to it.
    Session {
        msg: RoomMsg,
        session_id: u64,
        req_id: Option<u64>,
    },
    /// A leave: to the room if it runs, else answered from storage.
    Leave {
        msg: RoomMsg,
        session_id: u64,
        user_id: Snowflake,
        req_id: Option<u64>,
    },
    /// Typing: only a running room has subscribers who may type.
    Typing {
        msg: RoomMsg,
        session_id: u64,
        req_id: Option<u64>,
    },
    /// News for the room if it runs (presence, renames); nothing to answer.
    IfRunning(RoomMsg),
    /// A REST-side call, answered with [`room_call`]'s result.
    Call { call_id: u64, call: RoomCall },
    /// A peer is about to start the room.
    Release { call_id: u64 },
}

/// The inverse of [`to_op`]: `to(session_id)` is where that session's answers go.
pub(super) fn from_op(op: RoomOp, to: impl Fn(u64) -> Recipient) -> FromOp {
    // A function, not a closure: each request acknowledges with its own reply type.
    fn ack<T>(to: Recipient, session_id: u64, req_id: Option<u64>) -> Reply<T> {
        Reply::Session {
            to,
            session_id,
            req_id,
        }
    }
    let session = |session_id, user_id, username| SessionLink {
        session_id,
        user_id,
        username,
        to: to(session_id),
    };
    match op {
        RoomOp::Join {
            session_id,
            user_id,
            username,
            since,
            epoch,
            members,
            req_id,
        } => FromOp::Join {
            msg: RoomMsg::Join {
                session: session(session_id, user_id, username),
                since,
                epoch,
                members,
                reply: ack(to(session_id), session_id, req_id),
            },
            session_id,
            req_id,
        },
        RoomOp::Leave {
            session_id,
            user_id,
            req_id,
        } => FromOp::Leave {
            msg: RoomMsg::Leave {
                session_id,
                user_id,
                reply: req_id.map(|_| ack(to(session_id), session_id, req_id)),
            },
            session_id,
            user_id,
            req_id,
        },
        RoomOp::Post {
            session_id,
            user_id,
            username,
            post,
            req_id,
        } => FromOp::Session {
            msg: RoomMsg::Post {
                author: Author { user_id, username },
                post,
                reply: ack(to(session_id), session_id, req_id),
            },
            session_id,
            req_id,
        },
        RoomOp::Act {
            session_id,
            user_id,
            username,
            action,
            req_id,
        } => FromOp::Session {
            msg: RoomMsg::Act {
                author: Author { user_id, username },
                action,
                reply: ack(to(session_id), session_id, req_id),
            },
            session_id,
            req_id,
        },
        RoomOp::Voice {
            session_id,
            user_id,
            username,
            op,
            req_id,
        } => FromOp::Session {
            msg: RoomMsg::Voice {
                session: session(session_id, user_id, username),
                op,
                reply: ack(to(session_id), session_id, req_id),
            },
            session_id,
            req_id,
        },
        RoomOp::Presence {
            user_id,
            status,
            last_seen,
            version,
            source,
        } => FromOp::IfRunning(RoomMsg::Presence(PresenceNote {
            user_id,
            status,
            last_seen,
            version,
            source,
        })),
        RoomOp::Typing {
            session_id,
            user_id,
            start,
            req_id,
        } => FromOp::Typing {
            msg: RoomMsg::Typing {
                session_id,
                user_id,
                start,
                reply: req_id.map(|_| ack(to(session_id), session_id, req_id)),
            },
            session_id,
            req_id,
        },
        RoomOp::Renamed { user_id, username } => {
            FromOp::IfRunning(RoomMsg::Renamed { user_id, username })
        }
        RoomOp::Call { call_id, call } => FromOp::Call { call_id, call },
        RoomOp::Release { call_id } => FromOp::Release { call_id },
    }
}

/// Serves a REST-side call on the room (owned here) and says how it went.
pub(super) async fn room_call(
    ctx: &NodeContext,
    room: Snowflake,
    call: RoomCall,
) -> Result<CallAnswer, ErrorBody> {
    let dir = &ctx.directory;
    let done = |r: Result<(), ActorError>| r.map(|()| CallAnswer::Done);
    let answer = match call {
        RoomCall::AddMember { user_id, username } => {
            let author = Author { user_id, username };
            dir.call(room, |reply| RoomMsg::AddMember { author, reply })
                .await
                .map(CallAnswer::Joined)
        }
        RoomCall::RemoveMember {
            user_id,
            removed_by,
        } => done(
            dir.call(room, |reply| RoomMsg::RemoveMember {
                user_id,
                removed_by,
                reply,
            })
            .await,
        ),
        RoomCall::DeleteMessage { message_id, by } => done(
            dir.call(room, |reply| RoomMsg::DeleteMessage {
                message_id,
                by,
                reply,
            })
            .await,
        ),
        RoomCall::DeleteRoom { by } => done(
            dir.call(room, |reply| RoomMsg::DeleteRoom { by, reply })
                .await,
        ),
        RoomCall::Members => dir
            .call(room, RoomMsg::Members)
            .await
            .map(CallAnswer::Members),
        RoomCall::DisconnectVoice {
            user_id,
            moved_to,
            by,
        } => done(
            dir.call(room, |reply| RoomMsg::DisconnectVoice {
                user_id,
                moved_to,
                by,
                reply,
            })
            .await,
        ),
        RoomCall::Updated { room: record } => {
            dir.send_if_running(room, RoomMsg::Updated(record));
            Ok(CallAnswer::Done)
        }
    };
    answer.map_err(|e| e.to_body())
}
