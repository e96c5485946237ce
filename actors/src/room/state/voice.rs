//! A voice channel: a room of kind `voice` whose actor owns an SFU session
//! ([`voiceflow_media::Channel`]). The actor keeps who is in the channel (their mute, deafen
//! and speaking state, where their session is); the media work (offers, answers, candidates,
//! closing connections) runs on tasks so chat in the room never waits on it. Events from the
//! SFU come back as [`RoomMsg::VoiceEvent`].

use std::collections::HashMap;
use std::time::Instant;

use ractor::ActorRef;
use serde_json::Value;
use voiceflow_media::{Channel, Rights, SfuEvent};
use voiceflow_schema::RoomKind;
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::voice::{
    VoiceIceServers, VoiceJoined, VoiceMember, VoiceParticipant, VoiceSignal, VoiceUserLeft,
    events as voice_events,
};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::RoomState;
use crate::error::ActorError;
use crate::remote::Recipient;
use crate::room::{Author, Reply, RoomMsg, SessionLink, VoiceOp};

/// A participant's role on a stage (everyone in a voice channel is a speaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StageRole {
    /// Runs the stage (a room admin).
    Host,
    /// May speak.
    Speaker,
    /// Listens; may raise a hand.
    Listener,
}

impl StageRole {
    fn as_str(self) -> &'static str {
        match self {
            StageRole::Host => "host",
            StageRole::Speaker => "speaker",
            StageRole::Listener => "listener",
        }
    }
}

/// One participant.
pub(super) struct Entry {
    /// Their session (the SFU's name for them: their tracks are `<kind>-<session_id>`).
    pub(super) session_id: u64,
    pub(super) user_id: Snowflake,
    pub(super) username: String,
    to: Recipient,
    pub(super) muted: bool,
    pub(super) deafened: bool,
    pub(super) speaking: bool,
    last_beat: Instant,
    /// The SFU accepted the offer and everyone was told (`voice:user_joined`).
    pub(super) announced: bool,
    pub(super) role: StageRole,
    /// When their hand went up (stage listeners).
    pub(super) hand_at: Option<u64>,
    /// A community channel's permissions let them speak (always, outside communities).
    pub(super) speak: bool,
    /// A moderator deafened them (community channels).
    pub(super) server_deafened: bool,
    /// A community channel's permissions let them publish video (always, outside
    /// communities).
    pub(super) may_video: bool,
    /// Their camera is published.
    pub(super) video: bool,
    /// Their screen share is published.
    pub(super) screen: bool,
}

impl Entry {
    /// Sends this participant's session a frame.
    pub(super) fn tell(&self, frame: Frame) {
        self.to.push(frame);
    }

    pub(super) fn rights(&self) -> Rights {
        Rights {
            muted: self.muted,
            deafened: self.deafened || self.server_deafened,
            may_speak: self.role != StageRole::Listener && self.speak,
            video: self.video && self.may_publish_video(),
            screen: self.screen && self.may_publish_video(),
        }
    }

    /// Whoever may speak here and holds `video` (community channels) may publish video; a
    /// demoted stage speaker's video stops with their audio.
    pub(super) fn may_publish_video(&self) -> bool {
        self.role != StageRole::Listener && self.speak && self.may_video
    }
}

/// The channel's SFU session and its participants, by session id.
pub(crate) struct VoiceRoom {
    pub(super) channel: Channel,
    pub(super) entries: HashMap<u64, Entry>,
    /// Counter values already exported (received, forwarded, bytes, dropped).
    pub(super) exported: [u64; 4],
    pub(super) ticks: u64,
    /// When `in_call` was last confirmed to the participants' presence.
    pub(super) in_call_confirmed: Instant,
}

pub(super) fn voice_error(message: &str) -> ActorError {
    ActorError::Client(ErrorBody::new(ErrorCode::ValidationError, message))
}

fn field_error(field: &str, message: &str) -> ActorError {
    ActorError::Client(ErrorBody::field(field, message))
}

impl RoomState {
    /// Participants of the voice channel (none for other rooms).
    pub fn voice_participants(&self) -> usize {
        self.voice.as_ref().map_or(0, |v| v.entries.len())
    }

    /// Everyone in the voice session whose connection the SFU accepted, by user id.
    pub(super) fn voice_members(&self) -> Vec<VoiceMember> {
        let mut members: Vec<VoiceMember> = self
            .voice
            .as_ref()
            .map(|v| {
                v.entries
                    .values()
                    .filter(|e| e.announced)
                    .map(|e| self.member_view(e))
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by_key(|m| m.user_id);
        members
    }

    pub(super) fn member_view(&self, entry: &Entry) -> VoiceMember {
        view_of_entry(self.room.id, self.room.kind, entry)
    }

    /// A participant as `voice:user_joined` / `voice:state` show them.
    pub(super) fn participant_view(&self, entry: &Entry) -> VoiceParticipant {
        participant_of_entry(self.room.id, self.room.kind, entry)
    }

    /// Sends `frame` to everyone who sees the channel (live sessions of the room) and to every
    /// participant not among them.
    pub(super) fn voice_broadcast(&self, frame: &Frame) {
        self.broadcast(frame);
        if let Some(voice) = &self.voice {
            for (session_id, entry) in &voice.entries {
                if !self.live.contains_key(session_id) {
                    entry.to.push(frame.clone());
                }
            }
        }
    }

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

    /// Removes a participant (left, failed, timed out, or their node died) and tells everyone.
    pub(super) fn voice_remove(&mut self, session_id: u64, reason: &str) {
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        let Some(entry) = voice.entries.remove(&session_id) else {
            return;
        };
        metrics::gauge!("voiceflow_voice_participants").decrement(1.0);
        let channel = voice.channel.clone();
        tokio::spawn(async move {
            channel.leave(session_id).await;
        });
        self.call_media(entry.user_id, false);
        let left = VoiceUserLeft {
            channel_id: self.room.id,
            user_id: entry.user_id,
            reason: reason.to_owned(),
        };
        let frame = frame::event(voice_events::USER_LEFT, &left);
        // The participant itself learns it too (it may no longer be in the room's live set).
        if !self.live.contains_key(&session_id) {
            entry.to.push(frame.clone());
        }
        if entry.announced {
            self.voice_broadcast(&frame);
            self.set_in_call(entry.user_id, false);
        }
    }

    /// The SFU accepted a participant's offer: everyone who sees the channel is told.
    pub fn handle_voice_joined(&mut self, session_id: u64) {
        let Some(entry) = self
            .voice
            .as_mut()
            .and_then(|v| v.entries.get_mut(&session_id))
        else {
            return;
        };
        entry.announced = true;
        let user = entry.user_id;
        self.set_in_call(user, true);
        let Some(view) = self
            .voice
            .as_ref()
            .and_then(|v| v.entries.get(&session_id))
            .map(|e| self.participant_view(e))
        else {
            return;
        };
        self.voice_broadcast(&frame::event(voice_events::USER_JOINED, &view));
    }

    /// An event from the SFU.
    pub fn handle_voice_event(&mut self, event: SfuEvent) {
        let room_id = self.room.id;
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        match event {
            SfuEvent::Candidate { peer, candidate } => {
                if let Some(entry) = voice.entries.get(&peer) {
                    let signal = VoiceSignal {
                        channel_id: room_id,
                        candidate: serde_json::to_value(&candidate).ok(),
                        sdp: None,
                    };
                    entry.to.push(frame::event(voice_events::SIGNAL, &signal));
                }
            }
            SfuEvent::Offer { peer, sdp } => {
                if let Some(entry) = voice.entries.get(&peer) {
                    let signal = VoiceSignal {
                        channel_id: room_id,
                        candidate: None,
                        sdp: Some(sdp),
                    };
                    entry.to.push(frame::event(voice_events::SIGNAL, &signal));
                }
            }
            SfuEvent::Speaking { peer, speaking } => {
                let Some(entry) = voice.entries.get_mut(&peer) else {
                    return;
                };
                if entry.speaking == speaking {
                    return;
                }
                entry.speaking = speaking;
                let view = participant_of_entry(room_id, self.room.kind, entry);
                self.voice_broadcast(&frame::event(voice_events::STATE, &view));
            }
            SfuEvent::Connected { peer } => {
                if let Some(entry) = voice.entries.get(&peer) {
                    let user = entry.user_id;
                    self.call_media(user, true);
                }
            }
            SfuEvent::Failed { peer } => self.voice_remove(peer, "disconnected"),
        }
    }

    /// Periodic: participants whose session stopped beating are removed; speaking changes
    /// held back by the throttle go out.
    pub fn voice_tick(&mut self) {
        self.export_voice_metrics();
        let Some(voice) = &self.voice else { return };
        voice.channel.tick();
        let ttl = self.ctx.voice.ttl;
        let silent: Vec<u64> = voice
            .entries
            .iter()
            .filter(|(_, e)| e.last_beat.elapsed() >= ttl)
            .map(|(id, _)| *id)
            .collect();
        for session_id in silent {
            self.voice_remove(session_id, "disconnected");
        }
        self.refresh_in_call();
    }

    /// Participants whose session lived on a node that died.
    pub fn voice_node_down(&mut self, node: voiceflow_wire::cluster::NodeId) {
        let Some(voice) = &self.voice else { return };
        let gone: Vec<u64> = voice
            .entries
            .iter()
            .filter(|(_, e)| e.to.remote_peer().is_some_and(|p| p.node_id() == node))
            .map(|(id, _)| *id)
            .collect();
        for session_id in gone {
            self.voice_remove(session_id, "disconnected");
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

    /// The actor stops (moved, crashed or idle): everyone's connection closes and their
    /// clients are told to join again (wherever the channel lives next).
    pub fn voice_shutdown(&mut self) {
        let Some(voice) = self.voice.take() else {
            return;
        };
        metrics::gauge!("voiceflow_voice_participants").decrement(voice.entries.len() as f64);
        for (_, entry) in voice.entries {
            if entry.announced {
                self.set_in_call(entry.user_id, false);
            }
            // A conversation's call ended with the actor; a channel carries on elsewhere.
            let reason = if self.room.kind == RoomKind::Dm {
                "ended"
            } else {
                "rejoin"
            };
            let left = VoiceUserLeft {
                channel_id: self.room.id,
                user_id: entry.user_id,
                reason: reason.into(),
            };
            entry.to.push(frame::event(voice_events::USER_LEFT, &left));
        }
        let channel = voice.channel;
        tokio::spawn(async move { channel.close().await });
    }
}

/// A participant with what they publish.
pub(super) fn participant_of_entry(
    channel_id: Snowflake,
    kind: RoomKind,
    entry: &Entry,
) -> VoiceParticipant {
    VoiceParticipant {
        member: view_of_entry(channel_id, kind, entry),
        session_id: entry.session_id.to_string(),
        video: entry.video && entry.may_publish_video(),
        screen: entry.screen && entry.may_publish_video(),
    }
}

/// A participant as clients see them.
fn view_of_entry(channel_id: Snowflake, kind: RoomKind, entry: &Entry) -> VoiceMember {
    VoiceMember {
        channel_id,
        user_id: entry.user_id,
        username: entry.username.clone(),
        // What the server does: a participant without `speak` (or server-muted) is dropped
        // like a muted one; a stage listener is not "muted", they are a listener.
        muted: entry.muted || (!entry.speak && entry.role != StageRole::Listener),
        deafened: entry.deafened || entry.server_deafened,
        speaking: entry.speaking,
        role: (kind == RoomKind::Stage).then(|| entry.role.as_str().to_owned()),
    }
}
