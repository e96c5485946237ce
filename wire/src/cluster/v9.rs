//! Version 9 of the inter-node protocol, as the previous release speaks it: the types of
//! version 10 without [`PeerMsg::Search`] and [`PeerMsg::SearchAnswer`], which version 10
//! appended as the last variants of [`PeerMsg`] (and `PresenceOp::FocusUntimed` /
//! `PushUntimed`, appended to theirs). bincode writes an enum variant as its
//! index, so every other message encodes to the same bytes at both versions: a version 9
//! frame decodes with this build's types as it is, and a search is never written to a link
//! of version 9 or older ([`super::v8::needs`] says 10; `encode_at` refuses with `TooNew`, so
//! the asking node counts that peer's rooms as unavailable). Delete this module, and the 9
//! arms in `frame.rs`, once no cluster runs version 9.

#[cfg(test)]
mod tests {
    use crate::Snowflake;
    use crate::cluster::payloads::samples;
    use crate::cluster::v8::needs;
    use crate::cluster::{
        PROTOCOL_VERSION, PeerFrameError, PeerMsg, decode, decode_within, encode_at,
    };
    use crate::v1::search::IndexQuery;

    #[test]
    fn version_9_frames_are_version_10_frames_of_the_messages_9_can_carry() {
        let mut refused = 0;
        for msg in samples() {
            let current = encode_at(&msg, PROTOCOL_VERSION).expect("current");
            match encode_at(&msg, 9) {
                Ok(v9) => {
                    assert!(needs(&msg) <= 9, "{msg:?}");
                    assert_eq!(v9[4], 9);
                    assert_eq!(v9[5..], current[5..], "same bytes: {msg:?}");
                    assert_eq!(decode(&v9[4..]), Ok(msg.clone()));
                    assert_eq!(decode_within(&v9[4..], 7..=9), Ok(msg));
                }
                Err(e) => {
                    let needs = needs(&msg);
                    assert!(needs >= 10, "{msg:?}");
                    assert_eq!(e, PeerFrameError::TooNew { version: 9, needs });
                    refused += 1;
                }
            }
        }
        // Search, SearchAnswer, and presence's untimed FocusUntimed and PushUntimed (10);
        // Swim, HandedOff, the voice ops Media and Subscribe, and the timed Focus and Push
        // (11).
        assert_eq!(
            refused, 10,
            "only the additions of versions 10 and 11 are refused"
        );
    }

    #[test]
    fn a_search_is_never_written_to_an_older_link() {
        let msg = PeerMsg::Search {
            call_id: 1,
            rooms: vec![Snowflake(5)],
            query: IndexQuery::default(),
        };
        for version in 7..=9 {
            assert_eq!(
                encode_at(&msg, version),
                Err(PeerFrameError::TooNew { version, needs: 10 })
            );
        }
        let frame = encode_at(&msg, 10).expect("10");
        assert_eq!(
            decode_within(&frame[4..], 7..=PROTOCOL_VERSION),
            Ok(msg.clone())
        );
        assert!(decode_within(&frame[4..], 7..=9).is_err());
    }
}
