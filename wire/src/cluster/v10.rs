//! Version 10 of the inter-node protocol, as the previous release speaks it: the types of
//! version 11 without what version 11 appended as the last variants of their enums:
//! [`PeerMsg::Swim`] (the SWIM membership's packets, `cluster.membership = "swim"`),
//! [`PeerMsg::HandedOff`] (bounded hand-off: "start this room now"), and `VoiceOp::Media` and
//! `VoiceOp::Subscribe` of [`crate::cluster::room::VoiceOp`] (video: a camera or screen share
//! turned on or off, a participant's video paused). bincode writes an enum variant as its
//! index, so every other message encodes to the same bytes at both versions: a version 10
//! frame decodes with this build's types as it is, and none of those four is ever written to
//! a link of version 10 or older ([`super::v8::needs`] says 11; `encode_at` refuses with
//! `TooNew`).
//!
//! - A SWIM packet is dropped like a lost one, so a node running SWIM cannot probe a node of
//!   the previous release: switch a cluster to `membership = "swim"` only once every node
//!   runs protocol 11 (a rolling upgrade with the default all-to-all membership first, then a
//!   second rolling restart with the setting).
//! - A hand-off notice is dropped the same way: on a link of version 10 the new owner starts
//!   the room at its next request, as the previous release did.
//! - A session whose voice channel lives on a node of version 10 gets the video op's refusal
//!   as an error; mute and deafen alone still go as `VoiceOp::State`.
//!
//! - Version 11 also gave `PresenceOp::Focus` and `PresenceOp::Push` the time of the report
//!   or event (`at_ms`): the untimed forms version 10 writes keep their places
//!   (`PresenceOp::FocusUntimed`, `PresenceOp::PushUntimed`), the timed ones were appended,
//!   and [`downgrade`] writes a timed op to a link of version 10 as its untimed form. A
//!   presence actor reads an untimed op as made when it arrived (`PresenceOp::timed`).
//!
//! Delete this module, the untimed presence ops, and the 10 arms in `frame.rs`, once no
//! cluster runs version 10.

use super::{PeerMsg, PresenceOp};

/// `msg` as version 10 writes it, if it differs: a timed focus report or push offer without
/// its time. `None` for every other message (it is written as it is, or refused).
pub fn downgrade(msg: &PeerMsg) -> Option<PeerMsg> {
    let PeerMsg::ToPresence { user, op } = msg else {
        return None;
    };
    let op = match op {
        PresenceOp::Focus {
            session_id,
            focused,
            ..
        } => PresenceOp::FocusUntimed {
            session_id: *session_id,
            focused: *focused,
        },
        PresenceOp::Push {
            payload, dedupe, ..
        } => PresenceOp::PushUntimed {
            payload: payload.clone(),
            dedupe: *dedupe,
        },
        PresenceOp::Attach { .. }
        | PresenceOp::Beat { .. }
        | PresenceOp::Detach { .. }
        | PresenceOp::Set { .. }
        | PresenceOp::InCall { .. }
        | PresenceOp::Probe { .. }
        | PresenceOp::FocusUntimed { .. }
        | PresenceOp::PushUntimed { .. } => return None,
    };
    Some(PeerMsg::ToPresence { user: *user, op })
}

#[cfg(test)]
mod tests {
    use super::downgrade;
    use crate::Snowflake;
    use crate::cluster::payloads::samples;
    use crate::cluster::room::VoiceOp;
    use crate::cluster::v8::needs;
    use crate::cluster::{
        PROTOCOL_VERSION, PeerFrameError, PeerMsg, PresenceOp, RoomOp, decode, decode_within,
        encode_at,
    };
    use crate::v1::push::{PushKind, PushPayload};
    use crate::v1::voice::VideoTrack;

    #[test]
    fn version_10_frames_are_version_11_frames_of_the_messages_10_can_carry() {
        let (mut refused, mut downgraded) = (0, 0);
        for msg in samples() {
            let current = encode_at(&msg, PROTOCOL_VERSION).expect("current");
            match (encode_at(&msg, 10), downgrade(&msg)) {
                (Ok(v10), Some(older)) => {
                    // Timed presence ops go without their time, and come back untimed.
                    assert_eq!(needs(&msg), 11, "{msg:?}");
                    assert_eq!(needs(&older), 10, "{older:?}");
                    assert_eq!(
                        v10[5..],
                        encode_at(&older, PROTOCOL_VERSION).expect("older")[5..]
                    );
                    assert_eq!(decode_within(&v10[4..], 7..=10), Ok(older));
                    downgraded += 1;
                }
                (Ok(v10), None) => {
                    assert!(needs(&msg) <= 10, "{msg:?}");
                    assert_eq!(v10[4], 10);
                    assert_eq!(v10[5..], current[5..], "same bytes: {msg:?}");
                    assert_eq!(decode(&v10[4..]), Ok(msg.clone()));
                    assert_eq!(decode_within(&v10[4..], 7..=10), Ok(msg));
                }
                (Err(e), _) => {
                    assert_eq!(
                        e,
                        PeerFrameError::TooNew {
                            version: 10,
                            needs: 11
                        }
                    );
                    refused += 1;
                }
            }
        }
        // Swim, HandedOff, and the voice ops Media and Subscribe.
        assert_eq!(refused, 4, "only the additions of version 11 are refused");
        assert_eq!(downgraded, 2, "Focus and Push");
    }

    /// A push offer and a focus report as the previous release encodes them (its
    /// `PresenceOp` had eight variants, the last two without times) decode as the untimed
    /// ops, and count from their arrival.
    #[test]
    fn the_previous_releases_presence_ops_decode_untimed() {
        #[derive(bincode::Encode)]
        #[allow(dead_code)]
        enum Released {
            Attach,
            Beat,
            Detach,
            Set,
            InCall,
            Probe,
            Focus { session_id: u64, focused: bool },
            Push { payload: PushPayload, dedupe: u64 },
        }
        let payload = PushPayload {
            kind: PushKind::Dm,
            room_id: Snowflake(4),
            message_id: Some(Snowflake(5)),
            title: "ann".into(),
            body: "hi".into(),
            url: "/rooms/4".into(),
        };
        let config = bincode::config::standard();
        let released = [
            Released::Focus {
                session_id: 3,
                focused: false,
            },
            Released::Push {
                payload: payload.clone(),
                dedupe: 5,
            },
        ];
        let expected = [
            PresenceOp::Focus {
                session_id: 3,
                focused: false,
                at_ms: 77,
            },
            PresenceOp::Push {
                payload,
                dedupe: 5,
                at_ms: 77,
            },
        ];
        for (old, new) in released.into_iter().zip(expected) {
            let bytes = bincode::encode_to_vec(old, config).expect("encode");
            let (op, _): (PresenceOp, usize) =
                bincode::decode_from_slice(&bytes, config).expect("decode");
            assert!(matches!(
                op,
                PresenceOp::FocusUntimed { .. } | PresenceOp::PushUntimed { .. }
            ));
            assert_eq!(op.timed(77), new);
        }
    }

    /// `msg` is refused by every older version and read back at 11 only.
    fn only_at_11(msg: PeerMsg) {
        for version in 7..=10 {
            assert_eq!(
                encode_at(&msg, version),
                Err(PeerFrameError::TooNew { version, needs: 11 })
            );
        }
        let frame = encode_at(&msg, 11).expect("11");
        assert_eq!(decode_within(&frame[4..], 7..=11), Ok(msg.clone()));
        assert!(decode_within(&frame[4..], 7..=10).is_err());
    }

    #[test]
    fn a_swim_packet_is_never_written_to_an_older_link() {
        only_at_11(PeerMsg::Swim {
            packet: vec![1, 2, 3],
        });
    }

    #[test]
    fn a_video_op_is_never_written_to_an_older_link() {
        only_at_11(PeerMsg::ToRoom {
            room: Snowflake(5),
            origin: 1,
            hops: 0,
            op: RoomOp::Voice {
                session_id: 3,
                user_id: Snowflake(8),
                username: "ann".into(),
                op: VoiceOp::Subscribe {
                    user_id: Snowflake(9),
                    track: VideoTrack::Camera,
                    paused: true,
                    layer: None,
                },
                req_id: Some(1),
            },
        });
    }
}
