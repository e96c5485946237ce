//! The forwarding path: one received (already decrypted) packet of a publisher, to every
//! subscriber leg of its channel, in the loop, with no task or channel hop and no allocation:
//! per leg the header is written with the leg's SSRC, payload type and audio-level extension
//! id into one reused buffer, the payload copied after it, the whole encrypted in place with
//! the subscriber connection's SRTP keys (see `srtp`) and sent.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::inbound::Media;
use super::layers::{Arrived, is_keyframe};
use super::media_loop::{Loop, flush};
use super::srtp::{Srtp, write_header};
use crate::DropReason;
use crate::sfu::{SfuEvent, Track};

impl Loop {
    /// One packet `rtc` decrypted for the participant `from` (the fallback read path).
    pub(super) fn forward_rtc(&mut self, from: u64, packet: rtc::rtp::Packet, now: Instant) {
        let Some(id) = self.peers.get(&from).map(|p| p.level_id) else {
            return;
        };
        let level = id
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|l| l.first().copied());
        let (mid, rid) = self.peers.get(&from).map_or((None, None), |p| {
            let ext = |id: Option<u8>| id.and_then(|id| packet.header.get_extension(id));
            (ext(p.offered.mid_ext), ext(p.offered.rid_ext))
        });
        let media = Media {
            marker: packet.header.marker,
            pt: packet.header.payload_type,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            ssrc: packet.header.ssrc,
            level,
            mid: mid.as_deref(),
            rid: rid.as_deref(),
            payload: &packet.payload,
        };
        self.forward(from, &media, now);
    }

    /// One packet from the participant `from`: speaking detection, then on to every
    /// subscriber.
    pub(super) fn forward(&mut self, from: u64, packet: &Media<'_>, now: Instant) {
        let Loop {
            peers,
            rooms,
            socket,
            stats,
            by_addr,
            out,
            config,
            ..
        } = self;
        let Some(publisher) = peers.get_mut(&from) else {
            return;
        };
        let Some(room) = rooms.get(&publisher.channel) else {
            return;
        };
        let counters = &room.open.counters;
        counters.received.fetch_add(1, Ordering::Relaxed);
        let Some((track, codec)) = publisher.offered.classify(packet.ssrc, packet.pt) else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stream = if track.is_video() {
            publisher.stream(track, packet)
        } else {
            Some((track, 0))
        };
        let Some((track, layer)) = stream else {
            // A simulcast stream that did not say which it is.
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // Only the microphone's level is speech.
        let level = packet.level.filter(|_| track == Track::Mic);
        let rights = publisher.rights;
        let allowed = track.published(&rights);
        // RFC 6464: one byte, the V flag and the level (0 loudest … 127 silence).
        if allowed
            && let Some(byte) = level
            && let Some(speaking) = publisher
                .speaking
                .packet(byte & 0x7f, byte & 0x80 != 0, now)
        {
            let _ = room.open.events.send(SfuEvent::Speaking {
                peer: publisher.id,
                speaking,
            });
        }
        if !allowed {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Video: its layer's figures, its history for retransmissions; whether it starts a
        // keyframe (where a leg may switch layers).
        let (gated, keyframe) = if track.is_video() {
            publisher.video_packet(track, layer, codec, packet, config.nack_history, now);
            (
                publisher.offered.is_simulcast(track),
                is_keyframe(codec, packet.payload),
            )
        } else {
            (false, false)
        };
        let publisher = publisher.id;
        for (&id, &key) in &room.members {
            if id == publisher {
                continue;
            }
            let Some(to) = peers.get_mut(&key) else {
                continue;
            };
            if to.rights.deafened {
                continue;
            }
            if to.paused.contains(&(publisher, track)) {
                continue;
            }
            let Some(leg) = to.legs.get_mut(&(publisher, track)) else {
                continue;
            };
            let Some((pt, out_level)) = leg.params.and_then(|p| Some((p.pt(codec)?, p.level_id)))
            else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (seq, timestamp) = if track.is_video() {
                let before = leg.layers.current;
                let arrived = Arrived {
                    layer,
                    ssrc: packet.ssrc,
                    seq: packet.seq,
                    ts: packet.timestamp,
                    keyframe,
                };
                let Some(mapped) = leg.layers.admit(arrived, gated, now) else {
                    continue;
                };
                if before.is_some() && before != leg.layers.current {
                    counters.layer_switches.fetch_add(1, Ordering::Relaxed);
                }
                mapped
            } else {
                (packet.seq, packet.timestamp)
            };
            let bytes = packet.payload.len() as u64;
            // The fast path: this leg's header into the reused buffer, encrypted in place
            // with the connection's own keys, sent at once.
            if to.srtp.is_none()
                && let Some(keys) = to.tap.keys()
            {
                to.srtp = Srtp::new(&keys, to.tap.inner()).ok();
            }
            if let (Some(srtp), Some(dest)) = (to.srtp.as_mut(), to.addr) {
                let level = out_level.zip(level);
                let header_len =
                    write_header(out, packet.marker, pt, seq, timestamp, leg.ssrc, level);
                out.extend_from_slice(packet.payload);
                let roc = leg.rollover.roc(seq);
                if srtp.protect(out, header_len, leg.ssrc, seq, roc).is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match socket.send_to(out, dest) {
                    Ok(_) => {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                        counters.forwarded_bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(_) => stats.count_drop(DropReason::SendFailed),
                }
                continue;
            }
            // Keys not tapped (a profile the fast path does not do): `rtc`'s own path.
            let mut header = rtc::rtp::Header {
                version: 2,
                marker: packet.marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp,
                ssrc: leg.ssrc,
                ..Default::default()
            };
            if let (Some(id), Some(byte)) = (out_level, level) {
                let _ = header.set_extension(id, bytes::Bytes::copy_from_slice(&[byte]));
            }
            let out = rtc::rtp::Packet {
                header,
                payload: bytes::Bytes::copy_from_slice(packet.payload),
            };
            let sender = leg.sender;
            let Some(mut sender) = to.pc.rtp_sender(sender) else {
                continue;
            };
            match sender.write_rtp(now, out) {
                Ok(()) => {
                    counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    counters.forwarded_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            flush(socket, stats, by_addr, key, to);
        }
    }
}
