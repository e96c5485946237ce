//! Signalling inside the media loop: which legs each participant receives (a track per other
//! participant's published track), server offers, rights, speaking reports and the channel's
//! loss and jitter figures.

use std::time::Instant;

use super::media_loop::Loop;
use crate::MediaError;
use crate::sfu::{PeerId, RtcpStats, SfuEvent, Track};

impl Loop {
    /// Brings every participant's legs in line with who publishes, renegotiating those whose
    /// set changed.
    pub(super) fn sync(&mut self, channel: u64, now: Instant) {
        let Some(room) = self.rooms.get(&channel) else {
            return;
        };
        let keys: Vec<(PeerId, u64)> = room.members.iter().map(|(p, k)| (*p, *k)).collect();
        // Muting keeps the microphone's leg (its packets are dropped); the other tracks come
        // and go with publishing.
        let published: Vec<(PeerId, Track)> = keys
            .iter()
            .filter_map(|(id, k)| self.peers.get(k).map(|p| (*id, p)))
            .flat_map(|(id, p)| {
                let r = p.rights;
                [
                    (r.may_speak, Track::Mic),
                    (r.video, Track::Camera),
                    (r.screen, Track::Screen),
                    (r.screen && p.offered.screen_audio, Track::ScreenAudio),
                ]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(move |(_, track)| (id, track))
            })
            .collect();
        for (id, key) in keys {
            let wanted: Vec<(PeerId, Track)> = published
                .iter()
                .copied()
                .filter(|(p, _)| *p != id)
                .collect();
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            match peer.sync_legs(&wanted) {
                Ok(true) => self.renegotiate(key, now),
                Ok(false) => {}
                Err(e) => tracing::warn!(peer = id, error = %e, "voice: cannot change tracks"),
            }
            self.drain(key, now);
        }
    }

    pub(super) fn renegotiate(&mut self, key: u64, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.in_flight {
            peer.again = true;
            return;
        }
        match peer.offer(now) {
            Ok(sdp) => {
                peer.in_flight = true;
                let sdp = super::video::cap_video(sdp, self.config.video_max_kbps);
                let sdp = self.config.announce(sdp);
                if let Some(room) = self.rooms.get(&peer.channel) {
                    let _ = room
                        .open
                        .events
                        .send(SfuEvent::Offer { peer: peer.id, sdp });
                }
            }
            Err(e) => tracing::warn!(peer = peer.id, error = %e, "voice: cannot create an offer"),
        }
    }

    pub(super) fn set_rights(
        &mut self,
        channel: u64,
        id: PeerId,
        rights: crate::Rights,
        now: Instant,
    ) -> Result<crate::Rights, MediaError> {
        let key = self.key(channel, id)?;
        let peer = self.peers.get_mut(&key).ok_or(MediaError::NotJoined)?;
        let before = std::mem::replace(&mut peer.rights, rights);
        if rights.muted || !rights.may_speak {
            peer.speaking.silence();
            self.report_speaking(key, now);
        }
        if (before.may_speak, before.video, before.screen)
            != (rights.may_speak, rights.video, rights.screen)
        {
            self.sync(channel, now);
        }
        Ok(before)
    }

    pub(super) fn tick(&mut self, channel: u64, now: Instant) {
        let Some(room) = self.rooms.get(&channel) else {
            return;
        };
        let keys: Vec<u64> = room.members.values().copied().collect();
        for key in keys {
            self.report_speaking(key, now);
        }
    }

    pub(super) fn report_speaking(&mut self, key: u64, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(speaking) = peer.speaking.tick(now)
            && let Some(room) = self.rooms.get(&peer.channel)
        {
            let _ = room.open.events.send(SfuEvent::Speaking {
                peer: peer.id,
                speaking,
            });
        }
    }

    pub(super) fn rtcp_stats(&mut self, channel: u64, now: Instant) -> RtcpStats {
        let mut stats = RtcpStats::default();
        let Some(room) = self.rooms.get(&channel) else {
            return stats;
        };
        for key in room.members.values() {
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            // Streams read on the fast path (which `rtc`'s statistics never see).
            for inbound in peer.inbound.values() {
                stats.packets_lost += inbound.lost();
                stats.jitter_secs = stats.jitter_secs.max(inbound.jitter_secs());
            }
            let report = peer.pc.get_stats(now, rtc::statistics::StatsSelector::None);
            for inbound in report.inbound_rtp_streams() {
                let r = &inbound.received_rtp_stream_stats;
                stats.packets_lost += r.packets_lost.max(0) as u64;
                // Reported in RTP clock units (48 kHz for Opus).
                stats.jitter_secs = stats.jitter_secs.max(r.jitter / 48_000.0);
            }
        }
        stats
    }
}
