//! The room directory: the only way to reach a room. It maps a room id to the actor that owns
//! the room, starting the actor on first use. Everything goes through [`RoomDirectory::send`]
//! and [`RoomDirectory::call`], so that when rooms can live on other nodes only this file has to
//! learn where they are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use ractor::{Actor, ActorId, ActorRef, MessagingErr, RpcReplyPort};
use voiceflow_wire::Snowflake;

use crate::context::NodeContext;
use crate::error::ActorError;
use crate::room::{RoomActor, RoomArgs, RoomMsg};
use crate::supervisor::SupervisorMsg;

/// How long a request waits for a room's answer before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Inner {
    rooms: RwLock<HashMap<Snowflake, ActorRef<RoomMsg>>>,
    /// Serializes room starts so one room never gets two actors.
    start_lock: tokio::sync::Mutex<()>,
    supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
}

/// Room id → room actor. Cheap to clone.
#[derive(Clone, Default)]
pub struct RoomDirectory(Arc<Inner>);

impl RoomDirectory {
    /// An empty directory. Rooms start under `supervisor` once [`Self::set_supervisor`] ran.
    pub fn new() -> Self {
        Self::default()
    }

    /// The supervisor new room actors are linked to.
    pub fn set_supervisor(&self, supervisor: ActorRef<SupervisorMsg>) {
        *self.0.supervisor.write() = Some(supervisor);
    }

    /// Number of running room actors.
    pub fn active_rooms(&self) -> usize {
        self.0.rooms.read().len()
    }

    /// The running actor of a room, if any (does not start one).
    pub fn running(&self, room_id: Snowflake) -> Option<ActorRef<RoomMsg>> {
        self.0.rooms.read().get(&room_id).cloned()
    }

    /// Sends `msg` to the room, starting its actor if needed. If the actor it found had just
    /// stopped, the message comes back and is sent to a fresh actor (once).
    /// Returns the actor that took the message (sessions monitor it).
    pub async fn send(
        &self,
        ctx: &NodeContext,
        room_id: Snowflake,
        msg: RoomMsg,
    ) -> Result<ActorRef<RoomMsg>, ActorError> {
        let mut msg = msg;
        for _ in 0..3 {
            let actor = self.get_or_start(ctx, room_id).await?;
            // Cast under the read lock: once `remove_if` (write lock) returned, no message can
            // reach the retiring actor through the directory any more.
            let sent = {
                let rooms = self.0.rooms.read();
                match rooms.get(&room_id) {
                    Some(current) if current.get_id() == actor.get_id() => actor.cast(msg),
                    _ => Err(MessagingErr::SendErr(msg)),
                }
            };
            match sent {
                Ok(()) => return Ok(actor),
                Err(MessagingErr::SendErr(back)) => {
                    self.remove_if(room_id, actor.get_id());
                    msg = back;
                }
                Err(_) => return Err(ActorError::Unavailable),
            }
        }
        Err(ActorError::Unavailable)
    }

    /// Sends a request built around a reply port and waits for the answer.
    pub async fn call<T, F>(
        &self,
        ctx: &NodeContext,
        room_id: Snowflake,
        build: F,
    ) -> Result<T, ActorError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<Result<T, ActorError>>) -> RoomMsg,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(ctx, room_id, build(RpcReplyPort::from(tx)))
            .await?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            // The actor stopped (or crashed) before answering.
            Ok(Err(_)) | Err(_) => Err(ActorError::Unavailable),
        }
    }

    /// The room's actor, started from storage if it is not running. `RoomNotFound` if the room
    /// does not exist.
    pub async fn get_or_start(
        &self,
        ctx: &NodeContext,
        room_id: Snowflake,
    ) -> Result<ActorRef<RoomMsg>, ActorError> {
        if let Some(actor) = self.running(room_id) {
            return Ok(actor);
        }
        let _guard = self.0.start_lock.lock().await;
        if let Some(actor) = self.running(room_id) {
            return Ok(actor);
        }
        let room = ctx
            .store
            .room_by_id(room_id)
            .await?
            .ok_or(ActorError::RoomNotFound)?;
        let supervisor = self.0.supervisor.read().clone();
        let args = RoomArgs {
            room,
            ctx: ctx.clone(),
        };
        let spawned = match supervisor {
            Some(sup) => Actor::spawn_linked(None, RoomActor, args, sup.get_cell()).await,
            None => Actor::spawn(None, RoomActor, args).await,
        };
        let (actor, _join) = spawned.map_err(|e| {
            tracing::error!(room = %room_id, error = %e, "room actor failed to start");
            ActorError::Unavailable
        })?;
        self.0.rooms.write().insert(room_id, actor.clone());
        metrics::gauge!("voiceflow_rooms_active").set(self.active_rooms() as f64);
        Ok(actor)
    }

    /// Removes the entry for `room_id` if it still points at actor `id`.
    pub fn remove_if(&self, room_id: Snowflake, id: ActorId) -> bool {
        let mut rooms = self.0.rooms.write();
        let removed = match rooms.get(&room_id) {
            Some(actor) if actor.get_id() == id => rooms.remove(&room_id).is_some(),
            _ => false,
        };
        drop(rooms);
        if removed {
            metrics::gauge!("voiceflow_rooms_active").set(self.active_rooms() as f64);
        }
        removed
    }

    /// Removes whichever room actor `id` was (after it stopped or crashed).
    pub fn forget_actor(&self, id: ActorId) -> Option<Snowflake> {
        let room = self
            .0
            .rooms
            .read()
            .iter()
            .find(|(_, a)| a.get_id() == id)
            .map(|(r, _)| *r)?;
        self.remove_if(room, id).then_some(room)
    }

    /// Every running room actor (for shutdown).
    pub fn all(&self) -> Vec<ActorRef<RoomMsg>> {
        self.0.rooms.read().values().cloned().collect()
    }
}
