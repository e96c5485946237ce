//! Simulcast without IO: which of a publisher's layers a subscriber's leg forwards, and how
//! its packets are renumbered so the subscriber sees one stream.
//!
//! - [`Rewriter`]: a leg sends one SSRC whatever layer it forwards; at a switch the new
//!   layer's sequence numbers and timestamps are shifted to continue where the old layer's
//!   stopped (the subscriber's jitter buffer and SRTP rollover never see a jump).
//! - [`Selector`]: per leg, the layer to forward next from what the client asked for (a cap)
//!   and what the budget allows ([`fit`]): down at once, up only after the budget allowed it
//!   for `upgrade_after` (a short peak of the estimate does not flap layers).
//! - [`is_keyframe`]: a switch happens only at the first packet of a keyframe of the target
//!   layer (VP8: the payload descriptor's start bit and the payload header's key-frame bit;
//!   H.264: an IDR slice or the SPS that precedes it).
//!
//! Time is passed in; nothing here reads a clock.

use std::time::{Duration, Instant};

use super::video::Codec;

/// Layers a publisher may send, lowest first (the order of its `a=simulcast:send` list).
pub(crate) const LAYERS: usize = 3;

/// Renumbers one leg's packets across layer switches.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rewriter {
    /// The publisher's stream forwarded now.
    pub(crate) ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// The highest sequence number and its timestamp sent so far, and when.
    last: Option<(u16, u32, Instant)>,
    /// Past streams' offsets, newest last, from the first outgoing sequence number they
    /// were used for (retransmissions map an outgoing number back through them).
    segments: Vec<Segment>,
}

/// Which publisher stream a range of a leg's outgoing sequence numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) from: u16,
    pub(crate) ssrc: u32,
    pub(crate) seq_offset: u16,
    pub(crate) ts_offset: u32,
}

/// Segments kept for retransmissions (older ones are past any history anyway).
const SEGMENTS: usize = 4;

/// The RTP clock of video (90 kHz), per millisecond.
const TICKS_PER_MS: u64 = 90;

impl Rewriter {
    /// Starts forwarding the publisher's stream `ssrc` at its packet (`seq`, `ts`): that
    /// packet goes out as the one after the last sent, its timestamp advanced by the wall
    /// time since (at least one tick). The first stream keeps its own numbers.
    pub(crate) fn switch(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) {
        let (seq_offset, ts_offset) = match self.last {
            None => (0, 0),
            Some((last_seq, last_ts, at)) => {
                let ms = now.saturating_duration_since(at).as_millis() as u64;
                let ticks = (ms * TICKS_PER_MS).clamp(1, u64::from(u32::MAX / 2)) as u32;
                (
                    last_seq.wrapping_add(1).wrapping_sub(seq),
                    last_ts.wrapping_add(ticks).wrapping_sub(ts),
                )
            }
        };
        self.ssrc = Some(ssrc);
        self.seq_offset = seq_offset;
        self.ts_offset = ts_offset;
        let from = seq.wrapping_add(seq_offset);
        if self.segments.len() >= SEGMENTS {
            self.segments.remove(0);
        }
        self.segments.push(Segment {
            from,
            ssrc,
            seq_offset,
            ts_offset,
        });
    }

    /// The outgoing sequence number and timestamp of the current stream's packet.
    pub(crate) fn map(&mut self, seq: u16, ts: u32, now: Instant) -> (u16, u32) {
        let out = (
            seq.wrapping_add(self.seq_offset),
            ts.wrapping_add(self.ts_offset),
        );
        let newer = self
            .last
            .is_none_or(|(last, _, _)| (out.0.wrapping_sub(last) as i16) > 0);
        if newer {
            self.last = Some((out.0, out.1, now));
        }
        out
    }

    /// The publisher stream and sequence number an outgoing sequence number stood for, and
    /// the timestamp offset to send it with again.
    pub(crate) fn source(&self, out: u16) -> Option<(u32, u16, u32)> {
        let (last, _, _) = self.last?;
        // Only what was sent: at most 32,767 behind the highest.
        if (last.wrapping_sub(out) as i16) < 0 {
            return None;
        }
        let segment = self
            .segments
            .iter()
            .rev()
            .find(|s| (out.wrapping_sub(s.from) as i16) >= 0)?;
        Some((
            segment.ssrc,
            out.wrapping_sub(segment.seq_offset),
            segment.ts_offset,
        ))
    }
}

/// Whether an RTP payload of `codec` starts a keyframe.
pub(crate) fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Opus => false,
        Codec::Vp8 => vp8_keyframe(payload),
        Codec::H264 => h264_keyframe(payload),
    }
}

/// RFC 7741: the descriptor's S bit with partition 0, then the payload header's inverse
/// key-frame bit.
fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&descriptor) = payload.first() else {
        return false;
    };
    // With X set, the extension bytes follow (I: picture id, 1 or 2 bytes; L, T/K: 1 each).
    let mut at = 1;
    if descriptor & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        at = 2;
        if x & 0x80 != 0 {
            at += if payload.get(2).is_some_and(|b| b & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        at += usize::from(x & 0x40 != 0) + usize::from(x & 0x30 != 0);
    }
    descriptor & 0x10 != 0 && descriptor & 0x07 == 0 && payload.get(at).is_some_and(|b| b & 1 == 0)
}

/// RFC 6184: a single NAL unit of type 5 (IDR) or 7 (SPS, sent right before an IDR), a
/// STAP-A (24) aggregating one, or the first fragment (FU-A, 28, start bit) of one.
fn h264_keyframe(payload: &[u8]) -> bool {
    let key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            // STAP-A: (16-bit size, NAL unit)*.
            let mut at = 1;
            while let Some(size) = payload.get(at..at + 2) {
                let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
                match payload.get(at + 2) {
                    Some(&nal) if size > 0 => {
                        if key(nal) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                at += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && key(fu)),
        _ => key(first),
    }
}

/// The highest layer of `rates` (bit/s of the layers the publisher sends now; `None`: not
/// sent) at most `requested` that fits `budget` (bit/s; `None`: no estimate, anything fits).
/// If none fits, the lowest one sent (a subscriber always gets a picture); if none is sent
/// at or below `requested`, the lowest one above it.
pub(crate) fn fit(rates: &[Option<u64>; LAYERS], requested: u8, budget: Option<u64>) -> Option<u8> {
    let sent = || {
        rates
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i as u8, r)))
    };
    let best = sent()
        .filter(|(i, r)| *i <= requested && budget.is_none_or(|b| *r <= b))
        .map(|(i, _)| i)
        .max();
    best.or_else(|| sent().map(|(i, _)| i).min())
}

/// One leg's layer choice over time.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    /// The highest layer the client wants (it shows the video small or large).
    pub(crate) requested: u8,
    /// The layer to forward (switched to at its next keyframe).
    pub(crate) target: Option<u8>,
    /// Since when a higher layer than the target fits.
    up_since: Option<Instant>,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            requested: (LAYERS - 1) as u8,
            target: None,
            up_since: None,
        }
    }
}

impl Selector {
    /// Takes `best` (what [`fit`] says now) into account; the target afterwards. Down (or
    /// off a layer no longer sent) at once, up once `best` stayed higher for `upgrade_after`.
    pub(crate) fn decide(
        &mut self,
        best: Option<u8>,
        still_sent: bool,
        now: Instant,
        upgrade_after: Duration,
    ) -> Option<u8> {
        match (self.target, best) {
            (_, None) => self.up_since = None,
            (None, Some(b)) => {
                self.target = Some(b);
                self.up_since = None;
            }
            (Some(t), Some(b)) if b < t || !still_sent => {
                self.target = Some(b);
                self.up_since = None;
            }
            (Some(t), Some(b)) if b > t => {
                let since = *self.up_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= upgrade_after {
                    self.target = Some(b);
                    self.up_since = None;
                }
            }
            (Some(_), Some(_)) => self.up_since = None,
        }
        self.target
    }
}

/// What a leg needs to know of a publisher's packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrived {
    pub(crate) layer: u8,
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) ts: u32,
    /// It starts a keyframe.
    pub(crate) keyframe: bool,
}

/// One video leg's simulcast state.
#[derive(Debug, Default, Clone)]
pub(crate) struct LegLayers {
    pub(crate) selector: Selector,
    pub(crate) rewriter: Rewriter,
    /// The layer forwarded now.
    pub(crate) current: Option<u8>,
}

impl LegLayers {
    /// A packet of the publisher's `layer` (stream `ssrc`): its outgoing sequence number and
    /// timestamp if this leg forwards it. The current stream is forwarded until the target
    /// layer's keyframe comes (then that layer is); a leg not started yet starts at the first
    /// keyframe of its target or a lower layer (of any, before a target is chosen): the first
    /// picture sooner, the right one at the target's next keyframe. A track that is not simulcast (`gated` false)
    /// has one layer, forwarded from any packet (a new SSRC of it continues the numbering).
    pub(crate) fn admit(&mut self, p: Arrived, gated: bool, now: Instant) -> Option<(u16, u32)> {
        let Arrived {
            layer,
            ssrc,
            seq,
            ts,
            keyframe,
        } = p;
        if self.rewriter.ssrc == Some(ssrc) {
            return Some(self.rewriter.map(seq, ts, now));
        }
        if gated {
            if !keyframe {
                return None;
            }
            match (self.current, self.selector.target) {
                // A leg's first picture: the first keyframe of the target or a lower layer
                // (then up to the target at its keyframe).
                (None, Some(t)) if layer > t => return None,
                (None, _) => {}
                (Some(_), Some(t)) if t != layer => return None,
                (Some(c), None) if c != layer => return None,
                (Some(_), _) => {}
            }
        } else if self.current.is_some_and(|c| c != layer) {
            return None;
        }
        self.current = Some(layer);
        self.rewriter.switch(ssrc, seq, ts, now);
        Some(self.rewriter.map(seq, ts, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn arr(layer: u8, ssrc: u32, seq: u16, ts: u32, keyframe: bool) -> Arrived {
        Arrived {
            layer,
            ssrc,
            seq,
            ts,
            keyframe,
        }
    }

    #[test]
    fn sequence_and_timestamps_continue_across_switches() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.switch(10, 65_530, 1_000, t0);
        let first: Vec<(u16, u32)> = (0..8u16)
            .map(|i| {
                r.map(
                    65_530u16.wrapping_add(i),
                    1_000 + 3_000 * u32::from(i / 2),
                    at(t0, 33 * u64::from(i / 2)),
                )
            })
            .collect();
        assert_eq!(
            first[0],
            (65_530, 1_000),
            "the first stream keeps its numbers"
        );
        assert_eq!(first[7], (1, 10_000), "wrapped");
        // Switch 40 ms after the last packet to a stream with numbers of its own.
        let t1 = at(t0, 99 + 40);
        r.switch(20, 500, 77_777, t1);
        assert_eq!(r.map(500, 77_777, t1), (2, 10_000 + 40 * 90));
        assert_eq!(r.map(501, 80_777, t1), (3, 10_000 + 40 * 90 + 3_000));
        // A late packet of the new stream is mapped but does not move the highest.
        assert_eq!(r.map(499, 77_777, t1), (1, 10_000 + 40 * 90));
        // Switching back at once: one tick later, one number later.
        r.switch(10, 9, 20_000, t1);
        assert_eq!(r.map(9, 20_000, t1), (4, 10_000 + 40 * 90 + 3_000 + 1));
        // Retransmissions find their source through the segments.
        assert_eq!(r.source(65_535).map(|s| (s.0, s.1)), Some((10, 65_535)));
        assert_eq!(r.source(2).map(|s| (s.0, s.1)), Some((20, 500)));
        assert_eq!(r.source(4).map(|s| (s.0, s.1)), Some((10, 9)));
        assert_eq!(r.source(5), None, "not sent yet");
    }

    #[test]
    fn a_leg_switches_only_at_the_target_layers_keyframe() {
        let t0 = Instant::now();
        let mut leg = LegLayers::default();
        // A target above the first keyframe's layer: that keyframe starts the leg.
        let mut early = LegLayers::default();
        early.selector.target = Some(1);
        assert_eq!(early.admit(arr(2, 12, 5, 0, true), true, t0), None, "above");
        assert_eq!(early.admit(arr(0, 10, 5, 0, true), true, t0), Some((5, 0)));
        assert_eq!(
            early.admit(arr(1, 11, 9, 0, true), true, t0),
            Some((6, 1)),
            "then up"
        );
        // Before a target: the first keyframe of any layer starts it.
        assert_eq!(leg.admit(arr(1, 11, 100, 9_000, false), true, t0), None);
        assert_eq!(
            leg.admit(arr(1, 11, 101, 9_000, true), true, t0),
            Some((101, 9_000))
        );
        assert_eq!(
            leg.admit(arr(0, 10, 50, 5_000, true), true, t0),
            None,
            "not the target"
        );
        leg.selector.target = Some(2);
        assert_eq!(
            leg.admit(arr(1, 11, 102, 12_000, false), true, at(t0, 33)),
            Some((102, 12_000))
        );
        assert_eq!(
            leg.admit(arr(2, 12, 7, 100, false), true, at(t0, 40)),
            None,
            "not a keyframe"
        );
        assert_eq!(leg.current, Some(1));
        assert_eq!(
            leg.admit(arr(2, 12, 8, 3_100, true), true, at(t0, 66)),
            Some((103, 12_000 + 33 * 90))
        );
        assert_eq!(leg.current, Some(2));
        assert_eq!(
            leg.admit(arr(1, 11, 103, 15_000, true), true, at(t0, 66)),
            None,
            "left behind"
        );
        assert_eq!(
            leg.admit(arr(2, 12, 9, 3_100, false), true, at(t0, 67)),
            Some((104, 12_000 + 33 * 90))
        );
        // Not simulcast: one layer, any packet, a new SSRC continues the numbering.
        let mut plain = LegLayers::default();
        assert_eq!(
            plain.admit(arr(0, 5, 10, 0, false), false, t0),
            Some((10, 0))
        );
        assert_eq!(
            plain.admit(arr(0, 6, 900, 0, false), false, at(t0, 10)),
            Some((11, 900))
        );
    }

    #[test]
    fn keyframes_are_told_by_codec() {
        assert!(is_keyframe(Codec::Vp8, &[0x10, 0x00, 0xab]));
        assert!(!is_keyframe(Codec::Vp8, &[0x10, 0x01, 0xab]), "delta");
        assert!(
            !is_keyframe(Codec::Vp8, &[0x00, 0x00]),
            "not a frame's start"
        );
        // X with a two-byte picture id: the payload header comes three bytes later.
        assert!(is_keyframe(Codec::Vp8, &[0x90, 0x80, 0x81, 0x02, 0x00]));
        assert!(!is_keyframe(Codec::Vp8, &[0x90, 0x80, 0x81, 0x02, 0x01]));
        assert!(is_keyframe(Codec::H264, &[0x65, 0x88]), "IDR");
        assert!(is_keyframe(Codec::H264, &[0x67, 0x42]), "SPS");
        assert!(!is_keyframe(Codec::H264, &[0x41, 0x9a]), "non-IDR slice");
        assert!(
            is_keyframe(Codec::H264, &[0x7c, 0x85]),
            "FU-A start of an IDR"
        );
        assert!(!is_keyframe(Codec::H264, &[0x7c, 0x05]), "FU-A middle");
        assert!(is_keyframe(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        assert!(
            !is_keyframe(Codec::H264, &[0x78, 0x00, 0x09, 0x68]),
            "truncated"
        );
        assert!(!is_keyframe(Codec::Opus, &[0x00]));
        for codec in [Codec::Vp8, Codec::H264] {
            assert!(!is_keyframe(codec, &[]));
        }
    }

    #[test]
    fn the_fitting_layer_respects_request_and_budget() {
        let all = [Some(150_000), Some(500_000), Some(1_500_000)];
        assert_eq!(fit(&all, 2, None), Some(2));
        assert_eq!(fit(&all, 1, None), Some(1), "asked for medium");
        assert_eq!(fit(&all, 2, Some(1_000_000)), Some(1));
        assert_eq!(fit(&all, 2, Some(100_000)), Some(0), "nothing fits: lowest");
        let no_high = [Some(150_000), Some(500_000), None];
        assert_eq!(fit(&no_high, 2, None), Some(1), "high is not sent");
        let high_only = [None, None, Some(1_500_000)];
        assert_eq!(fit(&high_only, 0, None), Some(2), "the only one sent");
        assert_eq!(fit(&[None; LAYERS], 2, None), None);
    }

    #[test]
    fn down_at_once_up_after_a_stable_period() {
        let (t0, wait) = (Instant::now(), Duration::from_secs(3));
        let mut s = Selector::default();
        assert_eq!(
            s.decide(Some(2), true, t0, wait),
            Some(2),
            "first choice at once"
        );
        assert_eq!(s.decide(Some(0), true, at(t0, 100), wait), Some(0), "drop");
        assert_eq!(s.decide(Some(2), true, at(t0, 200), wait), Some(0));
        assert_eq!(s.decide(Some(2), true, at(t0, 3_100), wait), Some(0));
        assert_eq!(
            s.decide(Some(2), true, at(t0, 3_200), wait),
            Some(2),
            "stable"
        );
        // A dip resets the wait.
        s.decide(Some(1), true, at(t0, 3_300), wait);
        s.decide(Some(2), true, at(t0, 3_400), wait);
        s.decide(Some(1), true, at(t0, 3_500), wait);
        assert_eq!(s.decide(Some(2), true, at(t0, 6_450), wait), Some(1));
        // The target layer stopped: the best one sent, even higher, at once.
        assert_eq!(s.decide(Some(2), false, at(t0, 6_500), wait), Some(2));
        assert_eq!(
            s.decide(None, true, at(t0, 6_600), wait),
            Some(2),
            "nothing sent"
        );
    }
}
