//! A voice session's video: `voice:state` turning a participant's camera or screen share on
//! or off (checked against the `video` permission and the channel's cap on publishers), and
//! `voice:subscribe` pausing or resuming one participant's video for one subscriber and
//! choosing the largest camera layer it gets (simulcast). The SFU
//! forwards what the rights say ([`voiceflow_media::Rights`]); every session of the channel
//! learns who publishes from `voice:state`.

use serde_json::Value;
use voiceflow_media::{Layer, Track};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::voice::{VideoLayer, VideoTrack, VoiceSubscribe, events as voice_events};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::RoomState;
use super::voice::voice_error;
use crate::error::ActorError;
use crate::room::{Reply, SessionLink};

impl RoomState {
    /// `voice:state`: mute/deafen (`audio`), camera/screen on or off (`video`); unchanged
    /// where `None`.
    pub(super) fn voice_state(
        &mut self,
        session: SessionLink,
        audio: (Option<bool>, Option<bool>),
        video: (Option<bool>, Option<bool>),
        reply: Reply<Value>,
    ) {
        let cap = self.ctx.voice.max_video_publishers;
        let Some(voice) = self.voice.as_mut() else {
            return reply.send(Err(voice_error("join the voice channel first")));
        };
        // Others publishing video now (this participant's own tracks do not count twice).
        let publishing = voice
            .entries
            .iter()
            .filter(|(id, e)| **id != session.session_id && (e.video || e.screen))
            .count();
        let Some(entry) = voice.entries.get_mut(&session.session_id) else {
            return reply.send(Err(voice_error("join the voice channel first")));
        };
        let (want_video, want_screen) = (
            video.0.unwrap_or(entry.video),
            video.1.unwrap_or(entry.screen),
        );
        let turning_on = (want_video && !entry.video) || (want_screen && !entry.screen);
        if turning_on && !entry.may_publish_video() {
            return reply.send(Err(ActorError::Forbidden("you may not share video here")));
        }
        if turning_on && !(entry.video || entry.screen) && publishing >= cap {
            return reply.send(Err(ActorError::Client(ErrorBody::new(
                ErrorCode::RoomFull,
                format!("{cap} participants already share video in this channel (the most)"),
            ))));
        }
        entry.muted = audio.0.unwrap_or(entry.muted);
        entry.deafened = audio.1.unwrap_or(entry.deafened);
        entry.video = want_video;
        entry.screen = want_screen;
        if entry.muted {
            entry.speaking = false;
        }
        let rights = entry.rights();
        let channel = voice.channel.clone();
        let peer = session.session_id;
        tokio::spawn(async move {
            let _ = channel.set_rights(peer, rights).await;
        });
        let Some(view) = self
            .voice
            .as_ref()
            .and_then(|v| v.entries.get(&peer))
            .map(|e| self.participant_view(e))
        else {
            return;
        };
        self.voice_broadcast(&frame::event(voice_events::STATE, &view));
        reply.send(Ok(serde_json::to_value(&view).unwrap_or(Value::Null)));
    }

    /// `voice:subscribe`: this session stops or resumes receiving `user_id`'s `track` (every
    /// session of theirs in the channel).
    pub(super) fn voice_subscribe(
        &mut self,
        session: SessionLink,
        user_id: Snowflake,
        track: VideoTrack,
        (paused, layer): (bool, Option<VideoLayer>),
        reply: Reply<Value>,
    ) {
        let Some(voice) = self
            .voice
            .as_ref()
            .filter(|v| v.entries.contains_key(&session.session_id))
        else {
            return reply.send(Err(voice_error("join the voice channel first")));
        };
        let publishers: Vec<u64> = voice
            .entries
            .iter()
            .filter(|(id, e)| e.user_id == user_id && **id != session.session_id)
            .map(|(id, _)| *id)
            .collect();
        if publishers.is_empty() {
            return reply.send(Err(ActorError::Client(ErrorBody::field(
                "userId",
                "not in this voice channel",
            ))));
        }
        let tracks: &[Track] = match track {
            VideoTrack::Camera => &[Track::Camera],
            VideoTrack::Screen => &[Track::Screen, Track::ScreenAudio],
        };
        let (channel, peer) = (voice.channel.clone(), session.session_id);
        let ack = VoiceSubscribe {
            channel_id: self.room.id,
            user_id,
            track,
            paused,
            layer,
        };
        // A screen share is sent in one layer: only a camera's choice means anything.
        let layer = layer
            .filter(|_| track == VideoTrack::Camera)
            .map(|l| match l {
                VideoLayer::Low => Layer::Low,
                VideoLayer::Medium => Layer::Medium,
                VideoLayer::High => Layer::High,
            });
        tokio::spawn(async move {
            for publisher in publishers {
                if let Some(layer) = layer {
                    let _ = channel
                        .set_layer(peer, publisher, Track::Camera, layer)
                        .await;
                }
                for track in tracks {
                    let _ = channel.subscribe(peer, publisher, *track, paused).await;
                }
            }
            reply.send(Ok(serde_json::to_value(&ack).unwrap_or(Value::Null)));
        });
    }
}
