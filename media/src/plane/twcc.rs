//! Transport-wide congestion control feedback for publishers
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), without IO: the arrival time of each
//! packet a publisher sends with a transport-wide sequence number, reported back every
//! housekeeping turn (100 ms) as RTCP `TransportLayerCc`. A browser's send-side estimate
//! (GCC) runs on this feedback: the delays and losses of its uplink decide how much it sends,
//! and a simulcast camera on a weak uplink drops its top layers instead of flooding the link.
//! Without it the loop, which reads publishers' packets on its own path, gives a browser no
//! loss or delay figures at all (only the REMB cap of `simulcast::publisher_estimates`).
//!
//! `rtc`'s own TWCC receiver is an interceptor on its read path, which the fast path does not
//! use, and its recorder is private to that crate; this is the part of it the loop needs.

use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
    SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
};

/// The header extension's URI (`a=extmap`).
pub(crate) const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Arrivals kept between two feedbacks at most (10 Mbit/s of 1,200-byte packets is ~100 per
/// 100 ms; a flood beyond this is not reported, and reads as lost to its sender).
const MAX_PENDING: usize = 4096;
/// Sequence numbers one feedback packet describes at most (its size stays under ~1,500 bytes
/// with one-byte deltas).
const MAX_STATUSES: i64 = 1024;
/// The unit of receive deltas, in microseconds.
const DELTA_UNIT_US: i64 = 250;
/// The unit of the reference time, in microseconds.
const REFERENCE_UNIT_US: i64 = 64_000;

/// One publisher connection's arrivals since the last feedback.
#[derive(Debug)]
pub(crate) struct TwccRecorder {
    /// The extension id the publisher's offer gave the transport-wide sequence number.
    ext_id: u8,
    /// The last sequence number seen, unwrapped (to unwrap the next).
    last: Option<i64>,
    /// The first sequence number not reported yet.
    next: Option<i64>,
    /// (unwrapped sequence number, arrival in µs) since the last feedback.
    arrivals: Vec<(i64, i64)>,
    /// Feedback packets sent (their 8-bit counter).
    count: u8,
}

impl TwccRecorder {
    pub(crate) fn new(ext_id: u8) -> TwccRecorder {
        TwccRecorder {
            ext_id,
            last: None,
            next: None,
            arrivals: Vec::new(),
            count: 0,
        }
    }

    /// The extension id its packets carry the sequence number under.
    pub(crate) fn ext_id(&self) -> u8 {
        self.ext_id
    }

    /// A packet with transport-wide sequence number `seq` arrived at `arrival_us` (on any
    /// monotonic clock in microseconds).
    pub(crate) fn record(&mut self, seq: u16, arrival_us: i64) {
        let unwrapped = match self.last {
            None => i64::from(seq),
            Some(last) => {
                let diff = i64::from(seq.wrapping_sub(last as u16) as i16);
                last + diff
            }
        };
        if self.last.is_none_or(|last| unwrapped > last) {
            self.last = Some(unwrapped);
        }
        if self.arrivals.len() < MAX_PENDING {
            self.arrivals.push((unwrapped, arrival_us));
        }
    }

    /// Whether anything arrived since the last feedback.
    pub(crate) fn pending(&self) -> bool {
        !self.arrivals.is_empty()
    }

    /// The feedback for everything that arrived since the last one (none if nothing did):
    /// every sequence number from the first not yet reported to the highest received, each
    /// received one with its arrival delta. A packet arriving after its number was reported
    /// lost is not reported again.
    pub(crate) fn feedback(&mut self, sender_ssrc: u32, media_ssrc: u32) -> Vec<TransportLayerCc> {
        let mut arrivals = std::mem::take(&mut self.arrivals);
        // Stable: of a number received twice, the first arrival is kept.
        arrivals.sort_by_key(|&(seq, _)| seq);
        arrivals.dedup_by_key(|&mut (seq, _)| seq);
        if let Some(next) = self.next {
            arrivals.retain(|&(seq, _)| seq >= next);
        }
        let mut packets = Vec::new();
        let mut rest = &arrivals[..];
        while let Some(&(first, _)) = rest.first() {
            // Numbers before the first arrival were lost (or reported): from the first not
            // reported, but never so far back that the arrival would not fit.
            let base = self
                .next
                .map_or(first, |next| next.max(first - (MAX_STATUSES - 1)));
            let mut builder = Builder::new(base, rest[0].1);
            let mut taken = 0;
            for &(seq, at) in rest {
                if seq - base >= MAX_STATUSES || !builder.add(seq, at) {
                    break;
                }
                taken += 1;
            }
            if taken == 0 {
                // Cannot happen (the first arrival fits: its base is at most MAX_STATUSES - 1
                // before it, its delta under 64 ms); skipped rather than looped on.
                taken = 1;
            } else {
                packets.push(builder.finish(sender_ssrc, media_ssrc, self.count));
                self.count = self.count.wrapping_add(1);
            }
            self.next = Some(rest[taken - 1].0 + 1);
            rest = &rest[taken..];
        }
        // The buffer is kept for the next turn.
        arrivals.clear();
        self.arrivals = arrivals;
        packets
    }
}

/// One feedback packet being written.
struct Builder {
    base: i64,
    /// The reference time, in 64 ms units.
    reference: i64,
    /// The time the next delta is taken from, in µs (rounded as the receiver will add).
    clock: i64,
    /// The status of every sequence number from `base`.
    symbols: Vec<SymbolTypeTcc>,
    deltas: Vec<RecvDelta>,
}

impl Builder {
    fn new(base: i64, first_arrival: i64) -> Builder {
        let reference = first_arrival.div_euclid(REFERENCE_UNIT_US);
        Builder {
            base,
            reference,
            clock: reference * REFERENCE_UNIT_US,
            symbols: Vec::new(),
            deltas: Vec::new(),
        }
    }

    /// Adds the received `seq` (after every earlier one added); false if its delta does
    /// not fit in this packet.
    fn add(&mut self, seq: i64, at: i64) -> bool {
        let units = (at - self.clock + DELTA_UNIT_US / 2).div_euclid(DELTA_UNIT_US);
        if units < i64::from(i16::MIN) || units > i64::from(i16::MAX) {
            return false;
        }
        let next = self.base + self.symbols.len() as i64;
        for _ in next..seq {
            self.symbols.push(SymbolTypeTcc::PacketNotReceived);
        }
        let symbol = if (0..=255).contains(&units) {
            SymbolTypeTcc::PacketReceivedSmallDelta
        } else {
            SymbolTypeTcc::PacketReceivedLargeDelta
        };
        self.symbols.push(symbol);
        self.deltas.push(RecvDelta {
            type_tcc_packet: symbol,
            delta: units * DELTA_UNIT_US,
        });
        self.clock += units * DELTA_UNIT_US;
        true
    }

    fn finish(self, sender_ssrc: u32, media_ssrc: u32, count: u8) -> TransportLayerCc {
        TransportLayerCc {
            sender_ssrc,
            media_ssrc,
            base_sequence_number: self.base as u16,
            packet_status_count: self.symbols.len() as u16,
            reference_time: (self.reference & 0x00ff_ffff) as u32,
            fb_pkt_count: count,
            packet_chunks: chunks(&self.symbols),
            recv_deltas: self.deltas,
        }
    }
}

/// The status chunks for `symbols`: a run-length chunk for a run of seven or more of one
/// symbol (or the tail), a two-bit status vector for seven mixed ones.
fn chunks(symbols: &[SymbolTypeTcc]) -> Vec<PacketStatusChunk> {
    const VECTOR: usize = 7;
    const MAX_RUN: usize = 0x1fff;
    let mut out = Vec::new();
    let mut at = 0;
    while at < symbols.len() {
        let symbol = symbols[at];
        let run = symbols[at..]
            .iter()
            .take(MAX_RUN)
            .take_while(|s| **s == symbol)
            .count();
        if run >= VECTOR || symbols.len() - at < VECTOR {
            out.push(PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbol,
                run_length: run as u16,
            }));
            at += run;
        } else {
            out.push(PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: symbols[at..at + VECTOR].to_vec(),
            }));
            at += VECTOR;
        }
    }
    out
}

#[cfg(test)]
#[path = "twcc_tests.rs"]
mod tests;
