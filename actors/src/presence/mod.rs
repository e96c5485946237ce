//! Presence: one actor per user, placed by hash like rooms (on the node that owns the user's
//! id), fed by the user's sessions wherever they are connected.
//!
//! Sessions attach, beat every 15 s (with how long the client has been idle) and detach; a
//! session that stops beating (its node died) is dropped after 30 s. The actor publishes each
//! change of the user's status to the rooms the user is a member of, as a versioned
//! [`PresenceNote`]; rooms keep the newest and show it to their members. A room that starts,
//! or whose information came from a node that died, probes the presence actor, which answers
//! with the current status. Presence is soft state: when placement changes, the old owner's
//! actor stops without a word and the new owner's actor learns the sessions from their next
//! heartbeats (it waits one heartbeat interval before declaring anybody offline).
//!
//! - [`state`]: the rules, unit-tested with explicit times;
//! - this file: the actor and the per-node directory of presence actors.

mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, PresenceOp};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::rich::PresenceStatus;

pub use state::{Effects, PresenceState, PresenceTimings};

use crate::cluster::{Cluster, Owner, owner_in};
use crate::context::{ContextRef, NodeContext};
use crate::room::RoomMsg;

/// How often a presence actor checks its sessions' heartbeats.
const TICK: Duration = Duration::from_secs(2);
/// A presence actor with nothing to do stops after this long.
const LINGER: Duration = Duration::from_secs(30);

/// A user's status as their presence actor reports it to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceNote {
    /// The user.
    pub user_id: Snowflake,
    /// Their status.
    pub status: PresenceStatus,
    /// When one of the user's sessions was last heard from (unknown: `None`).
    pub last_seen: Option<u64>,
    /// Newer reports have higher versions.
    pub version: u64,
    /// The node of the reporting presence actor.
    pub source: NodeId,
}

/// Messages a presence actor handles.
#[derive(Debug)]
pub enum PresenceMsg {
    /// An op from one of the user's sessions, or a room's probe.
    Op(PresenceOp),
    /// Periodic: expire silent sessions, turn idle users away.
    Tick,
    /// Left the directory: stop, unless an op that was already queued revived it.
    Stop,
    /// This node no longer owns the user: stop without publishing anything.
    Retire,
}

/// Start-up arguments.
pub struct PresenceArgs {
    /// The user.
    pub user: Snowflake,
    /// Wait before declaring the user offline (placement changed recently).
    pub warm: bool,
    /// Node handles.
    pub ctx: NodeContext,
}

/// The presence actor.
pub struct PresenceActor;

/// The actor's state: the rules plus where to publish.
pub struct PresenceActorState {
    logic: PresenceState,
    ctx: NodeContext,
    rooms: Vec<Snowflake>,
    idle_since: Option<Instant>,
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for PresenceActor {
    type Msg = PresenceMsg;
    type State = PresenceActorState;
    type Arguments = PresenceArgs;

    async fn pre_start(
        &self,
        me: ActorRef<PresenceMsg>,
        args: PresenceArgs,
    ) -> Result<PresenceActorState, ActorProcessingErr> {
        let timings = args.ctx.presence.timings();
        let timer = me.send_interval(TICK, || PresenceMsg::Tick);
        Ok(PresenceActorState {
            logic: PresenceState::new(args.user, timings, Instant::now(), args.warm),
            ctx: args.ctx,
            rooms: Vec::new(),
            idle_since: None,
            timer: Some(timer),
        })
    }

    async fn post_stop(
        &self,
        me: ActorRef<PresenceMsg>,
        state: &mut PresenceActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        state
            .ctx
            .presence
            .remove_if(state.logic.user, me.get_id())
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<PresenceMsg>,
        msg: PresenceMsg,
        state: &mut PresenceActorState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match msg {
            // An untimed op of a version 10 node counts from now.
            PresenceMsg::Op(op) => match op.timed(now_ms()) {
                PresenceOp::Push {
                    payload,
                    dedupe,
                    at_ms,
                } => {
                    // The one place that decides to push: this actor alone knows every
                    // session of the user across the cluster and which of them is focused.
                    if state.logic.holds_push(at_ms) {
                        metrics::counter!("voiceflow_push_skipped_focused_total").increment(1);
                    } else if let Some(push) = &state.ctx.push {
                        push.push(state.logic.user, payload, dedupe);
                    }
                }
                op => {
                    let effects = state.logic.apply(op, now);
                    state.publish(effects).await;
                }
            },
            PresenceMsg::Tick => {
                let effects = state.logic.tick(now);
                state.publish(effects).await;
            }
            PresenceMsg::Stop => {
                if state.logic.finished(now) {
                    me.stop(None);
                } else if !state.ctx.presence.reinsert(state.logic.user, &me).await {
                    // A newer actor serves the user; it learns the sessions from their beats.
                    me.stop(None);
                }
                return Ok(());
            }
            PresenceMsg::Retire => {
                me.stop(Some("placement changed".into()));
                return Ok(());
            }
        }
        if state.logic.finished(now) {
            let since = *state.idle_since.get_or_insert(now);
            if now.duration_since(since) >= LINGER
                && state
                    .ctx
                    .presence
                    .remove_if(state.logic.user, me.get_id())
                    .await
            {
                // Everything cast before the removal is queued ahead of this.
                let _ = me.cast(PresenceMsg::Stop);
            }
        } else {
            state.idle_since = None;
        }
        Ok(())
    }
}

impl PresenceActorState {
    fn note(&self) -> PresenceNote {
        PresenceNote {
            user_id: self.logic.user,
            status: self.logic.status,
            last_seen: self.logic.last_seen,
            version: self.logic.version,
            source: self.ctx.directory.cluster().map_or(0, |c| c.node_id()),
        }
    }

    async fn publish(&mut self, effects: Effects) {
        if effects.publish {
            // The user's rooms now (memberships change); a failed read keeps the last list.
            match self.ctx.store.user_rooms(self.logic.user).await {
                Ok(rooms) => {
                    for m in rooms {
                        if !self.rooms.contains(&m.room_id) {
                            self.rooms.push(m.room_id);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(user = %self.logic.user, error = %e, "presence: cannot read the user's rooms")
                }
            }
        }
        for room in &effects.answer {
            if !self.rooms.contains(room) {
                self.rooms.push(*room);
            }
        }
        let note = self.note();
        let targets: &[Snowflake] = if effects.publish {
            &self.rooms
        } else {
            &effects.answer
        };
        for room in targets {
            self.ctx
                .directory
                .send_if_running(*room, RoomMsg::Presence(note));
        }
    }
}

/// This node's presence actors, by user.
#[derive(Clone)]
pub struct PresenceDirectory(Arc<Inner>);

struct Inner {
    /// The context presence actors start with (held weakly: it holds this directory).
    ctx: ContextRef,
    /// Places users' presence actors (all here without one).
    cluster: Option<Arc<dyn Cluster>>,
    actors: tokio::sync::Mutex<HashMap<Snowflake, ActorRef<PresenceMsg>>>,
    /// When placement last changed (or the node started): new actors warm up until then + TTL.
    placed_at: parking_lot::Mutex<Instant>,
    timings: PresenceTimings,
}

impl PresenceDirectory {
    /// An empty directory whose actors start with `ctx`, placed by `cluster`.
    pub(crate) fn new(
        ctx: ContextRef,
        timings: PresenceTimings,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Self {
        PresenceDirectory(Arc::new(Inner {
            ctx,
            cluster,
            actors: tokio::sync::Mutex::new(HashMap::new()),
            // A node's first placement is not a change: nobody's sessions are looking for
            // another owner, so there is nothing to wait for.
            placed_at: parking_lot::Mutex::new(
                Instant::now()
                    .checked_sub(timings.warm_up)
                    .unwrap_or_else(Instant::now),
            ),
            timings,
        }))
    }

    /// The timings actors use.
    pub fn timings(&self) -> PresenceTimings {
        self.0.timings
    }

    /// Sends `op` to `user`'s presence actor, wherever it lives (started here if this node owns
    /// the user and none runs). Dropped while nobody may own it (a partition; sessions beat
    /// again).
    pub async fn send(&self, user: Snowflake, op: PresenceOp) {
        match owner_in(self.0.cluster.as_deref(), user) {
            Owner::Local => self.local(user, op).await,
            Owner::Remote(node) => {
                if let Some(cluster) = &self.0.cluster
                    && let Err(e) = cluster.presence(node, user, op)
                {
                    tracing::debug!(%user, peer = node, error = %e, "presence op not sent");
                }
            }
            Owner::Unavailable => {}
        }
    }

    /// Sends `op` to the local presence actor of `user`, starting it if needed.
    pub async fn local(&self, user: Snowflake, op: PresenceOp) {
        let Ok(ctx) = self.0.ctx.get() else {
            return;
        };
        let mut actors = self.0.actors.lock().await;
        let mut msg = PresenceMsg::Op(op);
        if let Some(actor) = actors.get(&user) {
            match actor.cast(msg) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(back)) => msg = back,
                Err(_) => return,
            }
            actors.remove(&user);
        }
        let warm = self.0.placed_at.lock().elapsed() < self.0.timings.warm_up;
        let args = PresenceArgs { user, warm, ctx };
        match Actor::spawn(None, PresenceActor, args).await {
            Ok((actor, _)) => {
                let _ = actor.cast(msg);
                actors.insert(user, actor);
            }
            Err(e) => tracing::warn!(%user, error = %e, "cannot start a presence actor"),
        }
    }

    /// Removes `user`'s entry if it is still actor `id`; whether it was.
    async fn remove_if(&self, user: Snowflake, id: ActorId) -> bool {
        let mut actors = self.0.actors.lock().await;
        if actors.get(&user).is_some_and(|a| a.get_id() == id) {
            actors.remove(&user);
            return true;
        }
        false
    }

    /// Puts a revived actor back, unless another took its place; whether it did.
    async fn reinsert(&self, user: Snowflake, actor: &ActorRef<PresenceMsg>) -> bool {
        let mut actors = self.0.actors.lock().await;
        if actors.contains_key(&user) {
            return false;
        }
        actors.insert(user, actor.clone());
        true
    }

    /// Placement changed: actors of users this node no longer owns stop (silently), and new
    /// actors warm up before declaring anyone offline.
    pub async fn rebalance(&self) {
        *self.0.placed_at.lock() = Instant::now();
        let mut actors = self.0.actors.lock().await;
        actors.retain(|user, actor| {
            let keep = owner_in(self.0.cluster.as_deref(), *user) == Owner::Local;
            if !keep {
                let _ = actor.cast(PresenceMsg::Retire);
            }
            keep
        });
    }

    /// Stops every presence actor here (the node is shutting down).
    pub async fn stop_all(&self) {
        for (_, actor) in self.0.actors.lock().await.drain() {
            actor.stop(Some("shutdown".into()));
        }
    }

    /// Presence actors running here.
    pub async fn len(&self) -> usize {
        self.0.actors.lock().await.len()
    }

    /// Whether none runs here.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}
