//! Version 8 of the inter-node protocol, as the previous release speaks it: the types of
//! version 9 without [`RoomCall::DisconnectVoice`], which version 9 appended as the last
//! variant of its enum. bincode writes an enum variant as its index, so every other message
//! encodes to the same bytes at both versions: a version 8 frame decodes with this build's
//! types as it is, and a message is written at version 8 (or 7) only if it has no part that
//! needs version 9 ([`needs`]). Version 10 appended `PeerMsg::Search`, `PeerMsg::SearchAnswer`
//! (see [`super::v9`]), `PresenceOp::FocusUntimed` and `PresenceOp::PushUntimed` the same way, so version 9
//! is version 10 without them. Delete this
//! module, and the 8 and 9 arms in `frame.rs`, once no cluster runs them.

use super::{PeerMsg, PresenceOp, RoomCall, RoomOp, VoiceOp};

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
        PeerMsg::ToRoom {
            op: RoomOp::Voice { op, .. },
            ..
        } => match op {
            VoiceOp::Media { .. } | VoiceOp::Subscribe { .. } => 11,
            VoiceOp::Join { .. }
            | VoiceOp::Signal { .. }
            | VoiceOp::State { .. }
            | VoiceOp::Leave
            | VoiceOp::IceServers
            | VoiceOp::Beat
            | VoiceOp::Stage { .. }
            | VoiceOp::Call { .. } => 7,
        },
        PeerMsg::Search { .. } | PeerMsg::SearchAnswer { .. } => 10,
        // Version 11 (swim).
        PeerMsg::Swim { .. } | PeerMsg::HandedOff { .. } => 11,
        PeerMsg::ToPresence { op, .. } => match op {
            PresenceOp::FocusUntimed { .. } | PresenceOp::PushUntimed { .. } => 10,
            PresenceOp::Focus { .. } | PresenceOp::Push { .. } => 11,
            PresenceOp::Attach { .. }
            | PresenceOp::Beat { .. }
            | PresenceOp::Detach { .. }
            | PresenceOp::Set { .. }
            | PresenceOp::InCall { .. }
            | PresenceOp::Probe { .. } => 7,
        },
        PeerMsg::Hello(_)
        | PeerMsg::Heartbeat { .. }
        | PeerMsg::ToRoom { .. }
        | PeerMsg::FromRoom { .. }
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
    fn older_frames_are_current_frames_of_the_messages_they_can_carry() {
        for version in [8u8, 9, 10] {
            let mut refused = 0;
            for msg in samples() {
                let current = encode_at(&msg, PROTOCOL_VERSION).expect("current");
                match encode_at(&msg, version) {
                    // Written in its older form (see `v10`'s tests).
                    Ok(_) if needs(&msg) > version => {
                        assert!(crate::cluster::v10::downgrade(&msg).is_some(), "{msg:?}");
                    }
                    Ok(old) => {
                        assert_eq!(old[4], version);
                        assert_eq!(old[5..], current[5..], "same bytes: {msg:?}");
                        assert_eq!(decode(&old[4..]), Ok(msg.clone()));
                        assert_eq!(decode_within(&old[4..], 7..=version), Ok(msg));
                    }
                    Err(e) => {
                        let needs = needs(&msg);
                        assert!(needs > version);
                        assert_eq!(e, PeerFrameError::TooNew { version, needs });
                        refused += 1;
                    }
                }
            }
            // DisconnectVoice needs 9; Search, SearchAnswer and the untimed FocusUntimed and
            // PushUntimed need 10; Swim, HandedOff, the voice ops Media and Subscribe, and
            // the timed Focus and Push need 11 (at 10 the last two go untimed).
            let expected = match version {
                8 => 11,
                9 => 10,
                _ => 4,
            };
            assert_eq!(refused, expected, "version {version}");
        }
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
