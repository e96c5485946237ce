//! 1:1 calls in a direct conversation (a room of kind `dm`). The room routes the sides'
//! `call:*` requests and its media changes to the call's actor ([`crate::call`]) and carries
//! out what the call decides: events to every session of both people (they need not follow
//! the room), the callee's ring, disconnecting the media, a system message in the chat. The
//! media itself is this room's voice session, open to the two sides while the call is
//! accepted.

use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef};
use serde_json::Value;
use voiceflow_schema::RoomKind;
use voiceflow_wire::v1::call::{
    CallEnded, CallIncoming, CallInfo, CallPhase, EndReason, events as call_events,
};
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::rich::PresenceStatus;
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::RoomState;
use crate::call::{
    CallActor, CallArgs, CallInput, CallMachine, CallMsg, CallRefused, CallReport, Effect,
};
use crate::error::ActorError;
use crate::remote::notify_user;
use crate::room::{Author, CallAction, Reply, RoomMsg, SessionLink};

/// The call going on in this conversation.
pub(crate) struct ActiveCall {
    id: Snowflake,
    actor: ActorRef<CallMsg>,
    caller: Author,
    callee: Snowflake,
    /// When both sides' media first came up.
    connected_at: Option<std::time::Instant>,
}

fn call_error(message: &str) -> ActorError {
    ActorError::Client(ErrorBody::new(ErrorCode::ValidationError, message))
}

impl From<CallRefused> for ActorError {
    fn from(e: CallRefused) -> Self {
        match e {
            CallRefused::NotYours(_) => {
                ActorError::Client(ErrorBody::new(ErrorCode::Forbidden, e.to_string()))
            }
            CallRefused::WrongState(_) => {
                ActorError::Client(ErrorBody::new(ErrorCode::Conflict, e.to_string()))
            }
        }
    }
}

/// The system message a finished call leaves (after "<caller> called — ").
fn call_summary(reason: EndReason, duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let lasted = format!("{}:{:02}", secs / 60, secs % 60);
    let what = match reason {
        EndReason::Missed => "missed call".to_owned(),
        EndReason::Declined => "declined".to_owned(),
        EndReason::Cancelled => "cancelled".to_owned(),
        EndReason::Busy => "busy".to_owned(),
        EndReason::Failed => "could not connect".to_owned(),
        EndReason::HungUp => format!("call lasted {lasted}"),
        EndReason::Disconnected => format!("call lasted {lasted} (connection lost)"),
    };
    format!("called — {what}")
}

impl RoomState {
    /// A `call:*` request from one of the two people.
    pub(super) async fn handle_call(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: &SessionLink,
        action: CallAction,
        reply: Reply<Value>,
    ) {
        let result = match self.call_request(me, session, action).await {
            Ok(info) => serde_json::to_value(&info).map_err(|_| ActorError::Unavailable),
            Err(e) => Err(e),
        };
        reply.send(result);
    }

    async fn call_request(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: &SessionLink,
        action: CallAction,
    ) -> Result<CallInfo, ActorError> {
        if self.room.kind != RoomKind::Dm {
            return Err(call_error("calls happen in direct conversations"));
        }
        let user = session.user_id;
        if !self.members.contains_key(&user) {
            return Err(ActorError::Forbidden("not a member of this conversation"));
        }
        let input = match action {
            CallAction::Start => return self.start_call(me, session).await,
            CallAction::Accept => CallInput::Accept { by: user },
            CallAction::Decline => CallInput::Decline { by: user },
            CallAction::Cancel => CallInput::Cancel { by: user },
            CallAction::Hangup => CallInput::Hangup { by: user },
        };
        let Some(call) = &self.call else {
            return Err(call_error("no call is going on in this conversation"));
        };
        let answer = ractor::call!(call.actor, |reply| CallMsg::Input {
            input,
            reply: Some(reply)
        });
        match answer {
            Ok(result) => Ok(result?),
            // The call ended a moment ago (its actor stopped): nothing to act on.
            Err(_) => Err(call_error("no call is going on in this conversation")),
        }
    }

    async fn start_call(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: &SessionLink,
    ) -> Result<CallInfo, ActorError> {
        if self.call.is_some() {
            return Err(ActorError::Client(ErrorBody::new(
                ErrorCode::Conflict,
                "a call is already going on in this conversation",
            )));
        }
        let caller = session.user_id;
        let Some(callee) = self.members.keys().copied().find(|id| *id != caller) else {
            return Err(call_error("nobody else is in this conversation"));
        };
        // Blocks and the callee's contact setting decide whether this call may ring.
        crate::contacts::may_contact(self.ctx.store.as_ref(), caller, callee).await?;
        let status = self.presence_of(callee);
        let call_id = self.ctx.ids.next_id();
        let sink_to = me.clone();
        let args = CallArgs {
            call_id,
            room_id: self.room.id,
            machine: CallMachine::new(caller, callee, self.ctx.voice.call_timings),
            busy: status == PresenceStatus::InCall,
            // Presence can lag a connection that just opened (the room's view is told when
            // the user's presence actor has counted it); a session here is reachable now.
            reachable: status != PresenceStatus::Offline || self.ctx.sessions.has_user(callee),
            report: Arc::new(move |report| sink_to.cast(RoomMsg::CallReport(report)).is_ok()),
        };
        let (actor, _) = Actor::spawn_linked(None, CallActor, args, me.get_cell())
            .await
            .map_err(|e| {
                tracing::warn!(room = %self.room.id, error = %e, "cannot start a call actor");
                ActorError::Unavailable
            })?;
        self.call = Some(ActiveCall {
            id: call_id,
            actor,
            caller: Author {
                user_id: caller,
                username: session.username.clone(),
            },
            callee,
            connected_at: None,
        });
        Ok(CallInfo {
            call_id,
            room_id: self.room.id,
            state: CallPhase::Dialing,
            caller_id: caller,
            callee_id: callee,
            connected_at: None,
        })
    }

    /// What the call decided: tell both people, ring, or wind the call down.
    pub fn handle_call_report(&mut self, report: CallReport) {
        let Some(call) = &mut self.call else { return };
        if call.id != report.info.call_id {
            return;
        }
        if report
            .effects
            .contains(&Effect::State(CallPhase::Connected))
        {
            call.connected_at
                .get_or_insert_with(std::time::Instant::now);
        }
        let Some(call) = &self.call else { return };
        let sides = [call.caller.user_id, call.callee];
        for effect in report.effects {
            match effect {
                Effect::State(state) => {
                    let info = CallInfo {
                        state,
                        ..report.info.clone()
                    };
                    self.notify_sides(sides, &frame::event(call_events::STATE, &info));
                    // A callee with no session is dialed, not rung: a push may bring them.
                    if state == CallPhase::Dialing {
                        self.offer_call_push(call);
                    }
                }
                Effect::Ring => {
                    let incoming = CallIncoming {
                        call_id: call.id,
                        room_id: self.room.id,
                        caller_id: call.caller.user_id,
                        caller_name: call.caller.username.clone(),
                    };
                    notify_user(
                        &self.ctx,
                        call.callee,
                        &frame::event(call_events::INCOMING, &incoming),
                    );
                    self.offer_call_push(call);
                }
                Effect::Ended { reason, duration } => {
                    self.finish_call(reason, duration);
                    return;
                }
                Effect::Arm(..) => {}
            }
        }
    }

    /// A push to the callee's devices (once per call: the call id dedupes the push on the
    /// dial and the one on the ring).
    fn offer_call_push(&self, call: &ActiveCall) {
        let payload = voiceflow_wire::v1::push::PushPayload {
            kind: voiceflow_wire::v1::push::PushKind::Call,
            room_id: self.room.id,
            message_id: None,
            title: "Incoming call".to_owned(),
            body: format!("{} is calling", call.caller.username),
            url: crate::push::room_url(self.room.id),
        };
        let kind = voiceflow_wire::v1::notify::NotifyKind::Call;
        let event = crate::push::PushEvent {
            dedupe: call.id.0,
            at_ms: voiceflow_wire::ids::now_ms(),
        };
        crate::push::offer(&self.ctx, call.callee, None, kind, payload, event);
    }

    /// The call is over: both people are told, its media closed, the chat gets a line.
    fn finish_call(&mut self, reason: EndReason, duration: std::time::Duration) {
        let Some(call) = self.call.take() else { return };
        let ended = CallEnded {
            call_id: call.id,
            room_id: self.room.id,
            reason,
            duration_ms: duration.as_millis() as u64,
        };
        self.notify_sides(
            [call.caller.user_id, call.callee],
            &frame::event(call_events::ENDED, &ended),
        );
        let sessions: Vec<u64> = self
            .voice
            .as_ref()
            .map(|v| v.entries.keys().copied().collect())
            .unwrap_or_default();
        for session_id in sessions {
            self.voice_remove(session_id, "ended");
        }
        self.queue_system_message(&call.caller, &call_summary(reason, duration));
    }

    fn notify_sides(&self, sides: [Snowflake; 2], frame: &Frame) {
        for user in sides {
            notify_user(&self.ctx, user, frame);
        }
    }

    /// Whether `user` may join this room's voice session: in a voice channel or stage anyone
    /// (who may see it); in a conversation, the two sides of an accepted call.
    pub(super) fn call_permits_media(&self, user: Snowflake) -> Result<(), ActorError> {
        if self.room.kind != RoomKind::Dm {
            return Ok(());
        }
        match &self.call {
            Some(call) if user == call.caller.user_id || user == call.callee => {
                let joined = self
                    .voice
                    .as_ref()
                    .is_some_and(|v| v.entries.values().any(|e| e.user_id == user));
                if joined {
                    Err(call_error("already connected to this call"))
                } else {
                    Ok(())
                }
            }
            Some(_) => Err(ActorError::Forbidden("not a side of this call")),
            None => Err(call_error("no call is going on in this conversation")),
        }
    }

    /// A side's media came up or went away.
    pub(super) fn call_media(&self, user: Snowflake, up: bool) {
        if let Some(call) = &self.call {
            let input = if up {
                CallInput::MediaUp(user)
            } else {
                CallInput::MediaDown(user)
            };
            let _ = call.actor.cast(CallMsg::Input { input, reply: None });
        }
    }

    /// A member's presence changed: a callee who just came online can be rung.
    pub(super) fn call_presence(&self, user: Snowflake, status: PresenceStatus) {
        if let Some(call) = &self.call
            && call.callee == user
            && status != PresenceStatus::Offline
        {
            let input = CallInput::Reachable;
            let _ = call.actor.cast(CallMsg::Input { input, reply: None });
        }
    }

    /// The conversation's actor stops (its node drains, or the room moves) with a call going
    /// on: the call cannot outlive it, so both sides learn that it ended.
    pub fn end_call_on_stop(&mut self) {
        let duration = self
            .call
            .as_ref()
            .and_then(|c| c.connected_at)
            .map_or(std::time::Duration::ZERO, |at| at.elapsed());
        if self.call.is_some() {
            self.finish_call(EndReason::Disconnected, duration);
        }
    }

    /// A child actor stopped: if it was the call's and the call had not ended, it failed.
    pub fn handle_call_exit(&mut self, cell: &ActorCell) {
        let ours = self
            .call
            .as_ref()
            .is_some_and(|c| c.actor.get_id() == cell.get_id());
        if ours {
            tracing::warn!(room = %self.room.id, "call actor stopped before its call ended");
            self.finish_call(EndReason::Failed, std::time::Duration::ZERO);
        }
    }

    /// Whether a call is going on (the room stays up for it).
    pub fn call_ongoing(&self) -> bool {
        self.call.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_happened_and_for_how_long() {
        use std::time::Duration;
        assert_eq!(
            call_summary(EndReason::HungUp, Duration::from_secs(125)),
            "called — call lasted 2:05"
        );
        assert_eq!(
            call_summary(EndReason::Missed, Duration::ZERO),
            "called — missed call"
        );
    }
}
