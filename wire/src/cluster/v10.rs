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
//! Delete this module, and the 10 arms in `frame.rs`, once no cluster runs version 10.

#[cfg(test)]
mod tests {
    use crate::Snowflake;
    use crate::cluster::payloads::samples;
    use crate::cluster::room::VoiceOp;
    use crate::cluster::v8::needs;
    use crate::cluster::{
        PROTOCOL_VERSION, PeerFrameError, PeerMsg, RoomOp, decode, decode_within, encode_at,
    };
    use crate::v1::voice::VideoTrack;

    #[test]
    fn version_10_frames_are_version_11_frames_of_the_messages_10_can_carry() {
        let mut refused = 0;
        for msg in samples() {
            let current = encode_at(&msg, PROTOCOL_VERSION).expect("current");
            match encode_at(&msg, 10) {
                Ok(v10) => {
                    assert!(needs(&msg) <= 10, "{msg:?}");
                    assert_eq!(v10[4], 10);
                    assert_eq!(v10[5..], current[5..], "same bytes: {msg:?}");
                    assert_eq!(decode(&v10[4..]), Ok(msg.clone()));
                    assert_eq!(decode_within(&v10[4..], 7..=10), Ok(msg));
                }
                Err(e) => {
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
                },
                req_id: Some(1),
            },
        });
    }
}
