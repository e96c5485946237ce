//! A voice session's requests from sessions: the `voice:*` ops dispatched
//! ([`RoomState::handle_voice`]), a join (the offer goes to the SFU, the answer back to the
//! session), signalling (candidates and answers after the first), and a heartbeat from a
//! session that is not a participant (told to join again after a restart).

use std::collections::HashMap;
use std::time::Instant;

use ractor::ActorRef;
use serde_json::Value;
use voiceflow_media::{Channel, Rights, SfuEvent};
use voiceflow_schema::RoomKind;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::voice::{
    VoiceIceServers, VoiceJoined, VoiceParticipant, VoiceUserLeft, events as voice_events,
};
use voiceflow_wire::{ErrorBody, ErrorCode};

use super::RoomState;
use super::voice::{Entry, StageRole, VoiceRoom, voice_error};
use crate::error::ActorError;
use crate::room::{Author, Reply, RoomMsg, SessionLink, VoiceOp};

fn field_error(field: &str, message: &str) -> ActorError {
    ActorError::Client(ErrorBody::field(field, message))
}

impl RoomState {
    /// A `voice:*` request from a session.
    pub async fn handle_voice(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: SessionLink,
        op: VoiceOp,
        reply: Reply<Value>,
    ) {
        if let VoiceOp::Call { action } = op {
            return self.handle_call(me, &session, action, reply).await;
        }
        if !matches!(
            self.room.kind,
            RoomKind::Voice | RoomKind::Stage | RoomKind::Dm
        ) {
            return reply.send(Err(voice_error("this room is not a voice channel")));
        }
        match op {
            VoiceOp::Join { sdp } => self.voice_join(me, session, sdp, reply).await,
            VoiceOp::Beat => {
                if let Some(entry) = self
                    .voice
                    .as_mut()
                    .and_then(|v| v.entries.get_mut(&session.session_id))
                {
                    entry.last_beat = Instant::now();
                } else {
                    self.voice_unknown_beat(&session);
                }
            }
            VoiceOp::IceServers => {
                let servers = VoiceIceServers {
                    channel_id: self.room.id,
                    ice_servers: self.ctx.voice.ice_servers_for(session.user_id),
                };
                reply.send(Ok(serde_json::to_value(&servers).unwrap_or(Value::Null)));
            }
            VoiceOp::Leave => {
                self.voice_remove(session.session_id, "left");
                reply.send(Ok(serde_json::json!({ "channelId": self.room.id })));
            }
            VoiceOp::Signal { candidate, sdp } => {
                self.voice_signal(session, candidate.map(|c| c.0), sdp, reply)
            }
            VoiceOp::State { muted, deafened } => {
                self.voice_state(session, (muted, deafened), (None, None), reply)
            }
            VoiceOp::Media {
                muted,
                deafened,
                video,
                screen,
            } => self.voice_state(session, (muted, deafened), (video, screen), reply),
            VoiceOp::Subscribe {
                user_id,
                track,
                paused,
                layer,
            } => self.voice_subscribe(session, user_id, track, (paused, layer), reply),
            VoiceOp::Stage { action, user_id } => {
                let result = self.handle_stage(session, action, user_id).await;
                reply.send(result);
            }
            VoiceOp::Call { .. } => {}
        }
    }

    async fn voice_join(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: SessionLink,
        sdp: String,
        reply: Reply<Value>,
    ) {
        let author = Author {
            user_id: session.user_id,
            username: session.username.clone(),
        };
        if self.room.banned.contains(&session.user_id) {
            return reply.send(Err(ActorError::Forbidden("you are banned from this room")));
        }
        if let Err(e) = self.call_permits_media(session.user_id) {
            return reply.send(Err(e));
        }
        if let Err(e) = self
            .require(
                session.user_id,
                Permissions::CONNECT,
                "you may not connect here",
            )
            .await
        {
            return reply.send(Err(e));
        }
        if !self.members.contains_key(&session.user_id) {
            if !self.open_to_all() {
                return reply.send(Err(ActorError::Forbidden("not a member of this room")));
            }
            if let Err(e) = self.add_member(&author).await {
                return reply.send(Err(e));
            }
        }
        // Read before the voice room is borrowed below (the grants were read by `require`).
        let held = match self.channel_permissions(session.user_id).await {
            Ok(held) => held,
            Err(e) => return reply.send(Err(e)),
        };
        let runtime = self.ctx.voice.clone();
        let stage = self.room.kind == RoomKind::Stage;
        let capacity = if stage {
            runtime.stage_capacity
        } else {
            runtime.capacity
        };
        if self.voice_participants() >= capacity {
            return reply.send(Err(ActorError::Client(ErrorBody::new(
                ErrorCode::RoomFull,
                "the voice channel is full",
            ))));
        }
        let server_deafened = self.voice_moderation(session.user_id).deafened;
        let voice = self.voice.get_or_insert_with(|| {
            let (channel, mut events) = Channel::new(&runtime.media);
            let me = me.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if me.cast(RoomMsg::VoiceEvent(event)).is_err() {
                        break;
                    }
                }
            });
            VoiceRoom {
                channel,
                entries: HashMap::new(),
                exported: [0; 4],
                ticks: 0,
                in_call_confirmed: Instant::now(),
            }
        });
        if voice.entries.contains_key(&session.session_id) {
            return reply.send(Err(voice_error(
                "this connection is already in the channel",
            )));
        }
        // In a community channel, the stage's hosts are its stage moderators and only who
        // holds `speak` is heard; elsewhere the room's admins host.
        let role = match (self.members.get(&session.user_id).map(|m| m.role), held) {
            _ if !stage => StageRole::Speaker,
            (_, Some(held)) if held.contains(Permissions::STAGE_MODERATOR) => StageRole::Host,
            (_, Some(_)) => StageRole::Listener,
            (Some(voiceflow_schema::Role::Admin), None) => StageRole::Host,
            _ => StageRole::Listener,
        };
        let speak = held.is_none_or(|held| held.contains(Permissions::SPEAK));
        let may_video = held.is_none_or(|held| held.contains(Permissions::VIDEO));
        let entry = Entry {
            session_id: session.session_id,
            role,
            hand_at: None,
            user_id: session.user_id,
            username: session.username.clone(),
            to: session.to.clone(),
            muted: false,
            deafened: false,
            speaking: false,
            last_beat: Instant::now(),
            announced: false,
            speak,
            server_deafened,
            may_video,
            video: false,
            screen: false,
        };
        voice.entries.insert(session.session_id, entry);
        metrics::gauge!("voiceflow_voice_participants").increment(1.0);
        let channel = voice.channel.clone();
        let rights = Rights {
            may_speak: role != StageRole::Listener && speak,
            deafened: server_deafened,
            ..Rights::default()
        };
        let Some(voice) = self.voice.as_ref() else {
            return;
        };
        let mut participants: Vec<VoiceParticipant> = voice
            .entries
            .values()
            .map(|e| self.participant_view(e))
            .collect();
        participants.sort_by_key(|p| p.member.user_id);
        let (room_id, ice_servers, peer) = (
            self.room.id,
            runtime.ice_servers_for(session.user_id),
            session.session_id,
        );
        let me = me.clone();
        tokio::spawn(async move {
            let result = channel.join(peer, sdp, rights).await;
            match result {
                Ok(answer) => {
                    let joined = VoiceJoined {
                        channel_id: room_id,
                        sdp: answer,
                        participants,
                        ice_servers,
                    };
                    reply.send(Ok(serde_json::to_value(&joined).unwrap_or(Value::Null)));
                    let _ = me.cast(RoomMsg::VoiceJoined(peer));
                    channel.sync().await;
                }
                Err(e) => {
                    let error = match e {
                        voiceflow_media::MediaError::Sdp(why) => field_error("sdp", &why),
                        other => {
                            tracing::warn!(error = %other, "voice: cannot connect a participant");
                            ActorError::Client(ErrorBody::new(
                                ErrorCode::InternalError,
                                "voice is unavailable right now, retry",
                            ))
                        }
                    };
                    reply.send(Err(error));
                    let _ = me.cast(RoomMsg::VoiceEvent(SfuEvent::Failed { peer }));
                }
            }
        });
    }

    fn voice_signal(
        &mut self,
        session: SessionLink,
        candidate: Option<Value>,
        sdp: Option<String>,
        reply: Reply<Value>,
    ) {
        let Some(voice) = self
            .voice
            .as_ref()
            .filter(|v| v.entries.contains_key(&session.session_id))
        else {
            return reply.send(Err(voice_error("join the voice channel first")));
        };
        let (channel, peer, room_id) = (voice.channel.clone(), session.session_id, self.room.id);
        let ok = serde_json::json!({ "channelId": room_id });
        match (candidate, sdp) {
            (Some(candidate), None) => {
                let Ok(candidate) = serde_json::from_value(candidate) else {
                    return reply.send(Err(field_error("candidate", "not an ICE candidate")));
                };
                tokio::spawn(async move {
                    let result = channel.add_candidate(peer, candidate).await;
                    reply.send(
                        result
                            .map(|()| ok)
                            .map_err(|e| field_error("candidate", &e.to_string())),
                    );
                });
            }
            (None, Some(sdp)) => {
                tokio::spawn(async move {
                    let result = channel.apply_answer(peer, sdp).await;
                    reply.send(
                        result
                            .map(|()| ok)
                            .map_err(|e| field_error("sdp", &e.to_string())),
                    );
                });
            }
            _ => reply.send(Err(voice_error("send either a candidate or an sdp"))),
        }
    }

    /// A heartbeat from a session this actor does not have as a participant. If the actor
    /// started recently, it is the channel's new actor (the old one crashed, or its node
    /// died, and the participants with it): the client is told to join again. A participant
    /// the server removed earlier (kicked, timed out, its call ended) is not.
    fn voice_unknown_beat(&self, session: &SessionLink) {
        let window = self.ctx.voice.ttl + self.ctx.config.presence_heartbeat * 2;
        if !matches!(self.room.kind, RoomKind::Voice | RoomKind::Stage)
            || self.started_at.elapsed() > window
        {
            return;
        }
        let left = VoiceUserLeft {
            channel_id: self.room.id,
            user_id: session.user_id,
            reason: "rejoin".into(),
        };
        session
            .to
            .push(frame::event(voice_events::USER_LEFT, &left));
    }
}
