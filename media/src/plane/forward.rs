//! The forwarding path: one received (already decrypted) packet of a publisher, to every
//! subscriber leg of its channel, in the loop, with no task or channel hop: the header
//! rewritten per leg (its SSRC, payload type and audio-level extension id), the payload
//! shared (a reference count, not a copy), encrypted and sent per leg.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::media_loop::{Loop, flush};
use crate::sfu::SfuEvent;

impl Loop {
    /// One packet from the participant `from`: speaking detection, then on to every
    /// subscriber.
    pub(super) fn forward(&mut self, from: u64, packet: rtc::rtp::Packet, now: Instant) {
        let Loop {
            peers,
            rooms,
            socket,
            stats,
            by_addr,
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
        let level = publisher
            .level_id
            .and_then(|id| packet.header.get_extension(id));
        let rights = publisher.rights;
        let allowed = !rights.muted && rights.may_speak;
        // RFC 6464: one byte, the V flag and the level (0 loudest … 127 silence).
        if allowed
            && let Some(&byte) = level.as_ref().and_then(|l| l.first())
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
            let Some(leg) = to.legs.get(&publisher) else {
                continue;
            };
            let Some((pt, out_level)) = leg.params else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut header = rtc::rtp::Header {
                version: 2,
                marker: packet.header.marker,
                payload_type: pt,
                sequence_number: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                ssrc: leg.ssrc,
                ..Default::default()
            };
            if let (Some(id), Some(bytes)) = (out_level, level.as_ref()) {
                let _ = header.set_extension(id, bytes.clone());
            }
            let bytes = packet.payload.len() as u64;
            let out = rtc::rtp::Packet {
                header,
                payload: packet.payload.clone(),
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
