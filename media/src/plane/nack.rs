//! Retransmissions: a short history of each publisher video stream's packets (as received,
//! before any leg's renumbering), and a subscriber's generic NACK (RFC 4585) answered by
//! sending the lost packets again with the leg's header (its SSRC, payload type, and the
//! sequence number and timestamp the leg sent them with, mapped back through the leg's
//! `Rewriter`), on the leg's RTX stream (RFC 4588) if the subscriber negotiated RTX, else
//! on the leg's own SSRC. Upstream, video packets a publisher's stream skipped (a gap of at
//! most 16 in its sequence numbers, seen on the fast path, which `rtc`'s own NACK generator
//! never sees) are asked for with a NACK once; the publisher sends them again (on its RTX
//! stream, unwrapped by `rtx`, or on the same SSRC), and they are forwarded late like any
//! packet.

use std::sync::atomic::Ordering;

use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

use super::media_loop::Loop;
use super::srtp::write_header;
use super::video::Codec;
use crate::DropReason;

/// A packet kept for retransmission.
#[derive(Debug)]
struct Slot {
    seq: u16,
    ts: u32,
    marker: bool,
    codec: Codec,
    payload: Vec<u8>,
}

/// The last packets of one publisher stream, by sequence number (a ring).
#[derive(Debug)]
pub(super) struct History {
    slots: Vec<Option<Slot>>,
}

/// Streams with a history per publisher at most.
pub(super) const MAX_HISTORIES: usize = 8;

/// Packets a NACK may ask for at once (17 per pair; more is someone else's problem).
const MAX_PER_NACK: usize = 256;

impl History {
    pub(super) fn new(size: usize) -> History {
        History {
            slots: (0..size.max(1)).map(|_| None).collect(),
        }
    }

    /// Keeps a packet (its slot's buffer reused).
    pub(super) fn store(&mut self, seq: u16, ts: u32, marker: bool, codec: Codec, payload: &[u8]) {
        let n = self.slots.len();
        let Some(slot) = self.slots.get_mut(usize::from(seq) % n) else {
            return;
        };
        match slot {
            Some(s) => {
                s.seq = seq;
                s.ts = ts;
                s.marker = marker;
                s.codec = codec;
                s.payload.clear();
                s.payload.extend_from_slice(payload);
            }
            None => {
                *slot = Some(Slot {
                    seq,
                    ts,
                    marker,
                    codec,
                    payload: payload.to_vec(),
                })
            }
        }
    }

    fn get(&self, seq: u16) -> Option<&Slot> {
        let n = self.slots.len();
        self.slots
            .get(usize::from(seq) % n)?
            .as_ref()
            .filter(|s| s.seq == seq)
    }
}

impl Loop {
    /// Asks `key`'s client to send again `count` packets of its stream `ssrc` from `first`.
    pub(super) fn nack_upstream(
        &mut self,
        key: u64,
        ssrc: u32,
        first: u16,
        count: u16,
        now: std::time::Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let nacks = (0..count)
            .step_by(17)
            .map(|i| {
                let rest = (count - i - 1).min(16);
                NackPair {
                    packet_id: first.wrapping_add(i),
                    lost_packets: ((1u32 << rest) - 1) as u16,
                }
            })
            .collect();
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: ssrc,
            nacks,
        };
        if !peer.write_rtcp(now, Box::new(nack), "a NACK") {
            return;
        }
        if let Some(room) = self.rooms.get(&peer.channel) {
            room.open
                .counters
                .nacks_sent
                .fetch_add(u64::from(count), Ordering::Relaxed);
        }
        self.drain(key, now);
    }

    /// A subscriber's NACK: the packets of the leg it names that the history still has go
    /// out again.
    pub(super) fn retransmit(&mut self, key: u64, nack: &TransportLayerNack) {
        let Loop {
            peers,
            rooms,
            socket,
            stats,
            out,
            ..
        } = self;
        let Some(subscriber) = peers.get(&key) else {
            return;
        };
        let Some(((publisher, _), leg)) = subscriber
            .legs
            .iter()
            .find(|(_, l)| l.ssrc == nack.media_ssrc)
        else {
            return;
        };
        let Some(publisher) = rooms
            .get(&subscriber.channel)
            .and_then(|r| r.members.get(publisher))
            .and_then(|k| peers.get(k))
        else {
            return;
        };
        let mut again: Vec<(u16, u32, bool, Codec, Vec<u8>)> = Vec::new();
        for seq in nack
            .nacks
            .iter()
            .flat_map(|pair| pair.packet_list())
            .take(MAX_PER_NACK)
        {
            let Some((ssrc, original, ts_offset)) = leg.layers.rewriter.source(seq) else {
                continue;
            };
            if let Some(slot) = publisher.history.get(&ssrc).and_then(|h| h.get(original)) {
                again.push((
                    seq,
                    slot.ts.wrapping_add(ts_offset),
                    slot.marker,
                    slot.codec,
                    slot.payload.clone(),
                ));
            }
        }
        let leg_ssrc = nack.media_ssrc;
        let channel = subscriber.channel;
        let Some(to) = peers.get_mut(&key) else {
            return;
        };
        let Some(leg) = to.legs.values_mut().find(|l| l.ssrc == leg_ssrc) else {
            return;
        };
        let (Some(srtp), Some(dest), Some(params)) = (to.srtp.as_mut(), to.addr, leg.params) else {
            return;
        };
        let mut sent = 0u64;
        for (seq, ts, marker, codec, payload) in again {
            let Some(pt) = params.pt(codec) else {
                continue;
            };
            // RFC 4588 on the leg's RTX stream when it has one: the leg's next RTX number,
            // the RTX format of the codec, the original sequence number before the payload.
            // Otherwise the packet again as it was (the subscriber's SRTP takes it if it
            // never got the first copy).
            let (ssrc, out_seq, roc, header_len) = match (params.rtx_ssrc, params.rtx_pt(codec)) {
                (Some(rtx_ssrc), Some(rtx_pt)) => {
                    let rtx_seq = leg.rtx_seq;
                    leg.rtx_seq = rtx_seq.wrapping_add(1);
                    let len = write_header(out, marker, rtx_pt, rtx_seq, ts, rtx_ssrc, None);
                    out.extend_from_slice(&seq.to_be_bytes());
                    (rtx_ssrc, rtx_seq, leg.rtx_rollover.roc(rtx_seq), len)
                }
                _ => {
                    let len = write_header(out, marker, pt, seq, ts, leg_ssrc, None);
                    (leg_ssrc, seq, leg.rollover.roc(seq), len)
                }
            };
            out.extend_from_slice(&payload);
            if srtp.protect(out, header_len, ssrc, out_seq, roc).is_err() {
                continue;
            }
            match socket.send_to(out, dest) {
                Ok(_) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    sent += 1;
                }
                Err(_) => stats.count_drop(DropReason::SendFailed),
            }
        }
        if let Some(room) = rooms.get(&channel) {
            room.open
                .counters
                .retransmitted
                .fetch_add(sent, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_packets_by_number() {
        let mut h = History::new(4);
        for seq in 65_533u16..=65_535 {
            h.store(seq, u32::from(seq), false, Codec::Vp8, &[seq as u8]);
        }
        h.store(0, 7, true, Codec::H264, b"wrapped");
        h.store(1, 8, false, Codec::Vp8, b"newer");
        assert!(h.get(65_533).is_none(), "overwritten by 1");
        assert_eq!(h.get(65_535).map(|s| s.payload.clone()), Some(vec![255]));
        let s = h.get(0).expect("kept");
        assert_eq!(
            (s.ts, s.marker, s.codec, &s.payload[..]),
            (7, true, Codec::H264, &b"wrapped"[..])
        );
        assert!(h.get(2).is_none());
    }
}
