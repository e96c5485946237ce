//! Property (fuzz) tests of [`Frame::from_wire`], which checks the encoded WebSocket frames a
//! peer node relays before they are written to this node's clients: arbitrary and mutated
//! bytes are accepted only as whole, final, unmasked text frames with UTF-8 payloads, and
//! frames this crate encodes (every header length) are accepted as they are.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::config;

/// Lengths around the 7-bit, 16-bit and 64-bit header boundaries, and small ones.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 0usize..200,
        2 => 124usize..=127,
        1 => 65_534usize..=65_537,
    ]
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    let frame = (payload_len(), "\\PC{0,4}").prop_map(|(len, text)| {
        let mut json = text;
        while json.len() < len {
            json.push('a');
        }
        Frame::from_json(json.as_bytes())
    });
    proptest::collection::vec(frame, 0..4)
}

/// An accepted frame's events can be read back, as many as it counts.
fn check(wire: Vec<u8>) -> Result<(), TestCaseError> {
    if let Some(frame) = Frame::from_wire(Bytes::from(wire.clone())) {
        prop_assert_eq!(frame.wire_bytes().as_ref(), &wire[..]);
        prop_assert_eq!(frame.texts().len(), frame.count());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn encoded_frames_are_accepted_as_they_are(frames in frames()) {
        let joined = Frame::concat(&frames);
        let back = Frame::from_wire(joined.wire_bytes().clone());
        prop_assert_eq!(back.as_ref(), Some(&joined));
        let texts: Vec<String> = frames.iter().map(|f| f.as_str().to_owned()).collect();
        prop_assert_eq!(joined.texts(), texts);
    }

    #[test]
    fn arbitrary_bytes_are_accepted_only_as_text_frames(wire in proptest::collection::vec(any::<u8>(), 0..64), text_header in any::<bool>()) {
        let mut wire = wire;
        if text_header && !wire.is_empty() {
            wire[0] = 0x81;
        }
        check(wire)?;
    }

    #[test]
    fn mutated_frames_are_accepted_only_when_whole(
        frames in frames(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut wire = Frame::concat(&frames).wire_bytes().to_vec();
        for (i, b, op) in edits {
            let n = wire.len();
            match op {
                0 if n > 0 => wire[i % n] = b,
                1 => wire.insert(i % (n + 1), b),
                _ => wire.truncate(i % (n + 1)),
            }
        }
        check(wire)?;
    }
}

/// Regression: a header announcing 2^64 - 1 payload bytes is refused (no overflow).
#[test]
fn an_absurd_announced_length_is_refused() {
    let mut wire = vec![0x81, 127];
    wire.extend_from_slice(&u64::MAX.to_be_bytes());
    wire.extend_from_slice(b"{}");
    assert!(Frame::from_wire(Bytes::from(wire)).is_none());
}
