//! A voice session's upkeep, beside its signalling (`voice_requests.rs`) and media
//! (`voice.rs`): the participants' `in_call` presence, confirmed every heartbeat so it lapses
//! if this node dies, and the per-channel metrics exported on each voice tick.

use std::time::Instant;

use voiceflow_wire::Snowflake;

use super::RoomState;

impl RoomState {
    /// The user's presence shows `in_call` while they are in a voice channel.
    pub(super) fn set_in_call(&self, user: Snowflake, on: bool) {
        let still_here = self
            .voice
            .as_ref()
            .is_some_and(|v| v.entries.values().any(|e| e.user_id == user && e.announced));
        if !on && still_here {
            return;
        }
        let ctx = self.ctx.clone();
        let channel = self.room.id;
        let at_ms = voiceflow_wire::ids::now_ms();
        tokio::spawn(async move {
            let op = voiceflow_wire::cluster::PresenceOp::InCall { channel, on, at_ms };
            ctx.presence.send(user, op).await;
        });
    }

    /// Once per presence heartbeat: confirms `in_call` for everyone in the channel, so it
    /// lapses by itself if this actor's node dies.
    pub(super) fn refresh_in_call(&mut self) {
        let every = self.ctx.config.presence_heartbeat;
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        if voice.in_call_confirmed.elapsed() < every {
            return;
        }
        voice.in_call_confirmed = Instant::now();
        let users: std::collections::BTreeSet<Snowflake> = voice
            .entries
            .values()
            .filter(|e| e.announced)
            .map(|e| e.user_id)
            .collect();
        for user in users {
            self.set_in_call(user, true);
        }
    }

    /// Per-channel metrics: participants, packets and bytes forwarded, drops; every 5 s the
    /// loss and jitter RTCP reports.
    pub(super) fn export_voice_metrics(&mut self) {
        let channel_label = self.room.id.to_string();
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        let c = voice.channel.counters();
        let now = [
            c.received.load(std::sync::atomic::Ordering::Relaxed),
            c.forwarded.load(std::sync::atomic::Ordering::Relaxed),
            c.forwarded_bytes.load(std::sync::atomic::Ordering::Relaxed),
            c.dropped.load(std::sync::atomic::Ordering::Relaxed),
        ];
        let names = [
            "voiceflow_voice_received_packets_total",
            "voiceflow_voice_forwarded_packets_total",
            "voiceflow_voice_forwarded_bytes_total",
            "voiceflow_voice_dropped_packets_total",
        ];
        for ((name, value), old) in names.iter().zip(now).zip(voice.exported.iter_mut()) {
            let delta = value.saturating_sub(*old);
            if delta > 0 {
                metrics::counter!(*name, "channel" => channel_label.clone()).increment(delta);
            }
            *old = value;
        }
        let participants = voice.entries.len() as f64;
        metrics::gauge!("voiceflow_voice_channel_participants", "channel" => channel_label.clone())
            .set(participants);
        voice.ticks += 1;
        if voice.ticks % 20 == 0 {
            let channel = voice.channel.clone();
            tokio::spawn(async move {
                let stats = channel.rtcp_stats().await;
                metrics::gauge!("voiceflow_voice_packets_lost", "channel" => channel_label.clone())
                    .set(stats.packets_lost as f64);
                metrics::gauge!("voiceflow_voice_jitter_seconds", "channel" => channel_label)
                    .set(stats.jitter_secs);
            });
        }
    }
}
