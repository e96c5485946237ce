//! The room actor: one per active room, on the node the directory chose.
//!
//! It owns the room's order: messages get their ids here, are written to storage in batches
//! (one write in flight per room, so batches commit in order), and only once a batch is durable
//! are its messages acknowledged and broadcast: each event encoded once, the same bytes pushed
//! to every live member's outbox. A crash loses nothing acknowledged: the restarted actor
//! rebuilds from storage and subscribed sessions re-join from the last message they got.

mod action;
mod msg;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_actor;
#[cfg(test)]
mod tests_channel;
#[cfg(test)]
mod tests_fencing;
#[cfg(test)]
mod tests_rich;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use voiceflow_schema::RoomRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::RoomRef;

use crate::context::NodeContext;
use crate::error::ActorError;
pub use action::{ActReply, Action, CallAction, StageAction, VoiceOp};
pub use msg::{Author, Reply, RoomMsg, SessionLink};
pub use state::mentions::effective_settings;
pub use state::{PRESENCE_INTERVAL, RECEIPT_DELAY, ResyncData, RoomState, leave_answer, view_of};

/// How often a voice channel reports held-back speaking changes and checks heartbeats.
const VOICE_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// How often, and how far apart (times the attempt, up to 8×), an automatic re-join that
/// failed for a moment is tried again: about 35 s in all, longer than a storage restart.
const JOIN_RETRIES: u32 = 12;
const JOIN_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a room that just started waits for its members' presence before answering a
/// member list.
const PRESENCE_PROBE_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Start-up arguments.
pub struct RoomArgs {
    /// The room as stored.
    pub room: RoomRecord,
    /// Node handles.
    pub ctx: NodeContext,
}

/// The room actor.
pub struct RoomActor;

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<RoomMsg>,
        args: RoomArgs,
    ) -> Result<RoomState, ActorProcessingErr> {
        Ok(RoomState::load(args.room, args.ctx).await?)
    }

    async fn post_start(
        &self,
        me: ActorRef<RoomMsg>,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        let period = state.ctx.config.room_idle_timeout / 4;
        state.idle_timer = Some(
            me.send_interval(period.max(std::time::Duration::from_millis(100)), || {
                RoomMsg::IdleCheck
            }),
        );
        probe(state, state.member_ids());
        if matches!(
            state.room.kind,
            voiceflow_schema::RoomKind::Voice
                | voiceflow_schema::RoomKind::Stage
                | voiceflow_schema::RoomKind::Dm
        ) {
            // Speaking changes held back by the throttle, and participants' heartbeats.
            state.voice_timer = Some(me.send_interval(VOICE_TICK, || RoomMsg::VoiceTick));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        me: ActorRef<RoomMsg>,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        // A call in progress ends with its conversation's actor.
        state.end_call_on_stop();
        me.stop_children(None);
        if let Some(timer) = state.idle_timer.take() {
            timer.abort();
        }
        if let Some(timer) = state.voice_timer.take() {
            timer.abort();
        }
        state.close_remote_followers();
        state.voice_shutdown();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<RoomMsg>,
        event: ractor::SupervisionEvent,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        // The only children are call actors. One that stops normally reported its end first;
        // one that failed takes its call down with it (the room carries on).
        if let ractor::SupervisionEvent::ActorFailed(cell, reason) = event {
            tracing::warn!(room = %state.room.id, %reason, "call actor failed");
            state.handle_call_exit(&cell);
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<RoomMsg>,
        msg: RoomMsg,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_use() {
            state.touch();
        }
        match msg {
            RoomMsg::Join {
                session,
                since,
                epoch,
                members,
                reply,
            } => {
                let (user, session_id) = (session.user_id, session.session_id);
                if let Some((session, since, epoch, members, reply)) = state
                    .handle_join(session, since, epoch, members, reply)
                    .await
                {
                    let tries = state.join_retries.entry(session_id).or_default();
                    *tries += 1;
                    if *tries <= JOIN_RETRIES {
                        let delay = JOIN_RETRY_DELAY * (*tries).min(8);
                        me.send_after(delay, move || RoomMsg::Join {
                            session,
                            since,
                            epoch,
                            members,
                            reply,
                        });
                    } else {
                        state.join_retries.remove(&session_id);
                        session.to.forget_room(state.room.id);
                        reply.send(Err(ActorError::Unavailable));
                    }
                } else {
                    state.join_retries.remove(&session_id);
                }
                if state.presence_unknown(user) {
                    probe(state, vec![user]);
                }
            }
            RoomMsg::Leave {
                session_id,
                user_id,
                reply,
            } => state.handle_leave(session_id, user_id, reply),
            RoomMsg::Post {
                author,
                post,
                reply,
            } => state.handle_post(author, post, reply).await,
            RoomMsg::Act {
                author,
                action,
                reply,
            } => state.handle_act(author, action, reply).await,
            RoomMsg::Committed(result) => state.handle_committed(result),
            RoomMsg::Resynced(result) => state.handle_resynced(result),
            RoomMsg::Typing {
                session_id,
                user_id: user,
                start,
                reply,
            } => {
                let allowed = match (state.is_subscribed(session_id, user), start) {
                    (false, _) => Err(ActorError::Forbidden("join the room before typing in it")),
                    (true, true) => state.may_type(user).await,
                    (true, false) => Ok(()),
                };
                match (&allowed, start) {
                    (Ok(()), true) => {
                        if let Some(generation) = state.handle_typing_start(user) {
                            let ttl = state.ctx.config.typing_ttl;
                            me.send_after(ttl, move || RoomMsg::TypingExpired {
                                user_id: user,
                                generation,
                            });
                        }
                    }
                    (Ok(()), false) => state.handle_typing_stop(user),
                    (Err(_), _) => {}
                }
                if let Some(reply) = reply {
                    let room_id = state.room.id;
                    reply.send(allowed.map(|()| RoomRef { room_id }));
                }
            }
            RoomMsg::Renamed { user_id, username } => state.handle_renamed(user_id, username),
            RoomMsg::TypingExpired {
                user_id,
                generation,
            } => state.handle_typing_expired(user_id, generation),
            RoomMsg::AddMember { author, reply } => {
                let _ = reply.send(state.handle_add_member(author).await);
            }
            RoomMsg::RemoveMember {
                user_id,
                removed_by,
                reply,
            } => {
                let _ = reply.send(state.handle_remove_member(user_id, removed_by).await);
            }
            RoomMsg::DeleteMessage {
                message_id,
                by,
                reply,
            } => state.handle_delete_message(message_id, by, reply).await,
            RoomMsg::Updated(room) => state.handle_updated(*room).await,
            RoomMsg::Registered => state.reload_channel().await,
            RoomMsg::DisconnectVoice {
                user_id,
                moved_to,
                by,
                reply,
            } => {
                let _ = reply.send(state.disconnect_voice(user_id, moved_to, by));
            }
            RoomMsg::DeleteRoom { by, reply } => {
                let result = state.handle_delete_room(by).await;
                let deleted = result.is_ok();
                let _ = reply.send(result);
                if deleted {
                    self.retire(&me, state);
                }
            }
            RoomMsg::Members(reply) => {
                // Right after start the members' presence is still on its way: answer once the
                // probes had a moment (a list is only as good as its statuses).
                let waited = state.started_at.elapsed();
                if waited < PRESENCE_PROBE_WAIT {
                    state.waiting_members.push(reply);
                    if state.waiting_members.len() == 1 {
                        me.send_after(PRESENCE_PROBE_WAIT - waited, || RoomMsg::AnswerMembers);
                    }
                } else {
                    let _ = reply.send(Ok(state.participants(false)));
                }
            }
            RoomMsg::AnswerMembers => {
                let list = state.participants(false);
                for reply in state.waiting_members.drain(..) {
                    let _ = reply.send(Ok(list.clone()));
                }
            }
            RoomMsg::Presence(note) => state.handle_presence(note, std::time::Instant::now()),
            RoomMsg::FlushPresence => state.handle_flush_presence(std::time::Instant::now()),
            RoomMsg::FlushReceipts => state.handle_flush_receipts(),
            RoomMsg::Reprobe(users) => probe(state, users),
            RoomMsg::Voice { session, op, reply } => {
                state.handle_voice(&me, session, op, reply).await
            }
            RoomMsg::VoiceEvent(event) => state.handle_voice_event(event),
            RoomMsg::CallReport(report) => state.handle_call_report(report),
            RoomMsg::VoiceTick => state.voice_tick(),
            RoomMsg::VoiceJoined(session_id) => state.handle_voice_joined(session_id),
            RoomMsg::IdleCheck => {
                if state.is_idle() {
                    self.retire(&me, state);
                }
            }
            RoomMsg::Retire => self.retire(&me, state),
            RoomMsg::RetireMarker => state.retire_marker_seen = true,
            RoomMsg::NodeDown(node) => {
                state.handle_node_down(node);
                state.voice_node_down(node);
                let users = state.presence_from(node);
                if !users.is_empty() {
                    // Its presence actors moved: ask the new owners once sessions found them.
                    let wait = state.ctx.presence.timings().warm_up;
                    me.send_after(wait, move || RoomMsg::Reprobe(users));
                }
            }
        }
        if let Some(delay) = state.take_presence_flush() {
            me.send_after(delay, || RoomMsg::FlushPresence);
        }
        if state.take_receipts_flush() {
            me.send_after(state::RECEIPT_DELAY, || RoomMsg::FlushReceipts);
        }
        self.start_write(&me, state);
        if state.retire_marker_seen && state.writes_done() {
            me.stop(Some("retired".into()));
        }
        Ok(())
    }
}

impl RoomActor {
    /// Starts the next storage write if none is in flight. The write runs off the actor so the
    /// room keeps accepting posts (they form the next batch) while storage syncs.
    fn start_write(&self, me: &ActorRef<RoomMsg>, state: &mut RoomState) {
        if state.is_fenced() {
            // A newer owner writes the room now: fail what is queued, leave, stop.
            let _ = state.take_write_batch();
            self.retire(me, state);
            return;
        }
        if state.needs_resync() {
            let (after, owner_epoch, wait) = state.begin_resync();
            let (store, room, me) = (state.ctx.store.clone(), state.room.id, me.clone());
            tokio::spawn(async move {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let result = async {
                    // A new epoch first, so the failed write's entries, should they land
                    // later, never replace or follow the entries written next.
                    let owner_epoch = store.claim_room(room, Some(owner_epoch)).await?;
                    let head = store.log_head(room).await?;
                    let events = match head {
                        Some(h) if h.seq > after => {
                            let missing = u32::try_from(h.seq - after).unwrap_or(u32::MAX);
                            store.events_after(room, after, missing).await?
                        }
                        _ => Vec::new(),
                    };
                    Ok(ResyncData {
                        owner_epoch,
                        head,
                        events,
                    })
                }
                .await;
                let _ = me.cast(RoomMsg::Resynced(result));
            });
            return;
        }
        let Some(batch) = state.take_write_batch() else {
            return;
        };
        let store = state.ctx.store.clone();
        let me = me.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = store.commit_events(&batch).await;
            metrics::histogram!("voiceflow_storage_append_seconds")
                .record(started.elapsed().as_secs_f64());
            // If the room died meanwhile the changes are stored but unacknowledged; a retry
            // with the same nonce finds a message, a re-join replays the log.
            let _ = me.cast(RoomMsg::Committed(result));
        });
    }

    /// Leaves the directory (nothing new reaches this actor), then handles what was already
    /// queued, waits for its storage writes to be acknowledged, and stops.
    fn retire(&self, me: &ActorRef<RoomMsg>, state: &mut RoomState) {
        if state.retiring {
            return;
        }
        state.retiring = true;
        state.ctx.directory.begin_retire(state.room.id, me);
        let _ = me.cast(RoomMsg::RetireMarker);
    }
}

/// Asks `users`' presence actors to report to this room (in the background: the room does not
/// wait).
fn probe(state: &RoomState, users: Vec<Snowflake>) {
    if users.is_empty() {
        return;
    }
    let presence = state.ctx.presence.clone();
    let room = state.room.id;
    tokio::spawn(async move {
        for user in users {
            presence
                .send(user, voiceflow_wire::cluster::PresenceOp::Probe { room })
                .await;
        }
    });
}
