//! The simulcast core's tests: renumbering across switches, layer choice over time,
//! keyframes by codec.

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
    for codec in [Codec::Vp8, Codec::H264, Codec::Vp9, Codec::Av1] {
        assert!(!is_keyframe(codec, &[]));
    }
}

#[test]
fn vp9_keyframes_are_an_unpredicted_frame_start_of_spatial_layer_0() {
    // B (start of frame), P clear, no layer indices.
    assert!(is_keyframe(Codec::Vp9, &[0x08, 0xab]));
    assert!(
        !is_keyframe(Codec::Vp9, &[0x48, 0xab]),
        "P: inter-predicted"
    );
    assert!(
        !is_keyframe(Codec::Vp9, &[0x00, 0xab]),
        "not a frame's start"
    );
    assert!(!is_keyframe(Codec::Vp9, &[0x08]), "nothing after it");
    // I with a 15-bit picture id (M set), L: TID|U|SID|D, then TL0PICIDX (F clear).
    assert!(is_keyframe(
        Codec::Vp9,
        &[0xa8, 0x81, 0x23, 0x00, 0x05, 0xab]
    ));
    assert!(
        !is_keyframe(Codec::Vp9, &[0xa8, 0x81, 0x23, 0x02, 0x05, 0xab]),
        "spatial layer 1"
    );
    // A 7-bit picture id (M clear): the layer byte comes one earlier.
    assert!(is_keyframe(Codec::Vp9, &[0xa8, 0x11, 0x20, 0x05]));
    assert!(!is_keyframe(Codec::Vp9, &[0xa8, 0x11, 0x24, 0x05]), "SID 2");
    // L without I: the layer byte right after the descriptor.
    assert!(is_keyframe(Codec::Vp9, &[0x28, 0x00, 0x00]));
    assert!(
        !is_keyframe(Codec::Vp9, &[0xa8, 0x81]),
        "truncated picture id"
    );
    assert!(!is_keyframe(Codec::Vp9, &[0x28]), "truncated layer indices");
    // Chrome's keyframe: I, B, V (scalability structure) with a 15-bit picture id.
    assert!(is_keyframe(Codec::Vp9, &[0x8a, 0x80, 0x01, 0x18, 0x02]));
}

#[test]
fn av1_keyframes_start_a_coded_video_sequence() {
    // Aggregation header: N set (new coded video sequence), W = 1.
    assert!(is_keyframe(Codec::Av1, &[0x18, 0x0a, 0x0b]));
    assert!(!is_keyframe(Codec::Av1, &[0x10, 0x32, 0x00]), "N clear");
    assert!(
        !is_keyframe(Codec::Av1, &[0x88, 0x32, 0x00]),
        "Z: continues an OBU"
    );
    assert!(
        !is_keyframe(Codec::Av1, &[0x08]),
        "nothing after the header"
    );
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
fn a_leg_probes_one_layer_up_while_the_estimate_covers_its_own() {
    let all = [Some(150_000), Some(500_000), Some(1_500_000)];
    // On the low layer with an estimate of 1.5 × its rate: the medium one is tried.
    assert_eq!(choose(&all, 2, Some(225_000), Some(0)), Some(1));
    // Then the high one, once the estimate covers the medium.
    assert_eq!(choose(&all, 2, Some(600_000), Some(1)), Some(2));
    // Not above what the client asked for.
    assert_eq!(choose(&all, 1, Some(600_000), Some(1)), Some(1));
    assert_eq!(
        choose(&all, 0, Some(225_000), Some(1)),
        Some(0),
        "asked lower"
    );
    // Congested (the estimate fell under the layer forwarded): down, no probe.
    assert_eq!(choose(&all, 2, Some(400_000), Some(1)), Some(0));
    // An estimate that covers more opens it directly; none yet: the highest asked.
    assert_eq!(choose(&all, 2, Some(2_000_000), Some(0)), Some(2));
    assert_eq!(choose(&all, 2, None, Some(0)), Some(2));
    assert_eq!(
        choose(&all, 2, Some(225_000), None),
        Some(0),
        "no target yet"
    );
}

#[test]
fn a_step_up_undone_at_once_waits_longer_before_the_next() {
    let (t0, wait) = (Instant::now(), Duration::from_secs(3));
    let mut s = Selector::default();
    s.decide(Some(0), true, t0, wait);
    s.decide(Some(1), true, at(t0, 100), wait);
    assert_eq!(s.decide(Some(1), true, at(t0, 3_100), wait), Some(1), "up");
    // Congestion 1 s later: down, and the next step up waits 6 s.
    assert_eq!(s.decide(Some(0), true, at(t0, 4_100), wait), Some(0));
    s.decide(Some(1), true, at(t0, 4_200), wait);
    assert_eq!(s.decide(Some(1), true, at(t0, 7_300), wait), Some(0));
    assert_eq!(s.decide(Some(1), true, at(t0, 10_200), wait), Some(1));
    // Held for 4 waits: the wait is back to 3 s for the next layer.
    assert_eq!(s.decide(Some(1), true, at(t0, 22_300), wait), Some(1));
    s.decide(Some(2), true, at(t0, 22_400), wait);
    assert_eq!(s.decide(Some(2), true, at(t0, 25_400), wait), Some(2));
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
