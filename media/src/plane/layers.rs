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
//!   H.264: an IDR slice or the SPS that precedes it; VP9: a frame's start without
//!   inter-picture prediction, of spatial layer 0; AV1: the start of a coded video sequence).
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
        Codec::Vp9 => vp9_keyframe(payload),
        Codec::Av1 => av1_keyframe(payload),
    }
}

/// Whether a VP9 RTP payload starts a keyframe (RFC 9628's payload descriptor
/// `I|P|L|F|B|E|V|Z`): the start of a frame (B) that is not inter-predicted (P clear), of
/// spatial layer 0 when the layer indices are present (L: after the picture id, if I, one
/// or two bytes by its M bit, comes `TID|U|SID|D`). The test clients use it too.
pub(crate) fn vp9_keyframe(payload: &[u8]) -> bool {
    let Some(&d) = payload.first() else {
        return false;
    };
    let (i, p, l, b) = (d & 0x80 != 0, d & 0x40 != 0, d & 0x20 != 0, d & 0x08 != 0);
    if p || !b {
        return false;
    }
    if !l {
        return payload.len() > 1;
    }
    let mut at = 1;
    if i {
        let Some(&pid) = payload.get(1) else {
            return false;
        };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    payload
        .get(at)
        .is_some_and(|layers| (layers >> 1) & 0x07 == 0)
}

/// Whether an AV1 RTP payload starts a keyframe (the AV1 RTP specification's aggregation
/// header `Z|Y|W W|N|-|-|-`: N marks the first packet of a coded video sequence, which starts
/// with a keyframe; Z, a continued OBU, cannot be such a start). The test clients use it too.
pub(crate) fn av1_keyframe(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|&h| h & 0x08 != 0 && h & 0x80 == 0)
        && payload.len() > 1
}

/// Whether a VP8 RTP payload starts a keyframe (RFC 7741: the descriptor's S bit with
/// partition 0, then the payload header's inverse key-frame bit). The test clients use it too.
pub(crate) fn vp8_keyframe(payload: &[u8]) -> bool {
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

/// [`fit`], or one layer above `target` as a probe while the budget still covers `target`'s
/// rate. A receiver's REMB grows to at most about 1.5 times the bitrate it receives (the AIMD
/// estimator's cap), so an estimate that only ever sees a low layer never opens the next one
/// by itself (seen in the browser test: a tile shown small, then large, stayed on the low
/// layer). A probe that congests the path brings the estimate, and the leg, back down at once
/// ([`Selector::decide`] then waits longer before the next).
pub(crate) fn choose(
    rates: &[Option<u64>; LAYERS],
    requested: u8,
    budget: Option<u64>,
    target: Option<u8>,
) -> Option<u8> {
    let best = fit(rates, requested, budget);
    let (Some(t), Some(b)) = (target, best) else {
        return best;
    };
    let covered = match (budget, rates.get(usize::from(t)).copied().flatten()) {
        (Some(budget), Some(rate)) => budget >= rate,
        _ => true,
    };
    if b > t || !covered {
        return best;
    }
    match fit(rates, requested.min(t.saturating_add(1)), None) {
        Some(up) if up > t => Some(up),
        _ => best,
    }
}

/// Most times [`Selector::decide`]'s wait before going up is doubled after probes that came
/// straight back down.
const MAX_BACKOFF: u32 = 8;

/// One leg's layer choice over time.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    /// The highest layer the client wants (it shows the video small or large).
    pub(crate) requested: u8,
    /// The layer to forward (switched to at its next keyframe).
    pub(crate) target: Option<u8>,
    /// Since when a higher layer than the target fits.
    up_since: Option<Instant>,
    /// When the target last went up.
    up_at: Option<Instant>,
    /// The wait before going up, in `upgrade_after`s: doubled each time a step up is undone
    /// within two of them, back to 1 once a step up held for four.
    backoff: u32,
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            requested: (LAYERS - 1) as u8,
            target: None,
            up_since: None,
            up_at: None,
            backoff: 1,
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
        let held_for = |at: Option<Instant>, n: u32| {
            at.is_some_and(|at| now.saturating_duration_since(at) >= upgrade_after * n)
        };
        match (self.target, best) {
            (_, None) => self.up_since = None,
            (None, Some(b)) => {
                self.target = Some(b);
                self.up_since = None;
            }
            (Some(t), Some(b)) if b < t || !still_sent => {
                if b < t && self.up_at.is_some() && !held_for(self.up_at, 2) {
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
                self.target = Some(b);
                self.up_since = None;
                self.up_at = None;
            }
            (Some(t), Some(b)) if b > t => {
                let since = *self.up_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= upgrade_after * self.backoff {
                    self.target = Some(b);
                    self.up_since = None;
                    self.up_at = Some(now);
                }
            }
            (Some(_), Some(_)) => {
                self.up_since = None;
                if held_for(self.up_at, 4) {
                    self.backoff = 1;
                }
            }
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
#[path = "layers_tests.rs"]
mod tests;
