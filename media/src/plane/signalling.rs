//! Signalling inside the media loop: which legs each participant receives (a track per other
//! participant's published track), server offers, rights, speaking reports and the channel's
//! loss and jitter figures.

use std::time::Instant;

use super::Cmd;
use super::media_loop::Loop;
use crate::MediaError;
use crate::sfu::{PeerId, RtcpStats, SfuEvent, Track};

impl Loop {
    /// One command from a channel (see [`Cmd`]).
    pub(super) fn command(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Join {
                channel,
                open,
                peer,
                offer,
                rights,
                reply,
            } => {
                let _ = reply.send(self.join(channel, open, peer, offer, rights, now));
            }
            Cmd::Sync { channel, reply } => {
                self.sync(channel, now);
                let _ = reply.send(());
            }
            Cmd::Answer {
                channel,
                peer,
                sdp,
                reply,
            } => {
                let result = self.key(channel, peer).and_then(|key| {
                    let p = self.peers.get_mut(&key).ok_or(MediaError::NotJoined)?;
                    let ready = p.apply_answer(sdp, now)?;
                    if std::mem::take(&mut p.again) {
                        self.renegotiate(key, now);
                    }
                    self.drain(key, now);
                    // A subscriber's new video legs start at a keyframe: of the layer chosen
                    // for them if their publisher simulcasts (`select_layers` asks for it),
                    // else of the track.
                    self.select_layers(key, now);
                    for (publisher, track) in ready {
                        if let Ok(publisher) = self.key(channel, publisher)
                            && !self.peers.get(&publisher).is_some_and(|p| {
                                p.offered.is_simulcast(track) && p.layers.contains_key(&track)
                            })
                        {
                            self.request_keyframe(publisher, track, now);
                        }
                    }
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Cmd::Candidate {
                channel,
                peer,
                candidate,
                reply,
            } => {
                let result = self.key(channel, peer).and_then(|key| {
                    let p = self.peers.get_mut(&key).ok_or(MediaError::NotJoined)?;
                    p.pc.add_remote_candidate(candidate)
                        .map_err(MediaError::candidate)?;
                    self.drain(key, now);
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Cmd::Rights {
                channel,
                peer,
                rights,
                reply,
            } => {
                let result = self.set_rights(channel, peer, rights, now);
                let _ = reply.send(result);
            }
            Cmd::Subscribe {
                channel,
                peer,
                publisher,
                track,
                paused,
                reply,
            } => {
                let result = self.subscribe(channel, peer, publisher, track, paused, now);
                let _ = reply.send(result);
            }
            Cmd::Layer {
                channel,
                peer,
                publisher,
                track,
                layer,
                reply,
            } => {
                let result = self.set_layer(channel, peer, publisher, track, layer, now);
                let _ = reply.send(result);
            }
            Cmd::Leave {
                channel,
                peer,
                reply,
            } => {
                let left = match self.key(channel, peer) {
                    Ok(key) => {
                        self.remove(key);
                        self.sync(channel, now);
                        true
                    }
                    Err(_) => false,
                };
                let _ = reply.send(left);
            }
            Cmd::Close { channel, reply } => {
                let keys: Vec<u64> = self
                    .rooms
                    .get(&channel)
                    .map(|r| r.members.values().copied().collect())
                    .unwrap_or_default();
                for key in keys {
                    self.remove(key);
                }
                self.rooms.remove(&channel);
                let _ = reply.send(());
            }
            Cmd::Stats { channel, reply } => {
                let _ = reply.send(self.rtcp_stats(channel, now));
            }
            Cmd::Tick { channel } => self.tick(channel, now),
        }
    }

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
