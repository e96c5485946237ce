use super::*;
use crate::cluster::payloads::samples;
use crate::cluster::{PROTOCOL_VERSION, decode, decode_within, encode, encode_at};
use crate::v1::client::SendMessage;

/// What a message is once it went through version 7: members' ranges are unknown there.
fn through_v7(mut msg: PeerMsg8) -> PeerMsg8 {
    match &mut msg {
        PeerMsg8::Hello(m) => m.protocols = (7, 7),
        PeerMsg8::Heartbeat { from, members } => {
            from.protocols = (7, 7);
            for m in members {
                m.protocols = (7, 7);
            }
        }
        _ => {}
    }
    msg
}

#[test]
fn every_message_survives_a_trip_through_version_7() {
    for msg in samples() {
        if crate::cluster::v8::needs(&msg) > 7 {
            assert!(matches!(
                encode_at(&msg, 7),
                Err(PeerFrameError::TooNew { .. })
            ));
            continue;
        }
        let expected = through_v7(msg.clone());
        assert_eq!(upgrade(downgrade(&msg)), Ok(expected.clone()), "{msg:?}");
        let frame = encode_at(&msg, 7).expect("7 is spoken");
        assert_eq!(frame[4], 7);
        assert_eq!(decode(&frame[4..]), Ok(expected), "{msg:?}");
    }
}

#[test]
fn a_node_decodes_only_the_versions_of_its_range() {
    let msg = &samples()[0];
    let v7 = encode_at(msg, 7).expect("7");
    let current = encode(msg);
    assert_eq!(current[4], PROTOCOL_VERSION);
    assert_eq!(
        decode_within(&v7[4..], 8..=PROTOCOL_VERSION),
        Err(PeerFrameError::Version(7))
    );
    assert_eq!(
        decode_within(&current[4..], 7..=7),
        Err(PeerFrameError::Version(PROTOCOL_VERSION))
    );
    assert!(decode_within(&v7[4..], 7..=7).is_ok());
    assert!(decode_within(&current[4..], 7..=PROTOCOL_VERSION).is_ok());
    assert_eq!(encode_at(msg, 6), Err(PeerFrameError::Version(6)));
}

/// Bytes as the previous release writes them (serde bincode of its types), not produced by
/// this module: a `FromRoom { room: 42, delivery: Closed }` and a post with its JSON.
#[test]
fn frames_of_the_previous_release_decode() {
    assert_eq!(
        decode(&[7, 3, 42, 4]),
        Ok(PeerMsg8::FromRoom {
            room: Snowflake(42),
            delivery: RoomDelivery8::Closed,
        })
    );
    let post = PeerMsg::ToRoom {
        room: 42,
        origin: 1,
        hops: 0,
        op: RoomOp::Post {
            session_id: 7,
            user_id: 8,
            username: "ann".into(),
            post_json: r#"{"roomId":"42","content":"hi","type":"file","nonce":"n","replyTo":"40","fileId":"41"}"#.into(),
            req_id: Some(3),
        },
    };
    let body = bincode::serde::encode_to_vec(&post, bincode::config::standard()).expect("v7");
    let mut frame = vec![7];
    frame.extend_from_slice(&body);
    let PeerMsg8::ToRoom {
        op: RoomOp8::Post { post, .. },
        ..
    } = decode(&frame).expect("decodes")
    else {
        panic!("not a post");
    };
    let expected: SendMessage = serde_json::from_str(
        r#"{"roomId":"42","content":"hi","type":"file","nonce":"n","replyTo":"40","fileId":"41"}"#,
    )
    .expect("json");
    assert_eq!(post, expected);
    assert_eq!(post.reply_to, Some(Snowflake(40)));
    assert_eq!(
        json::<crate::cluster::room::Action>("action", r#"{"op":"read","message_id":"40"}"#),
        Ok(crate::cluster::room::Action::Read {
            message_id: Snowflake(40)
        })
    );
}

#[test]
fn version_7_answers_are_read_by_their_shape() {
    assert_eq!(answer_up("null"), Ok(CallAnswer::Done));
    assert_eq!(answer_up("[]"), Ok(CallAnswer::Members(vec![])));
    assert!(answer_up("{}").is_err(), "not a join reply");
    let unreadable = delivery_up(RoomDelivery::CallResult {
        call_id: 1,
        result: Err("<html>".into()),
    });
    let Ok(RoomDelivery8::CallResult { result: Err(e), .. }) = unreadable else {
        panic!("{unreadable:?}");
    };
    assert_eq!(e.code, crate::ErrorCode::Unavailable);
    assert!(matches!(
        op_up(RoomOp::Act {
            session_id: 1,
            user_id: 2,
            username: "a".into(),
            action_json: "{".into(),
            req_id: None,
        }),
        Err(PeerFrameError::Decode(_))
    ));
}
