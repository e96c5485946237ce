use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};

use super::*;

/// Marshals `fb` and reads it back with `rtc`'s parser (the format is what a browser reads).
fn round_trip(fb: &TransportLayerCc) -> TransportLayerCc {
    let raw = fb.marshal().expect("marshals");
    let mut bytes = &raw[..];
    TransportLayerCc::unmarshal(&mut bytes).expect("parses")
}

/// Each sequence number of `fb` and its arrival time in µs as a receiver reads them (`None`:
/// reported lost).
fn decode(fb: &TransportLayerCc) -> Vec<(u16, Option<i64>)> {
    let mut symbols = Vec::new();
    for chunk in &fb.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(run) => {
                symbols.extend(std::iter::repeat_n(
                    run.packet_status_symbol,
                    usize::from(run.run_length),
                ));
            }
            PacketStatusChunk::StatusVectorChunk(vector) => {
                symbols.extend(vector.symbol_list.iter().copied())
            }
        }
    }
    symbols.truncate(usize::from(fb.packet_status_count));
    let mut clock = i64::from(fb.reference_time) * 64_000;
    let mut deltas = fb.recv_deltas.iter();
    symbols
        .into_iter()
        .enumerate()
        .map(|(i, symbol)| {
            let seq = fb.base_sequence_number.wrapping_add(i as u16);
            match symbol {
                SymbolTypeTcc::PacketNotReceived => (seq, None),
                _ => {
                    clock += deltas.next().expect("a delta per received packet").delta;
                    (seq, Some(clock))
                }
            }
        })
        .collect()
}

#[test]
fn packets_in_order_are_reported_with_their_arrival_times() {
    let mut r = TwccRecorder::new(3);
    assert!(!r.pending());
    for (i, seq) in (10u16..15).enumerate() {
        r.record(seq, 1_000_000 + i as i64 * 5_000);
    }
    assert!(r.pending());
    let fbs = r.feedback(1, 2);
    assert_eq!(fbs.len(), 1);
    let fb = round_trip(&fbs[0]);
    assert_eq!(fb, fbs[0]);
    assert_eq!(fb.base_sequence_number, 10);
    assert_eq!(fb.packet_status_count, 5);
    assert_eq!(fb.fb_pkt_count, 0);
    for (i, (seq, at)) in decode(&fb).into_iter().enumerate() {
        assert_eq!(seq, 10 + i as u16);
        let sent = 1_000_000 + i as i64 * 5_000;
        assert!(
            (at.expect("received") - sent).abs() <= 125,
            "{at:?} vs {sent}"
        );
    }
    assert!(!r.pending());
    assert!(r.feedback(1, 2).is_empty(), "nothing new, nothing sent");
}

#[test]
fn a_gap_is_reported_lost_and_the_next_feedback_goes_on_from_the_last() {
    let mut r = TwccRecorder::new(3);
    for (seq, at) in [(1u16, 0i64), (2, 1_000), (4, 2_000)] {
        r.record(seq, at);
    }
    let fb = round_trip(&r.feedback(0, 0)[0]);
    let got: Vec<_> = decode(&fb)
        .into_iter()
        .map(|(s, a)| (s, a.is_some()))
        .collect();
    assert_eq!(got, vec![(1, true), (2, true), (3, false), (4, true)]);
    // 3 arrives late, after it was reported lost; 5 and 6 are new.
    for (seq, at) in [(3u16, 3_000i64), (5, 4_000), (6, 5_000)] {
        r.record(seq, at);
    }
    let fb = round_trip(&r.feedback(0, 0)[0]);
    assert_eq!(fb.base_sequence_number, 5);
    assert_eq!(fb.packet_status_count, 2);
    assert_eq!(fb.fb_pkt_count, 1);
}

#[test]
fn sequence_numbers_wrap() {
    let mut r = TwccRecorder::new(3);
    for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
        r.record(seq, i as i64 * 1_000);
    }
    let fb = round_trip(&r.feedback(0, 0)[0]);
    assert_eq!(fb.base_sequence_number, 65534);
    let seqs: Vec<u16> = decode(&fb).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, vec![65534, 65535, 0, 1]);
    r.record(2, 10_000);
    assert_eq!(r.feedback(0, 0)[0].base_sequence_number, 2);
}

#[test]
fn reordered_and_repeated_arrivals_are_reported_once_in_order() {
    let mut r = TwccRecorder::new(3);
    // 8 overtook 7; 7 is also received twice.
    for (seq, at) in [(6u16, 0i64), (8, 1_000), (7, 2_000), (7, 3_000)] {
        r.record(seq, at);
    }
    let fb = round_trip(&r.feedback(0, 0)[0]);
    let got = decode(&fb);
    assert_eq!(got.len(), 3);
    // 7 arrived after 8: a negative delta, written large.
    assert!((got[1].1.expect("7") - 2_000).abs() <= 125);
    assert!((got[2].1.expect("8") - 1_000).abs() <= 125);
    assert!(
        fb.recv_deltas
            .iter()
            .any(|d| d.type_tcc_packet == SymbolTypeTcc::PacketReceivedLargeDelta && d.delta < 0)
    );
}

#[test]
fn arrivals_too_far_apart_for_one_packet_make_two() {
    let mut r = TwccRecorder::new(3);
    r.record(1, 0);
    // ±8.19 s is all a two-byte delta holds.
    r.record(2, 20_000_000);
    let fbs = r.feedback(0, 0);
    assert_eq!(fbs.len(), 2);
    let first = decode(&round_trip(&fbs[0]));
    let second = decode(&round_trip(&fbs[1]));
    assert_eq!(first.len(), 1);
    assert_eq!(second[0].0, 2);
    assert!((second[0].1.expect("2") - 20_000_000).abs() <= 125);
    assert_eq!((fbs[0].fb_pkt_count, fbs[1].fb_pkt_count), (0, 1));
}

#[test]
fn a_long_loss_is_reported_only_as_far_back_as_one_packet_holds() {
    let mut r = TwccRecorder::new(3);
    r.record(10, 0);
    r.feedback(0, 0);
    r.record(5_000, 1_000);
    let fbs = r.feedback(0, 0);
    assert_eq!(fbs.len(), 1);
    let fb = round_trip(&fbs[0]);
    assert_eq!(i64::from(fb.packet_status_count), MAX_STATUSES);
    assert_eq!(
        decode(&fb).last().map(|(s, a)| (*s, a.is_some())),
        Some((5_000, true))
    );
}

#[test]
fn many_arrivals_are_split_and_a_flood_is_bounded() {
    let mut r = TwccRecorder::new(3);
    for seq in 0..(MAX_PENDING as u32 + 500) {
        r.record(seq as u16, i64::from(seq) * 100);
    }
    let fbs = r.feedback(0, 0);
    let reported: usize = fbs.iter().map(|f| usize::from(f.packet_status_count)).sum();
    assert_eq!(reported, MAX_PENDING, "only what was kept");
    assert!(
        fbs.iter()
            .all(|f| i64::from(f.packet_status_count) <= MAX_STATUSES)
    );
    for fb in &fbs {
        assert!(fb.marshal_size() <= 1_500, "{}", fb.marshal_size());
        round_trip(fb);
    }
}

#[test]
fn mixed_statuses_use_vectors_and_runs() {
    use SymbolTypeTcc::*;
    let s = [
        PacketReceivedSmallDelta,
        PacketNotReceived,
        PacketReceivedSmallDelta,
        PacketReceivedLargeDelta,
        PacketNotReceived,
        PacketNotReceived,
        PacketReceivedSmallDelta,
        PacketReceivedSmallDelta,
        PacketReceivedSmallDelta,
    ];
    let chunks = chunks(&s);
    assert!(
        matches!(chunks[0], PacketStatusChunk::StatusVectorChunk(ref v) if v.symbol_list == s[..7])
    );
    assert!(matches!(chunks[1], PacketStatusChunk::RunLengthChunk(ref r) if r.run_length == 2));
    assert_eq!(chunks.len(), 2);
}
