//! The room directory: the only way to reach a room. It asks the cluster (if any) which node
//! owns the room; a room owned here maps to its local actor, started on first use (after the
//! cluster made sure no other node still runs it); a room owned elsewhere gets the request
//! forwarded to its node. Everything goes through [`RoomDirectory::send`] and
//! [`RoomDirectory::call`], so nothing else knows where rooms live.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use ractor::{Actor, ActorId, ActorRef, MessagingErr, RpcReplyPort};
use voiceflow_wire::Snowflake;

use crate::cluster::{Cluster, Owner};
use crate::context::ContextRef;
use crate::error::ActorError;
use crate::room::{RoomActor, RoomArgs, RoomMsg};
use crate::supervisor::{Supervisor, SupervisorKind, SupervisorMsg};
use voiceflow_wire::cluster::NodeId;

#[path = "handoff.rs"]
mod handoff;

/// How long a request waits for a room's answer before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's room actors: running ones, and ones that left and are finishing their writes.
/// The room supervisor holds it too, to forget an actor that stopped or crashed.
#[derive(Default)]
pub struct RoomActors {
    rooms: RwLock<HashMap<Snowflake, ActorRef<RoomMsg>>>,
    /// Actors that left `rooms` and are finishing their writes before they stop.
    retiring: RwLock<HashMap<Snowflake, ActorRef<RoomMsg>>>,
}

impl RoomActors {
    /// Removes the entry for `room_id` if it still points at actor `id`.
    pub fn remove_if(&self, room_id: Snowflake, id: ActorId) -> bool {
        let mut rooms = self.rooms.write();
        match rooms.get(&room_id) {
            Some(actor) if actor.get_id() == id => rooms.remove(&room_id).is_some(),
            _ => false,
        }
    }

    /// Removes whichever room actor `id` was (after it stopped or crashed).
    pub fn forget_actor(&self, id: ActorId) -> Option<Snowflake> {
        let retired = {
            let mut retiring = self.retiring.write();
            let room = retiring
                .iter()
                .find(|(_, a)| a.get_id() == id)
                .map(|(r, _)| *r);
            room.and_then(|r| retiring.remove(&r).map(|_| r))
        };
        if retired.is_some() {
            return retired;
        }
        let room = self
            .rooms
            .read()
            .iter()
            .find(|(_, a)| a.get_id() == id)
            .map(|(r, _)| *r)?;
        self.remove_if(room, id).then_some(room)
    }
}

/// The room actors and the supervisor they are linked to, ready for a directory.
pub struct RoomTable {
    actors: Arc<RoomActors>,
    supervisor: ActorRef<SupervisorMsg>,
}

impl RoomTable {
    /// Starts the room supervisor (a crashed room is forgotten and, with a cluster, its
    /// followers elsewhere are told).
    pub async fn start(cluster: Option<Arc<dyn Cluster>>) -> Result<RoomTable, ractor::SpawnErr> {
        let actors = Arc::new(RoomActors::default());
        let kind = SupervisorKind::Rooms {
            actors: actors.clone(),
            cluster,
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, kind).await?;
        Ok(RoomTable { actors, supervisor })
    }
}

struct Inner {
    /// The context room actors start with (held weakly: it holds this directory).
    ctx: ContextRef,
    actors: Arc<RoomActors>,
    supervisor: ActorRef<SupervisorMsg>,
    /// Per-room start locks, so one room never gets two actors (and other rooms never wait).
    starting: parking_lot::Mutex<HashMap<Snowflake, Arc<tokio::sync::Mutex<()>>>>,
    cluster: Option<Arc<dyn Cluster>>,
    /// Bounded hand-off queues (`handoff.rs`).
    handoffs: parking_lot::Mutex<handoff::Handoffs>,
}

/// Where a request went.
#[derive(Debug, Clone)]
pub enum Route {
    /// To this node's actor (sessions monitor it).
    Local(ActorRef<RoomMsg>),
    /// To the room's owner, another node.
    Remote(NodeId),
}

/// Room id → room actor. Cheap to clone.
#[derive(Clone)]
pub struct RoomDirectory(Arc<Inner>);

impl RoomDirectory {
    /// A directory whose rooms start with `ctx`, linked to `table`'s supervisor, and placed
    /// by `cluster` (every room runs here without one).
    pub(crate) fn new(
        ctx: ContextRef,
        table: RoomTable,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Self {
        RoomDirectory(Arc::new(Inner {
            ctx,
            actors: table.actors,
            supervisor: table.supervisor,
            starting: Default::default(),
            cluster,
            handoffs: Default::default(),
        }))
    }

    /// The supervisor room actors are linked to.
    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.0.supervisor
    }

    /// The cluster, if this node is in one.
    pub fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        self.0.cluster.clone()
    }

    /// Who owns `room` now.
    pub fn owner(&self, room_id: Snowflake) -> Owner {
        crate::cluster::owner_in(self.0.cluster.as_deref(), room_id)
    }

    /// Number of running room actors.
    pub fn active_rooms(&self) -> usize {
        self.0.actors.rooms.read().len()
    }

    /// The running actor of a room, if any (does not start one).
    pub fn running(&self, room_id: Snowflake) -> Option<ActorRef<RoomMsg>> {
        self.0.actors.rooms.read().get(&room_id).cloned()
    }

    /// Sends `msg` to the room: to its node if another node owns it, else to the local actor,
    /// started if needed. If the actor it found had just stopped, the message comes back and
    /// is sent to a fresh actor. Returns where it went (sessions watch it).
    pub async fn send(&self, room_id: Snowflake, msg: RoomMsg) -> Result<Route, ActorError> {
        if self.cluster().is_none() {
            return self.send_once(room_id, msg).await;
        }
        // While a room moves (views disagree for a moment, a start backs off, a new peer's
        // link is still connecting) the request waits and retries, so clients see no error.
        let mut msg = msg;
        let mut delay = Duration::from_millis(10);
        for _ in 0..12 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let attempt = self.send_or_return(room_id, msg, tx).await;
            match attempt {
                Err(ActorError::Unavailable) => match rx.await {
                    Ok(back) => msg = back,
                    Err(_) => return Err(ActorError::Unavailable),
                },
                other => return other,
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
        Err(ActorError::Unavailable)
    }

    /// One attempt; on `Unavailable` before anything was sent, the message comes back through
    /// `back` for another try.
    async fn send_or_return(
        &self,
        room_id: Snowflake,
        msg: RoomMsg,
        back: tokio::sync::oneshot::Sender<RoomMsg>,
    ) -> Result<Route, ActorError> {
        match self.owner(room_id) {
            Owner::Local => match self.get_or_start(room_id).await {
                Ok(_) => self.send_local(room_id, msg).await.map(Route::Local),
                Err(ActorError::Unavailable) => {
                    let _ = back.send(msg);
                    Err(ActorError::Unavailable)
                }
                Err(e) => Err(e),
            },
            Owner::Remote(node) => {
                let cluster = self.cluster().ok_or(ActorError::Unavailable)?;
                if !cluster.can_reach(node) {
                    let _ = back.send(msg);
                    return Err(ActorError::Unavailable);
                }
                cluster.forward(node, room_id, msg)?;
                Ok(Route::Remote(node))
            }
            Owner::Unavailable => {
                let _ = back.send(msg);
                Err(ActorError::Unavailable)
            }
        }
    }

    async fn send_once(&self, room_id: Snowflake, msg: RoomMsg) -> Result<Route, ActorError> {
        match self.owner(room_id) {
            Owner::Local => self.send_local(room_id, msg).await.map(Route::Local),
            Owner::Remote(node) => {
                let cluster = self.cluster().ok_or(ActorError::Unavailable)?;
                cluster.forward(node, room_id, msg)?;
                Ok(Route::Remote(node))
            }
            Owner::Unavailable => Err(ActorError::Unavailable),
        }
    }

    /// Sends `msg` only if the room runs: here (if its actor is running) or on another node.
    /// For messages that must not start a room (typing, leave). Returns whether it was sent.
    pub fn send_if_running(&self, room_id: Snowflake, msg: RoomMsg) -> bool {
        match self.owner(room_id) {
            Owner::Local => self
                .running(room_id)
                .is_some_and(|actor| actor.cast(msg).is_ok()),
            Owner::Remote(node) => self
                .cluster()
                .is_some_and(|cluster| cluster.forward(node, room_id, msg).is_ok()),
            Owner::Unavailable => false,
        }
    }

    async fn send_local(
        &self,
        room_id: Snowflake,
        msg: RoomMsg,
    ) -> Result<ActorRef<RoomMsg>, ActorError> {
        let mut msg = msg;
        for _ in 0..3 {
            let actor = self.get_or_start(room_id).await?;
            // Cast under the read lock: once `remove_if` (write lock) returned, no message can
            // reach the retiring actor through the directory any more.
            let sent = {
                let rooms = self.0.actors.rooms.read();
                match rooms.get(&room_id) {
                    Some(current) if current.get_id() == actor.get_id() => actor.cast(msg),
                    _ => Err(MessagingErr::SendErr(msg)),
                }
            };
            match sent {
                Ok(()) => return Ok(actor),
                Err(MessagingErr::SendErr(back)) => {
                    self.0.actors.remove_if(room_id, actor.get_id());
                    msg = back;
                }
                Err(_) => return Err(ActorError::Unavailable),
            }
        }
        Err(ActorError::Unavailable)
    }

    /// Sends a request built around a reply port and waits for the answer.
    pub async fn call<T, F>(&self, room_id: Snowflake, build: F) -> Result<T, ActorError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<Result<T, ActorError>>) -> RoomMsg,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(room_id, build(RpcReplyPort::from(tx))).await?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            // The actor stopped (or crashed) before answering.
            Ok(Err(_)) | Err(_) => Err(ActorError::Unavailable),
        }
    }

    /// The room's actor, started from storage if it is not running. `RoomNotFound` if the room
    /// does not exist.
    pub async fn get_or_start(&self, room_id: Snowflake) -> Result<ActorRef<RoomMsg>, ActorError> {
        if let Some(actor) = self.running(room_id) {
            return Ok(actor);
        }
        let lock = self.0.starting.lock().entry(room_id).or_default().clone();
        let _guard = lock.lock().await;
        let started = self.start_locked(room_id).await;
        drop(_guard);
        let mut starting = self.0.starting.lock();
        if starting
            .get(&room_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            starting.remove(&room_id);
        }
        started
    }

    async fn start_locked(&self, room_id: Snowflake) -> Result<ActorRef<RoomMsg>, ActorError> {
        if let Some(actor) = self.running(room_id) {
            return Ok(actor);
        }
        let began = std::time::Instant::now();
        // The record first: a request for a room that does not exist must not make every peer
        // release it (and an acquire is not cancellation-safe: it registers pending releases).
        let ctx = self.0.ctx.get()?;
        let room = ctx
            .store
            .room_by_id(room_id)
            .await?
            .ok_or(ActorError::RoomNotFound)?;
        let read = began.elapsed();
        // A previous actor of this room on this node may still be finishing its writes.
        self.wait_retired(room_id, CALL_TIMEOUT).await;
        if let Some(cluster) = self.cluster() {
            cluster.acquire(room_id).await?;
            if cluster.owner(room_id) != Owner::Local {
                tracing::info!(room = %room_id, "placement moved while acquiring the room");
                // Placement moved while we asked; the caller retries with the new owner.
                return Err(ActorError::Unavailable);
            }
        }
        let acquired = began.elapsed();
        let args = RoomArgs { room, ctx };
        let spawned =
            Actor::spawn_linked(None, RoomActor, args, self.0.supervisor.get_cell()).await;
        let (actor, _join) = spawned.map_err(|e| {
            tracing::error!(room = %room_id, error = %e, "room actor failed to start");
            ActorError::Unavailable
        })?;
        self.0.actors.rooms.write().insert(room_id, actor.clone());
        let _ = actor.cast(RoomMsg::Registered);
        // Where a takeover's time goes: the room's record, asking the peers to release it,
        // then the actor's start (the ownership claim, the log's end, the members).
        let total = began.elapsed();
        metrics::histogram!("voiceflow_room_start_seconds").record(total.as_secs_f64());
        tracing::debug!(room = %room_id, read_ms = read.as_millis() as u64, acquire_ms = (acquired - read).as_millis() as u64, start_ms = (total - acquired).as_millis() as u64, "room started");
        Ok(actor)
    }

    /// Moves the room's actor `id` from the running rooms to the retiring ones: nothing new
    /// reaches it, but a release or a restart of the room waits until it stopped.
    pub fn begin_retire(&self, room_id: Snowflake, actor: &ActorRef<RoomMsg>) {
        if self.0.actors.remove_if(room_id, actor.get_id()) {
            self.0
                .actors
                .retiring
                .write()
                .insert(room_id, actor.clone());
        }
    }

    /// Waits until the retiring actor of `room_id` (if any) stopped.
    async fn wait_retired(&self, room_id: Snowflake, wait: Duration) {
        let old = self.0.actors.retiring.read().get(&room_id).cloned();
        if let Some(old) = old {
            let _ = old.get_cell().wait(Some(wait)).await;
            let mut retiring = self.0.actors.retiring.write();
            if retiring
                .get(&room_id)
                .is_some_and(|a| a.get_id() == old.get_id())
            {
                retiring.remove(&room_id);
            }
        }
    }

    /// Stops the local actor of `room` (if it runs) after it finished what it acknowledged, and
    /// waits for it. Another node is about to run the room.
    pub async fn release(&self, room_id: Snowflake, wait: Duration) {
        if let Some(actor) = self.running(room_id) {
            let _ = actor.cast(RoomMsg::Retire);
            let _ = actor.get_cell().wait(Some(wait)).await;
        }
        // One that was already retiring (handing off) answers only once its writes are done.
        self.wait_retired(room_id, wait).await;
    }

    /// Placement changed: every local room now owned elsewhere hands off (it stops taking new
    /// requests, finishes what it acknowledged and stops; its followers re-join the new owner).
    /// With a hand-off bound (`Cluster::handoff_batch`) rooms owned by another node retire
    /// that many at a time, each new owner told as each stops (`handoff.rs`); without one, or
    /// when this node owns nothing (fenced), every one retires at once. Rooms also drop the
    /// sessions of nodes that are gone.
    pub fn rebalance(&self, down: &[NodeId]) -> usize {
        let bounded = self.handoff_batch() > 0;
        let mut moved = 0;
        let mut lost = Vec::new();
        for (room_id, actor) in self.0.actors.rooms.read().iter() {
            for node in down {
                let _ = actor.cast(RoomMsg::NodeDown(*node));
            }
            match self.owner(*room_id) {
                Owner::Local => {}
                Owner::Remote(_) if bounded => lost.push(*room_id),
                Owner::Remote(_) | Owner::Unavailable => {
                    let _ = actor.cast(RoomMsg::Retire);
                    moved += 1;
                }
            }
        }
        moved += lost.len();
        if !lost.is_empty() {
            self.queue_retire(lost);
        }
        if bounded {
            self.unpark();
        }
        moved
    }

    /// Room actors still running or finishing their writes (a drain waits for none to be left).
    pub fn busy_rooms(&self) -> usize {
        self.active_rooms() + self.0.actors.retiring.read().len()
    }

    /// Every room actor, running or retiring (for shutdown).
    pub fn all_with_retiring(&self) -> Vec<ActorRef<RoomMsg>> {
        let mut all = self.all();
        all.extend(self.0.actors.retiring.read().values().cloned());
        all
    }

    /// Every running room actor (for shutdown).
    pub fn all(&self) -> Vec<ActorRef<RoomMsg>> {
        self.0.actors.rooms.read().values().cloned().collect()
    }
}
