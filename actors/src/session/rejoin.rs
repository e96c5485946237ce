//! Following a room that moved: the session re-joins it wherever it lives now, from the last
//! seq it delivered, and sends again a client's join that the room's old owner never
//! confirmed (its node died, or it handed the room off first), so that the client's request
//! is still answered, by the new owner.

use ractor::{ActorId, ActorRef};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::frame;

use super::{Attached, MAX_REJOINS, SessionMsg, SessionState};

/// A client's `room:join` sent to another node, as the client asked it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientJoin {
    /// The client's request id (its ack is still owed).
    pub req_id: u64,
    /// Resume point the client gave.
    pub since: Option<u64>,
    /// Log epoch the client gave.
    pub epoch: Option<u64>,
    /// Whether the client asked for the member list.
    pub members: bool,
}

impl SessionState {
    /// A monitored room actor stopped or crashed. If this session still wants the room, join
    /// it again (a fresh actor starts from storage) and replay what this session missed.
    pub async fn handle_room_gone(&mut self, me: &ActorRef<SessionMsg>, gone: ActorId) {
        let Some(room_id) = self
            .joined
            .iter()
            .find(|(_, a)| a.local_id() == Some(gone))
            .map(|(r, _)| *r)
        else {
            return;
        };
        self.rejoin(me, room_id).await;
    }

    /// The room's owner on another node stopped serving it (`subscribed`: it had confirmed
    /// this session's join).
    pub(super) async fn handle_moved(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        subscribed: bool,
    ) {
        if subscribed {
            // Its ack reached the client already.
            self.unconfirmed.remove(&room_id);
        }
        // Unless it already followed the room to its new owner (two notices).
        let following = self
            .ctx
            .sessions
            .is_pending(room_id, self.session_id)
            .is_some();
        if !following && matches!(self.joined.get(&room_id), Some(Attached::Remote(_))) {
            self.rejoin(me, room_id).await;
        }
    }

    /// A join sent to another node `JOIN_CONFIRM_WAIT` ago: if that node has not confirmed
    /// it (the request was lost with a node that died, say), join again.
    pub(super) async fn check_join(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        generation: u64,
    ) {
        let remote = matches!(self.joined.get(&room_id), Some(Attached::Remote(_)));
        if !remote || generation != self.join_generation || self.outbox.is_closed() {
            return;
        }
        match self.ctx.sessions.is_pending(room_id, self.session_id) {
            // Confirmed: the owner answered the client.
            Some(false) => {
                self.unconfirmed.remove(&room_id);
                self.joins_deferred.remove(&room_id);
            }
            // No longer followed: the registry let the entry go, and the notice of why (the
            // room refused it, said to try later, or moved) is on its way to this session and
            // decides. Concluding "refused" here left a session deaf: a "try later" or "moved"
            // notice queued behind this check found the room no longer joined and did nothing,
            // while the client still counted on the room (seen in the chaos soak after a CQL
            // restart: a receiver heard nothing more from its room, nothing was lost).
            None => {}
            Some(true) => {
                tracing::debug!(session = self.session_id, %room_id, "join not confirmed; joining again");
                self.joined.remove(&room_id);
                self.ctx.sessions.unfollow(room_id, self.session_id);
                match self.outbox.last_seq(room_id) {
                    Some(since) => self.try_rejoin(me, room_id, since, 0).await,
                    None if self.unconfirmed.contains_key(&room_id) => {
                        self.try_rejoin(me, room_id, 0, 0).await
                    }
                    None => {
                        if let Err(e) = self
                            .handle_join(me, room_id, (None, None), false, None)
                            .await
                        {
                            self.outbox.push(frame::failure(None, &e.error));
                        }
                    }
                }
            }
        }
    }

    /// The room's owner on another node let this session go (refused its join, the room was
    /// deleted, the member removed): it no longer follows or waits for the room.
    pub(super) fn dropped(&mut self, room_id: Snowflake) {
        if matches!(self.joined.get(&room_id), Some(Attached::Remote(_))) {
            self.joined.remove(&room_id);
        }
        self.unconfirmed.remove(&room_id);
        self.joins_deferred.remove(&room_id);
    }

    /// The room's owner on another node could not serve this session's re-join yet (the
    /// registry no longer counts it as following): try again after a back-off that grows
    /// while that lasts, and give up (telling the client) after as many tries as a local
    /// re-join gets.
    pub(super) fn join_later(&mut self, me: &ActorRef<SessionMsg>, room_id: Snowflake) {
        if !matches!(self.joined.get(&room_id), Some(Attached::Remote(_))) {
            return;
        }
        self.joined.remove(&room_id);
        let tries = self.joins_deferred.entry(room_id).or_insert(0);
        *tries += 1;
        let tries = *tries;
        if tries > MAX_REJOINS {
            self.joins_deferred.remove(&room_id);
            self.outbox.forget_room(room_id);
            let mut error = voiceflow_wire::ErrorBody::unavailable(
                "the room stayed unavailable; join it again",
            );
            ask_to_rejoin(&mut error, room_id);
            self.outbox.push(frame::failure(None, &error));
            return;
        }
        let since = self.outbox.last_seq(room_id).unwrap_or(0);
        // Views of the members differ for a heartbeat or so after a change: try again soon,
        // then less often (50 ms more each time, at most every 1.6 s).
        let delay = std::time::Duration::from_millis(50 * u64::from(tries.min(32)));
        tracing::debug!(session = self.session_id, %room_id, tries, ?delay, "the owner cannot serve the re-join yet");
        me.send_after(delay, move || SessionMsg::Rejoin {
            room_id,
            since,
            attempt: 0,
        });
    }

    /// A re-join that failed for the moment is due again.
    pub(super) async fn rejoin_again(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        since: u64,
        attempt: u32,
    ) {
        // Unless the client left the room (or joined it again) meanwhile.
        let wanted = (self.outbox.last_seq(room_id).is_some()
            || self.unconfirmed.contains_key(&room_id))
            && !self.joined.contains_key(&room_id)
            && !self.outbox.is_closed();
        if wanted {
            self.try_rejoin(me, room_id, since, attempt).await;
        }
    }

    /// Joins `room_id` again from the last message this session got (the room's actor
    /// stopped or moved). Retries for a while: during a hand-off or after a node died, the new
    /// owner may need a moment.
    async fn rejoin(&mut self, me: &ActorRef<SessionMsg>, room_id: Snowflake) {
        self.joined.remove(&room_id);
        self.ctx.sessions.unfollow(room_id, self.session_id);
        if self.outbox.is_closed() {
            return;
        }
        let since = match self.outbox.last_seq(room_id) {
            Some(since) => since,
            // A client's join still unanswered is sent again as it was.
            None if self.unconfirmed.contains_key(&room_id) => 0,
            // The room let this session go (deleted, or membership removed).
            None => return,
        };
        tracing::debug!(session = self.session_id, %room_id, "room actor gone; re-joining");
        self.try_rejoin(me, room_id, since, 0).await;
    }

    /// One re-join attempt. While the room is unavailable (moving, or this node is cut off
    /// from the majority) it is tried again later, without holding up the session's other
    /// frames meanwhile. A client's unconfirmed join is sent as the client asked it, with its
    /// request id, so the new owner's ack (or refusal) answers it.
    pub(super) async fn try_rejoin(
        &mut self,
        me: &ActorRef<SessionMsg>,
        room_id: Snowflake,
        since: u64,
        attempt: u32,
    ) {
        let client = self.unconfirmed.remove(&room_id);
        let sent = match client {
            Some(join) => {
                let resume = (join.since, join.epoch);
                self.handle_join(me, room_id, resume, join.members, Some(join.req_id))
                    .await
            }
            None => {
                self.handle_join(me, room_id, (Some(since), None), false, None)
                    .await
            }
        };
        match sent {
            Ok(()) => {}
            // A CQL server restart answers STORAGE_UNAVAILABLE for as long as it takes; the
            // session keeps the room (and its resume point) and tries again.
            Err(e) if e.error.code.is_transient() && attempt < MAX_REJOINS => {
                tracing::debug!(session = self.session_id, %room_id, attempt, code = e.error.code.as_str(), "re-join failed for now; trying again");
                if let Some(join) = client {
                    self.unconfirmed.insert(room_id, join);
                }
                let delay = std::time::Duration::from_millis(50 << attempt.min(5));
                me.send_after(delay, move || SessionMsg::Rejoin {
                    room_id,
                    since,
                    attempt: attempt + 1,
                });
            }
            // The client's own join: its request gets the refusal.
            Err(e) if client.is_some() => {
                self.outbox.forget_room(room_id);
                self.outbox.push(frame::failure(e.id, &e.error));
            }
            Err(mut e) => {
                tracing::info!(session = self.session_id, %room_id, attempt, code = e.error.code.as_str(), "re-join refused; the client must join again");
                self.outbox.forget_room(room_id);
                // No request to answer: the details name the room the client must join again.
                ask_to_rejoin(&mut e.error, room_id);
                self.outbox.push(frame::failure(None, &e.error));
            }
        }
    }
}

/// Adds `roomId` and `rejoin: true` to an error's details (keeping what it has, such as
/// UNAVAILABLE's `retryAfterMs`): the error then tells the client which room to join again.
fn ask_to_rejoin(error: &mut voiceflow_wire::ErrorBody, room_id: Snowflake) {
    let mut details = match error.details.take() {
        Some(serde_json::Value::Object(details)) => details,
        _ => serde_json::Map::new(),
    };
    details.insert("roomId".into(), room_id.to_string().into());
    details.insert("rejoin".into(), true.into());
    error.details = Some(serde_json::Value::Object(details));
}
