//! Property (fuzz) tests of the CQL bridge's frame parser and rewrites: valid frames
//! round-trip, arbitrary, truncated and oversized input gives frames or an `InvalidData` /
//! `UnexpectedEof` error (never a panic or an allocation a header asks for past
//! [`MAX_BODY`]), and the STARTUP and `Prepared` rewrites change exactly what they should.

use futures_util::FutureExt;
use proptest::prelude::*;

use super::*;
use crate::fuzzing::config;

/// Reads one frame from a slice (reads from memory never wait).
fn read(input: &mut &[u8]) -> io::Result<Option<Frame>> {
    read_frame(input)
        .now_or_never()
        .expect("a slice is always ready")
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![
            Just(0x04u8),
            Just(0x03),
            Just(0x83),
            Just(0x84),
            any::<u8>()
        ],
        any::<u8>(),
        any::<i16>(),
        prop_oneof![Just(OP_STARTUP), Just(OP_RESULT), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(version, flags, stream, opcode, body)| {
            Frame::new(version, flags, stream, opcode, body)
        })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("CQL_VERSION".to_owned()),
        Just("COMPRESSION".to_owned()),
        Just("DRIVER_NAME".to_owned()),
        "\\PC{0,12}",
    ]
}

fn string_map(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = (pairs.len() as u16).to_be_bytes().to_vec();
    for (k, v) in pairs {
        put_string(&mut out, k).expect("key");
        put_string(&mut out, v).expect("value");
    }
    out
}

/// A `Prepared` result body: kind, id, flags, column count, then arbitrary metadata.
fn prepared_body() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (
        proptest::collection::vec(any::<u8>(), 0..8),
        any::<i32>(),
        0i32..100,
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(|(id, flags, columns, rest)| {
            let mut body = RESULT_PREPARED.to_be_bytes().to_vec();
            body.extend_from_slice(&(id.len() as u16).to_be_bytes());
            body.extend_from_slice(&id);
            body.extend_from_slice(&flags.to_be_bytes());
            body.extend_from_slice(&columns.to_be_bytes());
            let at = body.len();
            body.extend_from_slice(&rest);
            (body, at)
        })
}

/// A rewritten frame keeps stream and opcode and its header's length matches its body.
fn check_rewritten(before: &Frame, after: &io::Result<Frame>) -> Result<(), TestCaseError> {
    match after {
        Ok(after) => {
            prop_assert_eq!(&after.header[1..5], &before.header[1..5]);
            let len = u32::from_be_bytes([
                after.header[5],
                after.header[6],
                after.header[7],
                after.header[8],
            ]);
            prop_assert_eq!(len as usize, after.body.len());
        }
        Err(e) => prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn frames_round_trip_in_order(frames in proptest::collection::vec(frame(), 0..5)) {
        let wire: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
        let mut input = &wire[..];
        for frame in &frames {
            let read_back = read(&mut input).expect("valid");
            prop_assert_eq!(read_back.as_ref(), Some(frame));
        }
        prop_assert!(read(&mut input).expect("clean end").is_none());
    }

    #[test]
    fn cut_frames_end_cleanly_or_fail(frame in frame(), cut in any::<usize>()) {
        let wire = frame.to_bytes();
        let cut = cut % wire.len();
        match read(&mut &wire[..cut]) {
            // A cut inside the header reads as the end of the stream.
            Ok(None) => prop_assert!(cut < HEADER_LEN),
            Ok(Some(f)) => prop_assert!(false, "a cut frame was read: {:?}", f),
            Err(e) => {
                prop_assert!(cut >= HEADER_LEN);
                prop_assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_frames_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut input = &bytes[..];
        let mut consumed = Vec::new();
        while let Ok(Some(frame)) = read(&mut input) {
            prop_assert!(frame.body.len() <= MAX_BODY);
            consumed.extend(frame.to_bytes());
        }
        // What was read is exactly the start of the input.
        prop_assert_eq!(&bytes[..consumed.len()], &consumed[..]);
    }

    #[test]
    fn oversized_lengths_are_refused_without_allocating(len in (MAX_BODY as u32 + 1)..=u32::MAX, frame in frame()) {
        let mut wire = frame.to_bytes();
        wire[5..9].copy_from_slice(&len.to_be_bytes());
        let e = read(&mut &wire[..]).expect_err("oversized");
        prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn arbitrary_frames_are_rewritten_or_refused(frame in frame()) {
        check_rewritten(&frame, &rewrite_request(frame.clone()))?;
        check_rewritten(&frame, &rewrite_response(frame.clone()))?;
        let mut result = frame.clone();
        result.header[4] = OP_RESULT;
        result.header[1] &= !FLAG_COMPRESSION;
        check_rewritten(&result, &rewrite_response(result.clone()))?;
    }

    #[test]
    fn startup_keeps_every_option_but_the_cql_version(pairs in proptest::collection::vec((key(), "\\PC{0,12}"), 0..6)) {
        let startup = Frame::new(0x04, 0, 1, OP_STARTUP, string_map(&pairs));
        let out = rewrite_request(startup).expect("a well-formed STARTUP");
        let expected: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                let v = if k == "CQL_VERSION" { "3.0.0".to_owned() } else { v.clone() };
                (k.clone(), v)
            })
            .collect();
        prop_assert_eq!(out.version(), 0x03);
        prop_assert_eq!(out.body, string_map(&expected));
    }

    #[test]
    fn prepared_results_gain_exactly_an_empty_key_list((body, at) in prepared_body(), tracing in proptest::option::of(any::<[u8; 16]>())) {
        let (flags, body) = match tracing {
            Some(id) => (FLAG_TRACING, [&id[..], &body].concat()),
            None => (0, body),
        };
        let at = at + if tracing.is_some() { 16 } else { 0 };
        let out = rewrite_response(Frame::new(0x83, flags, 1, OP_RESULT, body.clone()))
            .expect("a well-formed Prepared result");
        let expected = [&body[..at], &0i32.to_be_bytes(), &body[at..]].concat();
        prop_assert_eq!(out.version(), 0x84);
        prop_assert_eq!(out.body, expected);
    }
}
