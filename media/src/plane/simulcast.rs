//! Simulcast in the media loop: the layers each publisher's video track arrives in (their
//! SSRCs, whether they are sent now and at what bitrate), the layer each subscriber leg
//! should forward (what the client asked for, capped by the subscriber's REMB estimate,
//! decided by `layers::Selector`), and keyframe requests for a layer a leg waits to switch
//! to. The switch itself happens in `forward`, at the target layer's keyframe.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::inbound::Media;
use super::layers::{LAYERS, choose, fit};
use super::media_loop::Loop;
use super::nack::{History, MAX_HISTORIES};
use super::peer::Peer;
use super::video::Codec;
use crate::MediaError;
use crate::sfu::{PeerId, Track};

pub(super) use super::layers::LegLayers;

/// A layer not heard from for this long is not sent any more (a browser drops its upper
/// layers when its own bandwidth estimate falls).
const LAYER_GONE: Duration = Duration::from_secs(1);

/// How long a layer's bitrate is measured over.
const RATE_WINDOW: Duration = Duration::from_millis(500);

/// A subscriber's REMB older than this no longer caps its layers.
const ESTIMATE_TTL: Duration = Duration::from_secs(5);

/// The layers of one publisher video track.
#[derive(Debug, Default)]
pub(super) struct Layers {
    ssrc: [Option<u32>; LAYERS],
    seen: [Option<Instant>; LAYERS],
    bytes: [u64; LAYERS],
    /// Bit/s of each layer over the last complete window.
    rates: [u64; LAYERS],
    window: Option<Instant>,
}

impl Layers {
    /// A packet of `layer` (stream `ssrc`) with `bytes` of payload arrived.
    pub(super) fn packet(&mut self, layer: u8, ssrc: u32, bytes: usize, now: Instant) {
        let i = usize::from(layer).min(LAYERS - 1);
        self.ssrc[i] = Some(ssrc);
        self.seen[i] = Some(now);
        self.bytes[i] += bytes as u64;
        let start = *self.window.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let ms = elapsed.as_millis().max(1) as u64;
            for (rate, bytes) in self.rates.iter_mut().zip(self.bytes.iter_mut()) {
                *rate = *bytes * 8 * 1000 / ms;
                *bytes = 0;
            }
            self.window = Some(now);
        }
    }

    /// Every stream of the track.
    pub(super) fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.ssrc.iter().flatten().copied()
    }

    /// The bitrate of each layer sent now.
    fn sent(&self, now: Instant) -> [Option<u64>; LAYERS] {
        let mut sent = [None; LAYERS];
        for (i, s) in sent.iter_mut().enumerate() {
            if self.seen[i].is_some_and(|at| now.saturating_duration_since(at) < LAYER_GONE) {
                *s = Some(self.rates[i]);
            }
        }
        sent
    }
}

/// Streams of one publisher whose track and layer were learnt from their MID and RID.
const MAX_SIMULCAST_STREAMS: usize = 16;

impl Peer {
    /// The track and layer of a packet the offer classified as `track`: a stream learnt
    /// before, or named by its MID and RID now; layer 0 for a track that is not simulcast.
    /// `None` for a simulcast track's stream that does not say which layer it is.
    pub(super) fn stream(&mut self, track: Track, packet: &Media<'_>) -> Option<(Track, u8)> {
        if let Some(known) = self.streams.get(&packet.ssrc) {
            return Some(*known);
        }
        if let (Some(mid), Some(rid)) = (packet.mid, packet.rid)
            && let Some(found) = self.offered.simulcast_stream(mid, rid)
        {
            if self.streams.len() < MAX_SIMULCAST_STREAMS {
                self.streams.insert(packet.ssrc, found);
            }
            return Some(found);
        }
        (!self.offered.is_simulcast(track)).then_some((track, 0))
    }

    /// A video packet the participant sent (and may publish): its layer's figures, and its
    /// copy for retransmissions (`history` packets per stream).
    pub(super) fn video_packet(
        &mut self,
        track: Track,
        layer: u8,
        codec: Codec,
        packet: &Media<'_>,
        history: usize,
        now: Instant,
    ) {
        self.layers
            .entry(track)
            .or_default()
            .packet(layer, packet.ssrc, packet.payload.len(), now);
        if history == 0 {
            return;
        }
        if !self.history.contains_key(&packet.ssrc) && self.history.len() >= MAX_HISTORIES {
            return;
        }
        self.history
            .entry(packet.ssrc)
            .or_insert_with(|| History::new(history))
            .store(
                packet.seq,
                packet.timestamp,
                packet.marker,
                codec,
                packet.payload,
            );
    }
}

/// How often a video publisher is told the bandwidth it may use (REMB).
const PUBLISHER_REMB_EVERY: Duration = Duration::from_secs(1);

impl Loop {
    /// Tells each video publisher, once a second, that it may send `video_max_kbps` per video
    /// track (REMB naming its video streams; 10 Mbit/s per track without a cap). Without any
    /// feedback a browser's send-side estimate never leaves its start value (~300 kbit/s) and
    /// a simulcast camera sends its lowest layer only: the loop reads publishers' packets on
    /// its own path, so `rtc`'s reports never describe them.
    pub(super) fn publisher_estimates(&mut self, now: Instant) {
        let per_track = match self.config.video_max_kbps {
            0 => 10_000_000.0,
            kbps => kbps as f32 * 1000.0,
        };
        let keys: Vec<u64> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.layers.is_empty()
                || peer
                    .remb_at
                    .is_some_and(|at| now.saturating_duration_since(at) < PUBLISHER_REMB_EVERY)
            {
                continue;
            }
            peer.remb_at = Some(now);
            let ssrcs: Vec<u32> = peer.layers.values().flat_map(|l| l.ssrcs()).collect();
            let remb = rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate: per_track * peer.layers.len() as f32,
                ssrcs,
            };
            if peer.write_rtcp(now, Box::new(remb), "a REMB") {
                self.drain(key, now);
            }
        }
    }

    /// Sends each publisher whose packets carry transport-wide sequence numbers the
    /// feedback on what arrived since the last turn (`twcc`), so its own estimate follows
    /// its uplink.
    pub(super) fn transport_feedback(&mut self, now: Instant) {
        let keys: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.twcc.as_ref().is_some_and(|t| t.pending()))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let media_ssrc = peer.inbound.keys().next().copied().unwrap_or(0);
            let Some(twcc) = peer.twcc.as_mut() else {
                continue;
            };
            let mut sent = 0;
            for fb in twcc.feedback(0, media_ssrc) {
                if peer.write_rtcp(now, Box::new(fb), "transport-wide feedback") {
                    sent += 1;
                }
            }
            if sent > 0 {
                if let Some(room) = self.rooms.get(&peer.channel) {
                    room.open
                        .counters
                        .transport_feedback
                        .fetch_add(sent, Ordering::Relaxed);
                }
                metrics::counter!("voiceflow_voice_twcc_feedback_total").increment(sent);
                self.drain(key, now);
            }
        }
    }

    /// `peer` wants `publisher`'s `track` at most in `layer`.
    pub(super) fn set_layer(
        &mut self,
        channel: u64,
        peer: PeerId,
        publisher: PeerId,
        track: Track,
        layer: crate::Layer,
        now: Instant,
    ) -> Result<(), MediaError> {
        let key = self.key(channel, peer)?;
        self.key(channel, publisher)?;
        let p = self.peers.get_mut(&key).ok_or(MediaError::NotJoined)?;
        p.wanted.insert((publisher, track), layer.index());
        self.select_layers(key, now);
        Ok(())
    }

    /// A subscriber's REMB.
    pub(super) fn estimate(&mut self, key: u64, bitrate: f32, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&key) {
            // `as` saturates (a negative or NaN estimate is 0).
            peer.estimate = Some((bitrate as u64, now));
        }
    }

    /// Every subscriber's layers (the loop's housekeeping).
    pub(super) fn select_all_layers(&mut self, now: Instant) {
        let keys: Vec<u64> = self.peers.keys().copied().collect();
        for key in keys {
            self.select_layers(key, now);
        }
    }

    /// The target layer of each of `key`'s video legs: screen shares first, then cameras,
    /// out of the subscriber's estimate; a keyframe request for each layer a leg waits for.
    pub(super) fn select_layers(&mut self, key: u64, now: Instant) {
        let upgrade_after = self.config.layer_upgrade_after;
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        let Some(room) = self.rooms.get(&peer.channel) else {
            return;
        };
        type Leg = (
            (PeerId, Track),
            u64,
            [Option<u64>; LAYERS],
            [Option<u32>; LAYERS],
        );
        let mut legs: Vec<Leg> = peer
            .legs
            .keys()
            .filter(|(_, t)| t.is_video())
            .filter(|pk| !peer.paused.contains(pk))
            .filter_map(|pk| {
                let publisher = *room.members.get(&pk.0)?;
                let layers = self.peers.get(&publisher)?.layers.get(&pk.1)?;
                Some((*pk, publisher, layers.sent(now), layers.ssrc))
            })
            .collect();
        if legs.is_empty() {
            return;
        }
        legs.sort_by_key(|((p, t), ..)| (*t != Track::Screen, *p));
        let mut budget = peer
            .estimate
            .filter(|(_, at)| now.saturating_duration_since(*at) < ESTIMATE_TTL)
            .map(|(b, _)| b);
        let mut requests = Vec::new();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        for (pk, publisher, rates, ssrcs) in legs {
            let requested = peer.wanted.get(&pk).copied().unwrap_or((LAYERS - 1) as u8);
            let Some(leg) = peer.legs.get_mut(&pk) else {
                continue;
            };
            let selector = &mut leg.layers.selector;
            selector.requested = requested;
            let fitted = fit(&rates, requested, budget);
            let best = choose(&rates, requested, budget, selector.target);
            let still_sent = selector
                .target
                .is_some_and(|t| rates.get(usize::from(t)).is_some_and(Option::is_some));
            let Some(target) = selector.decide(best, still_sent, now, upgrade_after) else {
                continue;
            };
            // A probe above what the estimate fits is charged what it fits: the other legs
            // keep their share while this one tries.
            let charged = fitted.map_or(target, |f| f.min(target));
            let rate = rates.get(usize::from(charged)).copied().flatten();
            if let (Some(b), Some(rate)) = (budget.as_mut(), rate) {
                *b = b.saturating_sub(rate);
            }
            if leg.params.is_some()
                && leg.layers.current != Some(target)
                && let Some(ssrc) = ssrcs.get(usize::from(target)).copied().flatten()
            {
                requests.push((publisher, ssrc));
            }
        }
        for (publisher, ssrc) in requests {
            self.request_keyframe_ssrc(publisher, ssrc, now);
        }
    }
}
