//! A voice channel: a room of kind `voice` whose actor owns an SFU session
//! ([`voiceflow_media::Channel`]). The actor keeps who is in the channel (their mute, deafen
//! and speaking state, where their session is); the media work (offers, answers, candidates,
//! closing connections) runs on tasks so chat in the room never waits on it. Events from the
//! SFU come back as [`RoomMsg::VoiceEvent`](crate::room::RoomMsg::VoiceEvent). The requests
//! from sessions (join, signalling, heartbeats) are in `voice_requests.rs`.

use std::collections::HashMap;
use std::time::Instant;

use voiceflow_media::{Channel, Rights, SfuEvent};
use voiceflow_schema::RoomKind;
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::voice::{
    VoiceMember, VoiceParticipant, VoiceSignal, VoiceUserLeft, events as voice_events,
};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::RoomState;
use crate::error::ActorError;
use crate::remote::Recipient;

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
    pub(super) to: Recipient,
    pub(super) muted: bool,
    pub(super) deafened: bool,
    pub(super) speaking: bool,
    pub(super) last_beat: Instant,
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
