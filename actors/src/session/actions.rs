//! Session requests about existing messages (edit, delete, react, read), typing, voice and
//! presence.

use voiceflow_wire::cluster::{ChosenStatus, PresenceOp};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::FrameError;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::rich::PresenceUpdate;
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::SessionState;
use crate::remote::Recipient;
use crate::room::{Action, Reply, RoomMsg, VoiceOp};

impl SessionState {
    /// Sends `op` to this user's presence actor (wherever it lives).
    pub(super) async fn presence_op(&self, op: PresenceOp) {
        self.ctx.presence.send(self.user.user_id, op).await;
    }

    /// `message:update`, `message:delete`, `reaction:add`, `reaction:remove`, `message:read`:
    /// to the room named, or else to the room of the message.
    pub(super) async fn handle_action(
        &mut self,
        room_id: Option<Snowflake>,
        action: Action,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        let fail = |error: ErrorBody| FrameError { id: req_id, error };
        let room_id = match room_id {
            Some(room) => room,
            None => {
                let message_id = match &action {
                    Action::Edit { message_id, .. }
                    | Action::Delete { message_id }
                    | Action::React { message_id, .. }
                    | Action::Read { message_id } => *message_id,
                };
                self.room_of(message_id).await.map_err(fail)?
            }
        };
        let reply = Reply::Session {
            to: Recipient::Local(self.outbox.clone()),
            session_id: self.session_id,
            req_id,
        };
        let msg = RoomMsg::Act {
            author: self.user.clone(),
            action,
            reply,
        };
        self.ctx
            .directory
            .send(room_id, msg)
            .await
            .map(|_| ())
            .map_err(|e| fail(e.to_body()))
    }

    /// The room a message belongs to (for requests that name only the message).
    async fn room_of(&self, message_id: Snowflake) -> Result<Snowflake, ErrorBody> {
        match self.ctx.store.message_room(message_id).await {
            Ok(Some(room)) => Ok(room),
            Ok(None) => Err(ErrorBody::new(ErrorCode::NotFound, "message not found")),
            Err(e) => Err(crate::error::ActorError::Store(e).to_body()),
        }
    }

    /// `typing:start` / `typing:stop`.
    pub(super) fn handle_typing(
        &mut self,
        room_id: Snowflake,
        start: bool,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        let refused = || FrameError {
            id: req_id,
            error: ErrorBody::new(ErrorCode::Forbidden, "join the room before typing in it"),
        };
        // Typing is ephemeral: only rooms this session joined (and so are running) hear it,
        // and the room itself answers, since only it knows whether the join went through.
        if !self.joined.contains_key(&room_id) {
            return Err(refused());
        }
        let msg = RoomMsg::Typing {
            session_id: self.session_id,
            user_id: self.user.user_id,
            start,
            reply: req_id.map(|_| Reply::Session {
                to: Recipient::Local(self.outbox.clone()),
                session_id: self.session_id,
                req_id,
            }),
        };
        if self.ctx.directory.send_if_running(room_id, msg) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    /// `voice:*`, `stage:*` and `call:*`: to the voice channel's (or conversation's) room.
    pub(super) async fn handle_voice(
        &mut self,
        channel_id: Snowflake,
        op: VoiceOp,
        req_id: Option<u64>,
    ) -> Result<(), FrameError> {
        match op {
            VoiceOp::Join { .. } => {
                self.voice_channels.insert(channel_id);
            }
            VoiceOp::Leave => {
                self.voice_channels.remove(&channel_id);
            }
            _ => {}
        }
        let reply = Reply::Session {
            to: Recipient::Local(self.outbox.clone()),
            session_id: self.session_id,
            req_id,
        };
        let msg = RoomMsg::Voice {
            session: self.link(),
            op,
            reply,
        };
        self.ctx
            .directory
            .send(channel_id, msg)
            .await
            .map(|_| ())
            .map_err(|e| FrameError {
                id: req_id,
                error: e.to_body(),
            })
    }

    /// Tells the voice channels this session is in that it is alive (or, at the end, gone).
    pub(super) fn voice_to_all(&self, op: &VoiceOp) {
        for channel_id in &self.voice_channels {
            let msg = RoomMsg::Voice {
                session: self.link(),
                op: op.clone(),
                reply: Reply::Session {
                    to: Recipient::Local(self.outbox.clone()),
                    session_id: self.session_id,
                    req_id: None,
                },
            };
            self.ctx.directory.send_if_running(*channel_id, msg);
        }
    }

    /// Tells the voice channels this session is in that it is alive. Unlike a leave, a beat
    /// starts a channel's actor that is not running (it crashed, or its node died): the new
    /// actor does not know the session and tells the client to join again.
    pub(super) async fn voice_beat_all(&self) {
        for channel_id in &self.voice_channels {
            let msg = RoomMsg::Voice {
                session: self.link(),
                op: VoiceOp::Beat,
                reply: Reply::Session {
                    to: Recipient::Local(self.outbox.clone()),
                    session_id: self.session_id,
                    req_id: None,
                },
            };
            if let Err(e) = self.ctx.directory.send(*channel_id, msg).await {
                tracing::debug!(channel = %channel_id, error = %e, "voice heartbeat not delivered");
            }
        }
    }

    /// `presence:update {status}`: online, away or dnd (the parse refused the others).
    pub(super) async fn handle_presence_update(
        &mut self,
        update: PresenceUpdate,
        req_id: Option<u64>,
    ) {
        let chosen = ChosenStatus {
            status: update.status,
            at_ms: now_ms(),
        };
        self.chosen = Some(chosen);
        self.presence_op(PresenceOp::Set { chosen }).await;
        if let Some(id) = req_id {
            self.outbox.push(frame::ack_ok(id, &update));
        }
    }

    /// `session:focus {focused}`: told to the user's presence actor, which holds no push
    /// while one of the user's sessions is focused.
    pub(super) async fn handle_focus(
        &mut self,
        focus: voiceflow_wire::v1::push::SessionFocus,
        req_id: Option<u64>,
    ) {
        self.focused = focus.focused;
        // Stamped here, before the ack: a push for anything the client sends after the ack
        // is decided against this time, however late the presence actor reads it.
        let op = PresenceOp::Focus {
            session_id: self.session_id,
            focused: focus.focused,
            at_ms: now_ms(),
        };
        self.presence_op(op).await;
        if let Some(id) = req_id {
            self.outbox.push(frame::ack_ok(id, &focus));
        }
    }
}
