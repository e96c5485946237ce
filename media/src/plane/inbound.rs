//! The receiving half of the fast path: a publisher's SRTP packet read by the loop itself
//! (its clear header parsed, replay and rollover checked, authenticated and decrypted in place
//! with the connection's remote keys) instead of through `rtc`'s read path, which the profile
//! of many small rooms showed at ~28% of the loop. Since `rtc` then no longer sees these
//! packets, the loss and jitter figures of a received stream are kept here.

use std::time::Instant;

use super::media_loop::Loop;
use super::rtx::Repair;
use super::srtp::Srtp;
use crate::DropReason;

/// Most received streams (SSRCs) kept per participant.
const MAX_STREAMS: usize = 16;

impl Loop {
    /// A publisher's SRTP packet on the fast path: checked, decrypted in place into the
    /// reused buffer and forwarded; false if the connection's keys are not known (yet), for
    /// `rtc` to read it.
    pub(super) fn receive(&mut self, key: u64, data: &[u8], now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(&key) else {
            return false;
        };
        if !peer.connected {
            return false;
        }
        if peer.srtp_in.is_none() {
            let Some(keys) = peer.tap.remote_keys() else {
                return false;
            };
            match Srtp::new(&keys, peer.tap.inner()) {
                Ok(srtp) => peer.srtp_in = Some(srtp),
                Err(_) => return false,
            }
        }
        let Some(srtp) = peer.srtp_in.as_mut() else {
            return false;
        };
        let Some(header) = Header::parse(data) else {
            self.stats.count_drop(DropReason::Rejected);
            return true;
        };
        let stream = peer.inbound.get(&header.ssrc).cloned().unwrap_or_default();
        let Some((index, roc)) = stream.check(header.seq) else {
            // A replay, or too old to tell.
            self.stats.count_drop(DropReason::Rejected);
            return true;
        };
        let mut lost = None;
        let mut buf = std::mem::take(&mut self.inbuf);
        buf.clear();
        buf.extend_from_slice(data);
        match srtp.unprotect(&mut buf, header.len, header.ssrc, header.seq, roc) {
            Ok(end) => {
                // Its arrival, for the publisher's congestion control (padding-only probes
                // included: they are what its estimate probes with).
                if let Some(twcc) = peer.twcc.as_mut()
                    && let Some(&[hi, lo, ..]) = header.extension_bytes(&buf, twcc.ext_id())
                {
                    let arrival = Instant::now().saturating_duration_since(self.epoch);
                    twcc.record(u16::from_be_bytes([hi, lo]), arrival.as_micros() as i64);
                }
                // Only authenticated packets make a stream (a handful per publisher at most).
                if peer.inbound.len() < MAX_STREAMS || peer.inbound.contains_key(&header.ssrc) {
                    let mut stream = stream;
                    // Video's RTP clock is 90 kHz, audio's (Opus) 48 kHz.
                    let video = peer
                        .offered
                        .codecs
                        .get(&header.pt)
                        .is_some_and(|c| *c != super::video::Codec::Opus);
                    let rate = if video { 90_000.0 } else { 48_000.0 };
                    // Video packets skipped over are asked for again (see `nack`).
                    let skipped = stream.skipped(index).filter(|_| video);
                    if peer.offered.rtx_pts.contains(&header.pt) {
                        // An RTX stream: its timestamps are the repaired packets' (old), so
                        // its arrivals say nothing about jitter.
                        stream.repaired(index);
                    } else {
                        stream.accept(index, header.timestamp, now, self.epoch, rate);
                    }
                    peer.inbound.insert(header.ssrc, stream);
                    if let Some(skipped) = skipped {
                        lost = Some((header.ssrc, skipped));
                    }
                }
                // RFC 3550 padding: its last byte counts it. A packet of padding only (a
                // bandwidth probe) carries nothing to forward.
                let end = match (header.padding, end.checked_sub(1).and_then(|i| buf.get(i))) {
                    (true, Some(&pad)) => end.saturating_sub(usize::from(pad)),
                    _ => end,
                };
                let media = match peer.repair(&header, &buf, end) {
                    None => {
                        let level = peer.level_id.and_then(|id| header.extension(&buf, id));
                        // A simulcast stream not known yet is named by its MID and RID.
                        let (mid, rid) = if peer.offered.rids.is_empty()
                            || peer.streams.contains_key(&header.ssrc)
                        {
                            (None, None)
                        } else {
                            let ext =
                                |id: Option<u8>| id.and_then(|id| header.extension_bytes(&buf, id));
                            (ext(peer.offered.mid_ext), ext(peer.offered.rid_ext))
                        };
                        (end > header.len).then(|| Media {
                            marker: header.marker,
                            pt: header.pt,
                            seq: header.seq,
                            timestamp: header.timestamp,
                            ssrc: header.ssrc,
                            level,
                            mid,
                            rid,
                            payload: &buf[header.len..end],
                        })
                    }
                    Some(Repair::Padding) => {
                        self.stats.count_drop(DropReason::RtxPadding);
                        None
                    }
                    Some(Repair::Invalid) => {
                        self.stats.count_drop(DropReason::RtxInvalid);
                        None
                    }
                    Some(Repair::Original { ssrc, pt, seq }) => {
                        // The original's stream decides whether it is still missing (a
                        // repair of a stream not received yet starts it, within the bound).
                        if !peer.inbound.contains_key(&ssrc) && peer.inbound.len() < MAX_STREAMS {
                            peer.inbound.insert(ssrc, Inbound::default());
                        }
                        let original = peer.inbound.get_mut(&ssrc);
                        match original.and_then(|o| o.check(seq).map(|c| (o, c))) {
                            Some((original, (index, _))) => {
                                original.repaired(index);
                                Some(Media {
                                    marker: header.marker,
                                    pt,
                                    seq,
                                    timestamp: header.timestamp,
                                    ssrc,
                                    level: None,
                                    mid: None,
                                    rid: None,
                                    payload: &buf[header.len + 2..end],
                                })
                            }
                            None => {
                                self.stats.count_drop(DropReason::RtxDuplicate);
                                None
                            }
                        }
                    }
                };
                if let Some(media) = media {
                    self.forward(key, &media, now);
                }
            }
            Err(_) => self.stats.count_drop(DropReason::Rejected),
        }
        self.inbuf = buf;
        if let Some((ssrc, (first, count))) = lost {
            self.nack_upstream(key, ssrc, first, count, now);
        }
        true
    }
}

/// What the forwarding path needs of a received packet.
pub(super) struct Media<'a> {
    pub(super) marker: bool,
    /// The publisher's payload type (which codec, by its offer).
    pub(super) pt: u8,
    pub(super) seq: u16,
    pub(super) timestamp: u32,
    /// The publisher's stream (which track, by its offer).
    pub(super) ssrc: u32,
    /// RFC 6464 audio level byte, if the packet carries one under the publisher's id.
    pub(super) level: Option<u8>,
    /// The MID and RID header extensions (RFC 8843, 8852), when the stream is not known yet.
    pub(super) mid: Option<&'a [u8]>,
    pub(super) rid: Option<&'a [u8]>,
    pub(super) payload: &'a [u8],
}

/// An RTP header's fields, read from the clear part of an SRTP packet.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) len: usize,
    pub(super) marker: bool,
    pub(super) pt: u8,
    /// The P bit: the payload ends in padding.
    pub(super) padding: bool,
    pub(super) seq: u16,
    pub(super) timestamp: u32,
    pub(super) ssrc: u32,
    /// The one-byte-form extension block (RFC 8285), as a range of the packet.
    extensions: Option<(usize, usize)>,
}

impl Header {
    /// Parses the header of `data` (already known to be RTP by its first byte).
    pub(super) fn parse(data: &[u8]) -> Option<Header> {
        let first = *data.first()?;
        if first >> 6 != 2 {
            return None;
        }
        let csrcs = usize::from(first & 0x0f);
        let mut len = 12 + 4 * csrcs;
        let fixed = data.get(..12)?;
        let mut extensions = None;
        if first & 0x10 != 0 {
            let ext = data.get(len..len + 4)?;
            let profile = u16::from_be_bytes([ext[0], ext[1]]);
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            let body = len + 4;
            len = body + 4 * words;
            if profile == 0xbede {
                extensions = Some((body, len));
            }
        }
        if data.len() < len {
            return None;
        }
        Some(Header {
            len,
            marker: fixed[1] & 0x80 != 0,
            pt: fixed[1] & 0x7f,
            padding: first & 0x20 != 0,
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            extensions,
        })
    }

    /// The first byte of the one-byte extension `id` in `data`.
    pub(super) fn extension(&self, data: &[u8], id: u8) -> Option<u8> {
        self.extension_bytes(data, id)?.first().copied()
    }

    /// The value of the one-byte extension `id` in `data`.
    pub(super) fn extension_bytes<'a>(&self, data: &'a [u8], id: u8) -> Option<&'a [u8]> {
        let (start, end) = self.extensions?;
        let block = data.get(start..end)?;
        let mut at = 0;
        while let Some(&b) = block.get(at) {
            if b == 0 {
                at += 1; // padding
                continue;
            }
            let (element, len) = (b >> 4, usize::from(b & 0x0f) + 1);
            if element == 15 {
                return None;
            }
            if element == id {
                return block.get(at + 1..at + 1 + len);
            }
            at += 1 + len;
        }
        None
    }
}

/// A received stream (one SSRC): its rollover and replay window, and what loss and jitter
/// reports would say.
#[derive(Debug, Default, Clone)]
pub(super) struct Inbound {
    highest: Option<u64>,
    /// Bit n: index `highest - n` was received.
    window: u64,
    base: u64,
    received: u64,
    /// The previous packet's arrival (48 kHz units since `epoch`) and RTP timestamp.
    last: Option<(f64, u32)>,
    jitter: f64,
}

/// Packets older than this many behind the highest are refused (RFC 3711's minimum).
const WINDOW: u64 = 64;

impl Inbound {
    /// The packet index `seq` stands for and its rollover counter, unless it is a replay or
    /// too old.
    pub(super) fn check(&self, seq: u16) -> Option<(u64, u32)> {
        let index = match self.highest {
            None => u64::from(seq),
            Some(highest) => {
                let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
                let index = u64::try_from(highest as i64 + delta).ok()?;
                if index <= highest {
                    let behind = highest - index;
                    if behind >= WINDOW || self.window & (1 << behind) != 0 {
                        return None;
                    }
                }
                index
            }
        };
        Some((index, (index >> 16) as u32))
    }

    /// An authenticated packet of index `index` arrived.
    pub(super) fn accept(
        &mut self,
        index: u64,
        timestamp: u32,
        arrival: Instant,
        epoch: Instant,
        rate: f64,
    ) {
        self.mark(index);
        // RFC 3550 §6.4.1, in the 48 kHz clock of Opus (a video stream's 90 kHz converted).
        let now = arrival.saturating_duration_since(epoch).as_secs_f64() * 48_000.0;
        if let Some((then, ts)) = self.last {
            let elapsed = f64::from(timestamp.wrapping_sub(ts) as i32) * 48_000.0 / rate;
            let d = (now - then) - elapsed;
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last = Some((now, timestamp));
    }

    /// Index `index` was received (the replay window, the highest index, the count).
    fn mark(&mut self, index: u64) {
        match self.highest {
            None => {
                self.highest = Some(index);
                self.base = index;
                self.window = 1;
            }
            Some(highest) if index > highest => {
                let shift = index - highest;
                self.window = if shift >= WINDOW {
                    0
                } else {
                    self.window << shift
                };
                self.window |= 1;
                self.highest = Some(index);
            }
            Some(highest) => self.window |= 1 << (highest - index),
        }
        self.received += 1;
    }

    /// A retransmission of index `index` (checked: not received yet) arrived, or a packet
    /// of an RTX stream: it counts as received and will not be taken again; the jitter
    /// figures are left alone (a retransmission carries an old timestamp).
    pub(super) fn repaired(&mut self, index: u64) {
        self.mark(index);
    }

    /// The sequence numbers a packet of index `index` jumps over (the first, how many), if
    /// it skips a few (at most 16: more is an outage or a restart, not loss to repair).
    pub(super) fn skipped(&self, index: u64) -> Option<(u16, u16)> {
        let highest = self.highest?;
        let gap = index.checked_sub(highest + 1)?;
        (1..=16)
            .contains(&gap)
            .then_some(((highest + 1) as u16, gap as u16))
    }

    /// Packets expected but not received so far.
    pub(super) fn lost(&self) -> u64 {
        let expected = self.highest.map_or(0, |h| h - self.base + 1);
        expected.saturating_sub(self.received)
    }

    /// Interarrival jitter, seconds.
    pub(super) fn jitter_secs(&self) -> f64 {
        self.jitter / 48_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::srtp::write_header;

    #[test]
    fn headers_parse_with_and_without_the_level_extension() {
        let mut buf = Vec::new();
        write_header(&mut buf, true, 111, 7, 960, 42, Some((3, 0x9f)));
        buf.extend_from_slice(b"opus");
        let h = Header::parse(&buf).expect("parses");
        assert_eq!(
            (h.len, h.marker, h.seq, h.timestamp, h.ssrc),
            (20, true, 7, 960, 42)
        );
        assert_eq!(h.extension(&buf, 3), Some(0x9f));
        assert_eq!(h.extension_bytes(&buf, 3), Some(&[0x9f][..]));
        assert_eq!(h.extension(&buf, 4), None);
        write_header(&mut buf, false, 111, 8, 1920, 42, None);
        let h = Header::parse(&buf).expect("parses");
        assert_eq!((h.len, h.extension(&buf, 3)), (12, None));
        assert_eq!(Header::parse(&buf[..11]), None);
        buf[0] = 0x90; // says it has extensions it does not have
        assert_eq!(Header::parse(&buf), None);
    }

    #[test]
    fn replays_are_refused_and_rollover_follows_the_sequence() {
        let (epoch, mut s) = (Instant::now(), Inbound::default());
        let take = |s: &mut Inbound, seq: u16| {
            let (index, roc) = s.check(seq)?;
            s.accept(index, u32::from(seq) * 960, epoch, epoch, 48_000.0);
            Some(roc)
        };
        assert_eq!(take(&mut s, 65_534), Some(0));
        assert_eq!(take(&mut s, 1), Some(1), "wrapped");
        assert_eq!(take(&mut s, 65_535), Some(0), "late, before the wrap");
        assert_eq!(take(&mut s, 1), None, "replay");
        assert_eq!(take(&mut s, 65_535), None, "replay");
        assert_eq!(s.lost(), 1, "index 65,536 (seq 0) never came");
        let far = 1u16.wrapping_add(200);
        assert_eq!(take(&mut s, far), Some(1));
        assert_eq!(take(&mut s, 2), None, "older than the window");
        assert_eq!(s.skipped(65_536 + 202), None, "the next one");
        assert_eq!(s.skipped(65_536 + 205), Some((202, 3)));
        assert_eq!(s.skipped(65_536 + 201), None, "late");
        assert_eq!(s.skipped(65_536 + 201 + 100), None, "an outage");
    }

    #[test]
    fn a_repair_fills_the_window_and_leaves_jitter_alone() {
        let (epoch, mut s) = (Instant::now(), Inbound::default());
        for seq in [1u16, 2, 4] {
            let (index, _) = s.check(seq).expect("new");
            let at = epoch + std::time::Duration::from_millis(u64::from(seq) * 40);
            s.accept(index, u32::from(seq) * 3000, at, epoch, 90_000.0);
        }
        assert_eq!(s.lost(), 1);
        let jitter = s.jitter_secs();
        let (index, _) = s.check(3).expect("still missing");
        s.repaired(index);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.check(3), None, "taken once");
        assert_eq!(s.jitter_secs(), jitter);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80), id in 0u8..16) {
            if let Some(h) = Header::parse(&bytes) {
                let _ = h.extension(&bytes, id);
            }
        }
    }
}
