//! This node's sessions, and which of them follow rooms that live on other nodes.
//!
//! A room on another node sends one copy of each event to this node; the registry fans it out
//! to the local sessions subscribed to that room (the Manifold pattern), pushing the same
//! bytes to each outbox. A subscription turns active only when the owner says the session is
//! in its live set, so a session never receives a live event before its join replay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use ractor::ActorRef;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, UserOp};
use voiceflow_wire::v1::frame::Frame;

use crate::forwarded::Forwarded;
use crate::outbox::{CloseReason, Outbox};
use crate::session::SessionMsg;

/// A session connected to this node.
#[derive(Clone)]
struct LocalSession {
    actor: ActorRef<SessionMsg>,
    outbox: Outbox,
    user_id: Snowflake,
    /// The sign-in (refresh-token family) whose access token opened or last extended the
    /// connection; `None` for tokens from before families were named in access tokens.
    family: Option<String>,
    /// Its requests to rooms on other nodes that await an answer.
    forwarded: std::sync::Arc<Forwarded>,
}

/// The local sessions following one remote room.
#[derive(Default)]
struct RemoteRoom {
    owner: NodeId,
    /// Session id → active (in the owner's live set).
    sessions: HashMap<u64, bool>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<u64, LocalSession>,
    rooms: HashMap<Snowflake, RemoteRoom>,
    /// User → their sessions here (events for a user, such as a ringing call).
    by_user: HashMap<Snowflake, Vec<u64>>,
}

/// Session id → session, room → followers. Cheap to clone. The node's one registry of its
/// connections: every WebSocket connection is a session here from the moment its session
/// actor starts until it stops (shutdown closes them all through it, `/metrics` counts them).
#[derive(Clone, Default)]
pub struct SessionRegistry(std::sync::Arc<Shared>);

#[derive(Default)]
struct Shared {
    map: RwLock<Inner>,
    /// The last session id handed out.
    last_id: AtomicU64,
    /// WebSocket connections whose task has not ended (their session may have stopped while
    /// the closing handshake runs): shutdown waits for these.
    open: AtomicUsize,
    /// The heartbeat ticker runs (`start_heartbeats`).
    beating: AtomicBool,
}

/// Slices a heartbeat period is cut into: each tick beats the sessions of one slice (by
/// session id), so a node's sessions beat spread over the period rather than all at once.
const BEAT_SLICES: u64 = 16;

/// One open WebSocket connection, counted until dropped (at the end of its task).
pub struct OpenConnection(std::sync::Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionRegistry {
    /// The registry of node `node_id`: session ids carry the node id in their top bits, so
    /// they are unique in the whole cluster.
    pub fn for_node(node_id: u16) -> Self {
        SessionRegistry(std::sync::Arc::new(Shared {
            map: RwLock::default(),
            last_id: AtomicU64::new(u64::from(node_id) << 48),
            open: AtomicUsize::new(0),
            beating: AtomicBool::new(false),
        }))
    }

    /// Starts the node's one heartbeat ticker (once per registry): every session here gets
    /// [`SessionMsg::Heartbeat`] once every `every`, a sixteenth of them at a time. One task
    /// for the node instead of a timer task per session: those cost ~40% of the node's
    /// connect+join rate (issue 18's bisection: 7,400 against 11,900 joins/s without them).
    /// The ticker stops when the registry is gone.
    pub fn start_heartbeats(&self, every: Duration) {
        if self.0.beating.swap(true, Ordering::Relaxed) {
            return;
        }
        let shared = std::sync::Arc::downgrade(&self.0);
        let tick = (every / BEAT_SLICES as u32).max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut slice = 0u64;
            loop {
                ticks.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                slice = (slice + 1) % BEAT_SLICES;
                let inner = shared.map.read();
                for (id, session) in &inner.sessions {
                    if id % BEAT_SLICES == slice {
                        let _ = session.actor.cast(SessionMsg::Heartbeat);
                    }
                }
            }
        });
    }

    /// The id of a new session (before it registers).
    pub fn next_session_id(&self) -> u64 {
        self.0.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A WebSocket connection starts: counted until the returned value is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.0.clone())
    }

    /// WebSocket connections whose task has not ended.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// Asks every session's connection to close with `reason`.
    pub fn close_all(&self, reason: &CloseReason) {
        for session in self.0.map.read().sessions.values() {
            session.outbox.close(reason.clone());
        }
    }

    /// A session started.
    pub fn register(
        &self,
        session_id: u64,
        actor: ActorRef<SessionMsg>,
        outbox: Outbox,
        user_id: Snowflake,
        family: Option<String>,
    ) {
        let mut inner = self.0.map.write();
        inner.sessions.insert(
            session_id,
            LocalSession {
                actor,
                outbox,
                user_id,
                family,
                forwarded: Default::default(),
            },
        );
        inner.by_user.entry(user_id).or_default().push(session_id);
    }

    /// A session ended: it follows nothing any more.
    pub fn unregister(&self, session_id: u64) {
        let mut inner = self.0.map.write();
        if let Some(gone) = inner.sessions.remove(&session_id)
            && let Some(ids) = inner.by_user.get_mut(&gone.user_id)
        {
            ids.retain(|id| *id != session_id);
            if ids.is_empty() {
                inner.by_user.remove(&gone.user_id);
            }
        }
        inner.rooms.retain(|_, room| {
            room.sessions.remove(&session_id);
            !room.sessions.is_empty()
        });
    }

    /// Sessions on this node.
    pub fn len(&self) -> usize {
        self.0.map.read().sessions.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A session asked `owner` to join `room` (not yet active).
    pub fn follow(&self, room: Snowflake, owner: NodeId, session_id: u64) {
        let voided = {
            let mut inner = self.0.map.write();
            let inner = &mut *inner;
            let entry = inner.rooms.entry(room).or_default();
            let mut voided = Vec::new();
            if entry.owner != owner {
                // Subscriptions with an older owner are void: their sessions are told, so
                // they re-join here too instead of waiting for frames that no longer come.
                voided = entry
                    .sessions
                    .drain()
                    .filter(|(id, _)| *id != session_id)
                    .filter_map(|(id, active)| {
                        inner.sessions.get(&id).map(|s| (s.actor.clone(), active))
                    })
                    .collect();
                entry.owner = owner;
            }
            entry.sessions.insert(session_id, false);
            voided
        };
        for (actor, subscribed) in voided {
            let _ = actor.cast(SessionMsg::RoomGone(room, subscribed));
        }
    }

    /// The session stops following `room`.
    pub fn unfollow(&self, room: Snowflake, session_id: u64) {
        let mut inner = self.0.map.write();
        if let Some(entry) = inner.rooms.get_mut(&room) {
            entry.sessions.remove(&session_id);
            if entry.sessions.is_empty() {
                inner.rooms.remove(&room);
            }
        }
    }

    /// The owner put the session in its live set.
    pub fn activate(&self, room: Snowflake, from: NodeId, session_id: u64) {
        let mut inner = self.0.map.write();
        if let Some(entry) = inner.rooms.get_mut(&room)
            && entry.owner == from
            && let Some(active) = entry.sessions.get_mut(&session_id)
        {
            *active = true;
        }
    }

    /// The session's subscription to `room`: `Some(true)` still waiting for the owner's
    /// confirmation, `Some(false)` confirmed, `None` not following (refused, or left).
    pub fn is_pending(&self, room: Snowflake, session_id: u64) -> Option<bool> {
        self.0
            .map
            .read()
            .rooms
            .get(&room)
            .and_then(|r| r.sessions.get(&session_id))
            .map(|active| !active)
    }

    /// Frames from a room for one session.
    pub fn to_session(&self, room: Snowflake, session_id: u64, last: Option<u64>, frame: Frame) {
        let inner = self.0.map.read();
        let Some(session) = inner.sessions.get(&session_id) else {
            return;
        };
        session.forwarded.answered(&frame);
        match last {
            Some(last) => {
                session.outbox.push_room_messages(room, last, &[frame]);
            }
            None if frame.count() > 0 => {
                session.outbox.push(frame);
            }
            None => {}
        }
    }

    /// Session `session_id` sent request `req_id` to a room on `node`; its answer comes back
    /// through [`Self::to_session`].
    pub fn forwarded(&self, session_id: u64, node: NodeId, req_id: u64) {
        if let Some(session) = self.0.map.read().sessions.get(&session_id) {
            session
                .forwarded
                .add(node, req_id, std::time::Instant::now());
        }
    }

    /// `node` was declared down: requests sent to it that had no answer yet will never get
    /// one, so each fails now with a "send again" error (the room serves from its new owner
    /// by then, or soon). Returns how many failed.
    pub fn node_down(&self, node: NodeId) -> usize {
        let error = voiceflow_wire::ErrorBody::unavailable(
            "the room's server went away before answering; send again",
        );
        let inner = self.0.map.read();
        let mut failed = 0;
        for session in inner.sessions.values() {
            for req_id in session.forwarded.take_for(node) {
                session
                    .outbox
                    .push(voiceflow_wire::v1::frame::ack_err(req_id, &error));
                failed += 1;
            }
        }
        failed
    }

    /// Whether `user` has a session on this node.
    pub fn has_user(&self, user: Snowflake) -> bool {
        self.0
            .map
            .read()
            .by_user
            .get(&user)
            .is_some_and(|ids| !ids.is_empty())
    }

    /// Frames for every session of `user` on this node; returns how many got them.
    pub fn to_user(&self, user: Snowflake, frame: &Frame) -> usize {
        let inner = self.0.map.read();
        let ids = inner.by_user.get(&user).map_or(&[][..], Vec::as_slice);
        let mut delivered = 0;
        for session in ids.iter().filter_map(|id| inner.sessions.get(id)) {
            session.outbox.push(frame.clone());
            delivered += 1;
        }
        delivered
    }

    /// The connection was extended with a token of (possibly) another sign-in.
    pub fn set_family(&self, session_id: u64, family: Option<String>) {
        if let Some(session) = self.0.map.write().sessions.get_mut(&session_id) {
            session.family = family;
        }
    }

    /// Applies an account change to every session of `user` on this node: a rename reaches
    /// each session actor (in order with the frames it handles next); a revoked sign-in closes
    /// the connections opened with it. Returns how many sessions it touched.
    pub fn for_user(&self, user: Snowflake, op: &UserOp) -> usize {
        let inner = self.0.map.read();
        let sessions = inner
            .by_user
            .get(&user)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|id| inner.sessions.get(id));
        let mut touched = 0;
        for session in sessions {
            match op {
                UserOp::Renamed { username } => {
                    let _ = session.actor.cast(SessionMsg::Renamed(username.clone()));
                }
                UserOp::Close {
                    family,
                    code,
                    reason,
                } => {
                    // A session whose sign-in is unknown ends with any of the user's.
                    let same = match (family, &session.family) {
                        (Some(revoked), Some(own)) => revoked == own,
                        _ => true,
                    };
                    if !same {
                        continue;
                    }
                    session.outbox.close(CloseReason {
                        code: *code,
                        reason: reason.clone(),
                    });
                }
            }
            touched += 1;
        }
        touched
    }

    /// The room's owner `from` could not serve the session's re-join yet: if the session
    /// still waits on that owner for this room, it tries again shortly.
    pub fn join_later(&self, room: Snowflake, from: NodeId, session_id: u64) {
        let actor = {
            let mut inner = self.0.map.write();
            let inner = &mut *inner;
            let Some(entry) = inner.rooms.get_mut(&room) else {
                return;
            };
            if entry.owner != from || entry.sessions.get(&session_id) != Some(&false) {
                return;
            }
            entry.sessions.remove(&session_id);
            if entry.sessions.is_empty() {
                inner.rooms.remove(&room);
            }
            inner.sessions.get(&session_id).map(|s| s.actor.clone())
        };
        if let Some(actor) = actor {
            let _ = actor.cast(SessionMsg::JoinLater(room));
        }
    }

    /// The room dropped the session (a refused join, a deleted room, a removed member): no
    /// re-join. The session is told, as it is of every other end of a following (a join to
    /// be tried later, a room that moved or closed), so that it never has to guess why its
    /// entry is gone.
    pub fn forget(&self, room: Snowflake, session_id: u64) {
        self.unfollow(room, session_id);
        let actor = self.0.map.read().sessions.get(&session_id).map(|session| {
            session.outbox.forget_room(room);
            session.actor.clone()
        });
        if let Some(actor) = actor {
            let _ = actor.cast(SessionMsg::Dropped(room));
        }
    }

    /// One event for every active follower of `room` on this node, from its owner `from`.
    /// Returns how many sessions got it.
    pub fn fanout(
        &self,
        room: Snowflake,
        from: NodeId,
        except_user: Option<Snowflake>,
        last: Option<u64>,
        frame: &Frame,
    ) -> usize {
        let inner = self.0.map.read();
        let Some(entry) = inner.rooms.get(&room) else {
            return 0;
        };
        if entry.owner != from {
            return 0;
        }
        let frames = std::slice::from_ref(frame);
        let mut delivered = 0;
        for (id, active) in &entry.sessions {
            let Some(session) = inner.sessions.get(id).filter(|_| *active) else {
                continue;
            };
            if except_user == Some(session.user_id) {
                continue;
            }
            match last {
                Some(last) => session.outbox.push_room_messages(room, last, frames),
                None => session.outbox.push(frame.clone()),
            };
            delivered += 1;
        }
        delivered
    }

    /// The room's actor on `from` stopped: its followers here re-join where it lives now.
    pub fn room_closed(&self, room: Snowflake, from: Option<NodeId>) {
        let followers = {
            let mut inner = self.0.map.write();
            match inner.rooms.get(&room) {
                Some(entry) if from.is_none_or(|f| f == entry.owner) => {}
                _ => return,
            }
            let entry = inner.rooms.remove(&room).unwrap_or_default();
            entry
                .sessions
                .iter()
                .filter_map(|(id, active)| {
                    inner.sessions.get(id).map(|s| (s.actor.clone(), *active))
                })
                .collect::<Vec<_>>()
        };
        for (actor, subscribed) in followers {
            let _ = actor.cast(SessionMsg::RoomGone(room, subscribed));
        }
    }

    /// Membership changed: every followed room whose owner is no longer the node it was
    /// followed on is closed (its followers re-join the new owner).
    pub fn owners_changed(&self, owner_of: impl Fn(Snowflake) -> Option<NodeId>) {
        let moved: Vec<Snowflake> = self
            .0
            .map
            .read()
            .rooms
            .iter()
            .filter(|(room, entry)| owner_of(**room) != Some(entry.owner))
            .map(|(room, _)| *room)
            .collect();
        for room in moved {
            self.room_closed(room, None);
        }
    }

    /// Rooms followed here with their owners (for `GET /cluster` and tests).
    pub fn followed_rooms(&self) -> usize {
        self.0.map.read().rooms.len()
    }
}
