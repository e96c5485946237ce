//! What the session does with each client request. The front door (`node/src/limits.rs`) has
//! already parsed the frame into a [`ClientRequest`] and answered the bad ones; here every
//! event has its own arm and there is no catch-all, so a new event does not compile until the
//! session says what it does with it.

use ractor::ActorRef;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::call::CallRequest;
use voiceflow_wire::v1::client::{FrameError, Pong};
use voiceflow_wire::v1::event::ServerEvent;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::request::{ClientRequest, RequestFrame};
use voiceflow_wire::v1::rich::ReactionRequest;
use voiceflow_wire::v1::voice::StageRequest;

use super::{SessionMsg, SessionState};
use crate::room::{Action, CallAction, StageAction, VoiceOp};

impl SessionState {
    /// Handles one parsed client request; a refusal is answered to the client.
    pub async fn handle_request(&mut self, me: &ActorRef<SessionMsg>, frame: RequestFrame) {
        let RequestFrame { id, request } = frame;
        // Pings are the client's keepalive, not the user's activity (automatic away).
        if !matches!(request, ClientRequest::Ping(_)) {
            self.last_active = std::time::Instant::now();
        }
        let outcome = match request {
            ClientRequest::JoinRoom(join) => {
                let resume = (join.since, join.epoch);
                self.handle_join(me, join.room_id, resume, join.members, id)
                    .await
            }
            ClientRequest::LeaveRoom(leave) => self.handle_leave(me, leave.room_id, id).await,
            ClientRequest::SendMessage(post) => self.handle_send(post, id).await,
            ClientRequest::UpdateMessage(p) => {
                let action = Action::Edit {
                    message_id: p.message_id,
                    content: p.content,
                };
                self.handle_action(p.room_id, action, id).await
            }
            ClientRequest::DeleteMessage(p) => {
                let action = Action::Delete {
                    message_id: p.message_id,
                };
                self.handle_action(p.room_id, action, id).await
            }
            ClientRequest::ReactionAdd(p) => self.handle_reaction(p, true, id).await,
            ClientRequest::ReactionRemove(p) => self.handle_reaction(p, false, id).await,
            ClientRequest::MarkRead(p) => {
                let action = Action::Read {
                    message_id: p.message_id,
                };
                self.handle_action(Some(p.room_id), action, id).await
            }
            ClientRequest::PresenceUpdate(update) => {
                self.handle_presence_update(update, id).await;
                Ok(())
            }
            ClientRequest::SessionFocus(focus) => {
                self.handle_focus(focus, id).await;
                Ok(())
            }
            ClientRequest::TypingStart(typing) => self.handle_typing(typing.room_id, true, id),
            ClientRequest::TypingStop(typing) => self.handle_typing(typing.room_id, false, id),
            ClientRequest::Ping(_) => {
                let pong = Pong {
                    server_time: now_ms(),
                };
                self.outbox.push(ServerEvent::Pong(pong.clone()).frame());
                if let Some(id) = id {
                    self.outbox.push(frame::ack_ok(id, &pong));
                }
                Ok(())
            }
            // Answered at the front door, which owns the connection's token clock; it never
            // reaches a session.
            ClientRequest::AuthRefresh(_) => Ok(()),
            ClientRequest::VoiceJoin(p) => {
                self.handle_voice(p.channel_id, VoiceOp::Join { sdp: p.sdp }, id)
                    .await
            }
            ClientRequest::VoiceSignal(p) => {
                let op = VoiceOp::Signal {
                    candidate: p.candidate.map(voiceflow_wire::json_text::OpaqueJson),
                    sdp: p.sdp,
                };
                self.handle_voice(p.channel_id, op, id).await
            }
            ClientRequest::VoiceState(p) => {
                // Mute and deafen alone stay the op a node of cluster protocol 10 knows.
                let op = if p.video.is_none() && p.screen.is_none() {
                    VoiceOp::State {
                        muted: p.muted,
                        deafened: p.deafened,
                    }
                } else {
                    VoiceOp::Media {
                        muted: p.muted,
                        deafened: p.deafened,
                        video: p.video,
                        screen: p.screen,
                    }
                };
                self.handle_voice(p.channel_id, op, id).await
            }
            ClientRequest::VoiceSubscribe(p) => {
                let op = VoiceOp::Subscribe {
                    user_id: p.user_id,
                    track: p.track,
                    paused: p.paused,
                    layer: p.layer,
                };
                self.handle_voice(p.channel_id, op, id).await
            }
            ClientRequest::VoiceLeave(p) => {
                self.handle_voice(p.channel_id, VoiceOp::Leave, id).await
            }
            ClientRequest::VoiceIceServers(p) => {
                self.handle_voice(p.channel_id, VoiceOp::IceServers, id)
                    .await
            }
            ClientRequest::StageHandRaise(p) => self.stage(p, StageAction::HandRaise, id).await,
            ClientRequest::StageHandLower(p) => self.stage(p, StageAction::HandLower, id).await,
            ClientRequest::StagePromote(p) => self.stage(p, StageAction::Promote, id).await,
            ClientRequest::StageDemote(p) => self.stage(p, StageAction::Demote, id).await,
            ClientRequest::StageKick(p) => self.stage(p, StageAction::Kick, id).await,
            ClientRequest::StageBan(p) => self.stage(p, StageAction::Ban, id).await,
            ClientRequest::StageEnd(p) => self.stage(p, StageAction::End, id).await,
            ClientRequest::CallStart(p) => self.call(p, CallAction::Start, id).await,
            ClientRequest::CallAccept(p) => self.call(p, CallAction::Accept, id).await,
            ClientRequest::CallDecline(p) => self.call(p, CallAction::Decline, id).await,
            ClientRequest::CallCancel(p) => self.call(p, CallAction::Cancel, id).await,
            ClientRequest::CallHangup(p) => self.call(p, CallAction::Hangup, id).await,
        };
        if let Err(e) = outcome {
            self.reject(&e);
        }
    }

    /// `reaction:add` / `reaction:remove`.
    async fn handle_reaction(
        &mut self,
        p: ReactionRequest,
        add: bool,
        id: Option<u64>,
    ) -> Result<(), FrameError> {
        let action = Action::React {
            message_id: p.message_id,
            emoji: p.emoji,
            add,
        };
        self.handle_action(p.room_id, action, id).await
    }

    /// `stage:*`: to the stage's room.
    async fn stage(
        &mut self,
        p: StageRequest,
        action: StageAction,
        id: Option<u64>,
    ) -> Result<(), FrameError> {
        let op = VoiceOp::Stage {
            action,
            user_id: p.user_id,
        };
        self.handle_voice(p.channel_id, op, id).await
    }

    /// `call:*`: to the direct conversation's room.
    async fn call(
        &mut self,
        p: CallRequest,
        action: CallAction,
        id: Option<u64>,
    ) -> Result<(), FrameError> {
        self.handle_voice(p.room_id, VoiceOp::Call { action }, id)
            .await
    }
}
