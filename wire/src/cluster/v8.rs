//! Version 8 of the inter-node protocol, as the previous release speaks it: the types of
//! version 9 without [`RoomCall::DisconnectVoice`], which version 9 appended as the last
//! variant of its enum. bincode writes an enum variant as its index, so every other message
//! encodes to the same bytes at both versions: a version 8 frame decodes with this build's
//! types as it is, and a message is written at version 8 (or 7) only if it has no part that
//! needs version 9 ([`needs`]). Delete this module, and the 8 arms in `frame.rs`, once no
//! cluster runs version 8.

use super::{PeerMsg, RoomCall, RoomOp};

/// The oldest version that can carry `msg`.
pub fn needs(msg: &PeerMsg) -> u8 {
    match msg {
        PeerMsg::ToRoom {
            op: RoomOp::Call { call, .. },
            ..
        } => match call {
            RoomCall::DisconnectVoice { .. } => 9,
            RoomCall::AddMember { .. }
            | RoomCall::RemoveMember { .. }
            | RoomCall::DeleteMessage { .. }
            | RoomCall::Updated { .. }
            | RoomCall::DeleteRoom { .. }
            | RoomCall::Members => 7,
        },
        PeerMsg::Search { .. } | PeerMsg::SearchAnswer { .. } => 10,
        PeerMsg::Hello(_)
        | PeerMsg::Heartbeat { .. }
        | PeerMsg::ToRoom { .. }
        | PeerMsg::FromRoom { .. }
        | PeerMsg::ToPresence { .. }
        | PeerMsg::ToUser { .. }
        | PeerMsg::ForUser { .. } => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::payloads::samples;
    use crate::cluster::{PROTOCOL_VERSION, PeerFrameError, decode, decode_within, encode_at};

    #[test]
    fn version_8_frames_are_version_9_frames_of_the_messages_8_can_carry() {
        let mut refused = 0;
        for msg in samples() {
            let current = encode_at(&msg, PROTOCOL_VERSION).expect("current");
            match encode_at(&msg, 8) {
                Ok(v8) => {
                    assert_eq!(needs(&msg), 7, "{msg:?}");
                    assert_eq!(v8[4], 8);
                    assert_eq!(v8[5..], current[5..], "same bytes: {msg:?}");
                    assert_eq!(decode(&v8[4..]), Ok(msg.clone()));
                    assert_eq!(decode_within(&v8[4..], 7..=8), Ok(msg));
                }
                Err(e) => {
                    let needs = needs(&msg);
                    assert!(needs > 8, "{msg:?}");
                    assert_eq!(e, PeerFrameError::TooNew { version: 8, needs });
                    refused += 1;
                }
            }
        }
        // DisconnectVoice (version 9), Search and SearchAnswer (version 10).
        assert_eq!(refused, 3, "only later additions are refused");
    }

    /// Bytes as the previous release writes a member-list call (version 8, bincode of its
    /// types): they decode unchanged.
    #[test]
    fn a_frame_of_the_previous_release_decodes() {
        let msg = PeerMsg::ToRoom {
            room: crate::Snowflake(42),
            origin: 3,
            hops: 0,
            op: RoomOp::Call {
                call_id: 7,
                call: RoomCall::Members,
            },
        };
        let frame = encode_at(&msg, 8).expect("8");
        assert_eq!(decode_within(&frame[4..], 8..=8), Ok(msg));
    }
}
