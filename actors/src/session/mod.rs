//! The session actor: one per WebSocket connection, on the node the client connected to.
//!
//! It turns client frames into room requests. Replies never come back through it: rooms push
//! acks and events straight into the connection's [`Outbox`], so a session never waits on a
//! room and a room never waits on a client. It monitors every room it joined; when a room
//! actor stops or crashes while the session still wants it, the session re-joins from the last
//! event it received, so nothing is missed across a room restart. It also tells the user's
//! presence actor that the connection is alive (attach, a heartbeat every 15 s from the node's
//! ticker in the session registry, detach).
//!
//! - this file: the actor, joins, leaves, posts;
//! - [`dispatch`]: one arm per client request (parsed at the front door);
//! - [`rejoin`]: following a room that moved (re-joins, joins sent again);
//! - [`actions`]: edits, deletions, reactions, read markers, typing, voice and presence.

use std::collections::HashMap;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::{FrameError, SendMessage};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::request::RequestFrame;

use crate::context::NodeContext;
use crate::directory::Route;
use crate::outbox::Outbox;
use crate::remote::Recipient;
use crate::room::{Author, Reply, RoomMsg, SessionLink};
use voiceflow_wire::cluster::PresenceOp;

mod actions;
mod dispatch;
mod rejoin;

/// Messages a session actor handles.
#[derive(Debug)]
pub enum SessionMsg {
    /// A request from the client, parsed (and bad frames answered) at the front door.
    Inbound(RequestFrame),
    /// The connection is gone: leave every room and stop.
    Disconnected,
    /// A room this session follows on another node stopped there (moved, or that node is
    /// gone): re-join it wherever it lives now. The flag says whether that owner had
    /// confirmed this session's join (if not, a client's join is sent again as asked).
    RoomGone(Snowflake, bool),
    /// A join went to another node: if that node has not confirmed it by now (the request
    /// was lost with a node that died, say), join again.
    CheckJoin {
        /// The room.
        room_id: Snowflake,
        /// Which join it checks (a newer join makes the check void).
        generation: u64,
    },
    /// The room's owner on another node could not serve this session's re-join yet: try
    /// again shortly, backing off while that lasts.
    JoinLater(Snowflake),
    /// The room's owner on another node let this session go (a refused join, a deleted room,
    /// a removed member): stop following it, no re-join.
    Dropped(Snowflake),
    /// Try an automatic re-join again (the room was unavailable).
    Rejoin {
        /// The room.
        room_id: Snowflake,
        /// Resume point (room-log seq).
        since: u64,
        /// Attempts so far.
        attempt: u32,
    },
    /// Periodic: tell the user's presence actor this session is alive.
    Heartbeat,
    /// The account was renamed: speak under the new name from now on.
    Renamed(String),
}

/// How long a join sent to another node may go unconfirmed before it is sent again (long
/// enough for a room start under load: a client's join sent again could be acked twice).
const JOIN_CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Automatic re-join attempts before the session gives a room up (about a minute).
const MAX_REJOINS: u32 = 40;

/// Where a joined room is served.
#[derive(Debug, Clone)]
enum Attached {
    /// By this local actor, which this session monitors. The monitor must be removed when
    /// the session stops following it: ractor keeps a monitoring actor's cell (its mailbox
    /// and all) in the monitored actor until it is unmonitored or the monitored actor stops,
    /// and a busy room may run for weeks.
    Local(ActorCell),
    /// By another node.
    Remote(u16),
}

impl Attached {
    /// The local room actor's id, if served here.
    fn local_id(&self) -> Option<ActorId> {
        match self {
            Attached::Local(cell) => Some(cell.get_id()),
            Attached::Remote(_) => None,
        }
    }
}

impl PartialEq for Attached {
    fn eq(&self, other: &Attached) -> bool {
        match (self, other) {
            (Attached::Local(a), Attached::Local(b)) => a.get_id() == b.get_id(),
            (Attached::Remote(a), Attached::Remote(b)) => a == b,
            _ => false,
        }
    }
}

/// Start-up arguments.
pub struct SessionArgs {
    /// Node-unique id.
    pub session_id: u64,
    /// The authenticated user.
    pub user: Author,
    /// The sign-in (refresh-token family) of the token that opened the connection: revoking
    /// it (logout, refresh-token reuse) closes the connection.
    pub family: Option<String>,
    /// The connection's outbound queue.
    pub outbox: Outbox,
    /// Node handles.
    pub ctx: NodeContext,
}

/// The session actor.
pub struct SessionActor;

/// Everything a session knows.
pub struct SessionState {
    session_id: u64,
    user: Author,
    outbox: Outbox,
    ctx: NodeContext,
    /// Joined rooms and where each is served.
    joined: HashMap<Snowflake, Attached>,
    /// Counts joins sent to other nodes (each is checked for confirmation once).
    join_generation: u64,
    /// Clients' joins sent to another node and not known to be confirmed yet.
    unconfirmed: HashMap<Snowflake, rejoin::ClientJoin>,
    /// Re-joins another node could not serve yet, in a row, per room (for the back-off).
    joins_deferred: HashMap<Snowflake, u32>,
    /// When the client last did something (not a ping): for automatic away.
    last_active: std::time::Instant,
    /// Voice channels this connection is in (they get its heartbeats and its departure).
    voice_channels: std::collections::HashSet<Snowflake>,
    /// The status this connection's client last chose (repeated in every presence beat).
    chosen: Option<voiceflow_wire::cluster::ChosenStatus>,
    /// Whether the client last said its tab is focused (`session:focus`); repeated after
    /// every beat while it is, so a presence actor that took over learns it again.
    focused: bool,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        args.ctx.sessions.register(
            args.session_id,
            me,
            args.outbox.clone(),
            args.user.user_id,
            args.family,
        );
        Ok(SessionState {
            session_id: args.session_id,
            user: args.user,
            outbox: args.outbox,
            ctx: args.ctx,
            joined: HashMap::new(),
            join_generation: 0,
            unconfirmed: HashMap::new(),
            joins_deferred: HashMap::new(),
            last_active: std::time::Instant::now(),
            voice_channels: Default::default(),
            chosen: None,
            focused: false,
        })
    }

    async fn post_start(
        &self,
        _me: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .presence_op(PresenceOp::Attach {
                session_id: state.session_id,
            })
            .await;
        // Heartbeats come from the node's one ticker (`SessionRegistry::start_heartbeats`).
        Ok(())
    }

    async fn post_stop(
        &self,
        me: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.voice_to_all(&crate::room::VoiceOp::Leave);
        state.leave_all(&me);
        state.ctx.sessions.unregister(state.session_id);
        state
            .presence_op(PresenceOp::Detach {
                session_id: state.session_id,
            })
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor keeps the actor loop's future (sized by the largest future it awaits)
        // for the actor's whole life, so an idle session would carry this handler's ~7 KB
        // state machine. Boxed, it costs a pointer at rest and one allocation per message.
        Box::pin(state.handle_msg(me, msg)).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SessionMsg>,
        event: SupervisionEvent,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let gone = match event {
            SupervisionEvent::ActorFailed(cell, _) => cell.get_id(),
            SupervisionEvent::ActorTerminated(cell, _, _) => cell.get_id(),
            _ => return Ok(()),
        };
        Box::pin(state.handle_room_gone(&me, gone)).await;
        Ok(())
    }
}

impl SessionState {
    /// One message to the session actor (see [`SessionMsg`]).
    async fn handle_msg(&mut self, me: ActorRef<SessionMsg>, msg: SessionMsg) {
        let state = self;
        match msg {
            SessionMsg::Inbound(request) => state.handle_request(&me, request).await,
            SessionMsg::Disconnected => me.stop(Some("disconnected".into())),
            SessionMsg::Renamed(username) => state.user.username = username,
            SessionMsg::Heartbeat => {
                state.voice_beat_all().await;
                let idle_ms = state.last_active.elapsed().as_millis() as u64;
                let session_id = state.session_id;
                let chosen = state.chosen;
                state
                    .presence_op(PresenceOp::Beat {
                        session_id,
                        idle_ms,
                        chosen,
                    })
                    .await;
                if state.focused {
                    let focus = PresenceOp::Focus {
                        session_id,
                        focused: true,
                        at_ms: voiceflow_wire::ids::now_ms(),
                    };
                    state.presence_op(focus).await;
                }
            }
            SessionMsg::Rejoin {
                room_id,
                since,
                attempt,
            } => state.rejoin_again(&me, room_id, since, attempt).await,
            SessionMsg::CheckJoin {
                room_id,
                generation,
            } => state.check_join(&me, room_id, generation).await,
            SessionMsg::JoinLater(room_id) => state.join_later(&me, room_id),
            SessionMsg::Dropped(room_id) => state.dropped(room_id),
            SessionMsg::RoomGone(room_id, subscribed) => {
                state.handle_moved(&me, room_id, subscribed).await
            }
        }
    }

    /// Answers a refused request. (Malformed frames never get here: the front door answers
    /// and counts them, see `node/src/limits.rs`.)
    pub fn reject(&mut self, error: &FrameError) {
        self.outbox.push(frame::failure(error.id, &error.error));
    }

    pub(super) fn link(&self) -> SessionLink {
        SessionLink {
            session_id: self.session_id,
            user_id: self.user.user_id,
            username: self.user.username.clone(),
            to: Recipient::Local(self.outbox.clone()),
        }
    }

    async fn handle_join(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        (since, epoch): (Option<u64>, Option<u64>),
        members: bool,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        let reply = Reply::Session {
            to: Recipient::Local(self.outbox.clone()),
            session_id: self.session_id,
            req_id,
        };
        let msg = RoomMsg::Join {
            session: self.link(),
            since,
            epoch,
            members,
            reply,
        };
        let route = self
            .ctx
            .directory
            .send(room_id, msg)
            .await
            .map_err(|e| FrameError {
                id: req_id,
                error: e.to_body(),
            })?;
        self.watch(me, room_id, &route);
        // A client's join answered by another node: kept until confirmed, so that it can be
        // sent again (still answering the client's request) if that node goes first.
        match (&route, req_id) {
            (Route::Remote(_), Some(req_id)) => {
                let join = rejoin::ClientJoin {
                    req_id,
                    since,
                    epoch,
                    members,
                };
                self.unconfirmed.insert(room_id, join);
            }
            (Route::Local(_), Some(_)) => {
                self.unconfirmed.remove(&room_id);
            }
            (_, None) => {}
        }
        Ok(())
    }

    fn watch(&mut self, me: &ActorRef<SessionMsg>, room_id: Snowflake, route: &Route) {
        let attached = match route {
            Route::Local(actor) => Attached::Local(actor.get_cell()),
            Route::Remote(node) => Attached::Remote(*node),
        };
        match self.joined.insert(room_id, attached.clone()) {
            Some(previous) if previous == attached => return,
            // Served by another actor now: the old one (stopping) need not hold this session.
            Some(Attached::Local(old)) => me.get_cell().unmonitor(old),
            _ => {}
        }
        match route {
            Route::Local(actor) => me.get_cell().monitor(actor.get_cell()),
            Route::Remote(_) => {
                self.join_generation += 1;
                let generation = self.join_generation;
                me.send_after(JOIN_CONFIRM_WAIT, move || SessionMsg::CheckJoin {
                    room_id,
                    generation,
                });
            }
        }
    }

    async fn handle_leave(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        self.outbox.forget_room(room_id);
        self.unconfirmed.remove(&room_id);
        self.joins_deferred.remove(&room_id);
        self.ctx.sessions.unfollow(room_id, self.session_id);
        if let Some(attached) = self.joined.remove(&room_id) {
            if let Attached::Local(actor) = attached {
                me.get_cell().unmonitor(actor);
            }
            let reply = Some(Reply::Session {
                to: Recipient::Local(self.outbox.clone()),
                session_id: self.session_id,
                req_id,
            });
            let leave = RoomMsg::Leave {
                session_id: self.session_id,
                user_id: self.user.user_id,
                reply,
            };
            if self.ctx.directory.send_if_running(room_id, leave) {
                return Ok(());
            }
        }
        // Not subscribed here and the room is not running: a member's leave is a no-op, anyone
        // else's is refused like any other request about a room they are not in.
        let Some(id) = req_id else {
            return Ok(());
        };
        match crate::room::leave_answer(self.ctx.store.as_ref(), room_id, self.user.user_id).await {
            Ok(answer) => {
                self.outbox.push(frame::ack_ok(id, &answer));
                Ok(())
            }
            Err(e) => Err(FrameError {
                id: req_id,
                error: e.to_body(),
            }),
        }
    }

    async fn handle_send(
        &mut self,
        post: SendMessage,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        let room_id = post.room_id;
        let reply = Reply::Session {
            to: Recipient::Local(self.outbox.clone()),
            session_id: self.session_id,
            req_id,
        };
        let msg = RoomMsg::Post {
            author: self.user.clone(),
            post,
            reply,
        };
        let route = self
            .ctx
            .directory
            .send(room_id, msg)
            .await
            .map_err(|e| FrameError {
                id: req_id,
                error: e.to_body(),
            })?;
        if let (Route::Remote(node), Some(req_id)) = (route, req_id) {
            self.ctx.sessions.forwarded(self.session_id, node, req_id);
        }
        Ok(())
    }

    /// Leaves every joined room (the connection closed), and stops monitoring their actors
    /// (otherwise each room keeps this stopped session's cell until the room itself stops).
    pub fn leave_all(&mut self, me: &ActorRef<SessionMsg>) {
        self.unconfirmed.clear();
        self.joins_deferred.clear();
        for (room_id, attached) in self.joined.drain() {
            if let Attached::Local(actor) = attached {
                me.get_cell().unmonitor(actor);
            }
            self.ctx.directory.send_if_running(
                room_id,
                RoomMsg::Leave {
                    session_id: self.session_id,
                    user_id: self.user.user_id,
                    reply: None,
                },
            );
        }
    }
}
