//! Session requests about existing messages (edit, delete, react, read), typing, voice and
//! presence.

use voiceflow_wire::cluster::{ChosenStatus, PresenceOp};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::{ClientFrame, FrameError};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::rich::{
    DeleteMessage, MarkRead, PresenceStatus, PresenceUpdate, ReactionRequest, UpdateMessage,
};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::SessionState;
use crate::remote::Recipient;
use voiceflow_wire::v1::voice::{
    StageRequest, VoiceChannelRef, VoiceJoin, VoiceSignal, VoiceStateUpdate,
};

use voiceflow_wire::v1::call::CallRequest;

use crate::room::{Action, CallAction, Reply, RoomMsg, StageAction, VoiceOp};

impl SessionState {
    /// Sends `op` to this user's presence actor (wherever it lives).
    pub(super) async fn presence_op(&self, op: PresenceOp) {
        self.ctx
            .presence
            .send(&self.ctx, self.user.user_id, op)
            .await;
    }

    /// `message:update`, `message:delete`, `reaction:add`, `reaction:remove`, `message:read`.
    pub(super) async fn handle_action(
        &mut self,
        frame: &ClientFrame<'_>,
    ) -> Result<(), FrameError> {
        let (room_id, action) = match frame.event {
            "message:update" => {
                let p: UpdateMessage = frame.payload()?;
                let action = Action::Edit {
                    message_id: p.message_id,
                    content: p.content,
                };
                (p.room_id, action)
            }
            "message:delete" => {
                let p: DeleteMessage = frame.payload()?;
                (
                    p.room_id,
                    Action::Delete {
                        message_id: p.message_id,
                    },
                )
            }
            "reaction:add" | "reaction:remove" => {
                let p: ReactionRequest = frame.payload()?;
                let action = Action::React {
                    message_id: p.message_id,
                    emoji: p.emoji,
                    add: frame.event == "reaction:add",
                };
                (p.room_id, action)
            }
            _ => {
                let p: MarkRead = frame.payload()?;
                (
                    Some(p.room_id),
                    Action::Read {
                        message_id: p.message_id,
                    },
                )
            }
        };
        let req_id = frame.id;
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
            .send(&self.ctx, room_id, msg)
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

    /// `voice:join`, `voice:signal`, `voice:state`, `voice:leave`: to the voice channel's room.
    pub(super) async fn handle_voice(&mut self, frame: &ClientFrame<'_>) -> Result<(), FrameError> {
        let (channel_id, op) = match frame.event {
            "voice:join" => {
                let p: VoiceJoin = frame.payload()?;
                (p.channel_id, VoiceOp::Join { sdp: p.sdp })
            }
            "voice:signal" => {
                let p: VoiceSignal = frame.payload()?;
                let op = VoiceOp::Signal {
                    candidate: p.candidate,
                    sdp: p.sdp,
                };
                (p.channel_id, op)
            }
            "voice:state" => {
                let p: VoiceStateUpdate = frame.payload()?;
                let op = VoiceOp::State {
                    muted: p.muted,
                    deafened: p.deafened,
                };
                (p.channel_id, op)
            }
            "voice:leave" => {
                let p: VoiceChannelRef = frame.payload()?;
                (p.channel_id, VoiceOp::Leave)
            }
            "voice:ice_servers" => {
                let p: VoiceChannelRef = frame.payload()?;
                (p.channel_id, VoiceOp::IceServers)
            }
            other if other.starts_with("call:") => {
                let p: CallRequest = frame.payload()?;
                let action = other
                    .strip_prefix("call:")
                    .and_then(CallAction::parse)
                    .ok_or_else(|| FrameError {
                        id: frame.id,
                        error: ErrorBody::new(ErrorCode::UnknownEvent, "unknown call event"),
                    })?;
                (p.room_id, VoiceOp::Call { action })
            }
            other => {
                let p: StageRequest = frame.payload()?;
                let action = other
                    .strip_prefix("stage:")
                    .and_then(StageAction::parse)
                    .ok_or_else(|| FrameError {
                        id: frame.id,
                        error: ErrorBody::new(ErrorCode::UnknownEvent, "unknown stage event"),
                    })?;
                let op = VoiceOp::Stage {
                    action,
                    user_id: p.user_id,
                };
                (p.channel_id, op)
            }
        };
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
            req_id: frame.id,
        };
        let msg = RoomMsg::Voice {
            session: self.link(),
            op,
            reply,
        };
        self.ctx
            .directory
            .send(&self.ctx, channel_id, msg)
            .await
            .map(|_| ())
            .map_err(|e| FrameError {
                id: frame.id,
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
            if let Err(e) = self.ctx.directory.send(&self.ctx, *channel_id, msg).await {
                tracing::debug!(channel = %channel_id, error = %e, "voice heartbeat not delivered");
            }
        }
    }

    /// `presence:update {status}`: online, away or dnd.
    pub(super) async fn handle_presence_update(
        &mut self,
        frame: &ClientFrame<'_>,
    ) -> Result<(), FrameError> {
        let update: PresenceUpdate = frame.payload()?;
        if !matches!(
            update.status,
            PresenceStatus::Online | PresenceStatus::Away | PresenceStatus::Dnd
        ) {
            return Err(FrameError {
                id: frame.id,
                error: ErrorBody::field(
                    "status",
                    "status must be online, away or dnd (in_call and offline are set by the server)",
                ),
            });
        }
        let chosen = ChosenStatus {
            status: update.status,
            at_ms: now_ms(),
        };
        self.chosen = Some(chosen);
        self.presence_op(PresenceOp::Set { chosen }).await;
        if let Some(id) = frame.id {
            self.outbox.push(frame::ack_ok(id, &update));
        }
        Ok(())
    }
}
