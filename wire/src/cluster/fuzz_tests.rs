//! Property (fuzz) tests of the inter-node frame decoder: every valid frame round-trips, and
//! arbitrary, mutated, truncated and oversized input is refused with a [`PeerFrameError`],
//! never a panic or an allocation sized by what the peer claims.

use proptest::prelude::*;

use super::payloads::{action, call_answer, error_body, room_record, send_message, voice_op};
use super::*;
use crate::fuzzing::config;
use crate::v1::rich::PresenceStatus;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn member_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Up),
        Just(MemberState::Leaving),
        Just(MemberState::Left),
        Just(MemberState::Down),
    ]
}

fn presence_status() -> impl Strategy<Value = PresenceStatus> {
    prop_oneof![
        Just(PresenceStatus::Online),
        Just(PresenceStatus::Away),
        Just(PresenceStatus::Dnd),
        Just(PresenceStatus::InCall),
        Just(PresenceStatus::Offline),
    ]
}

fn member() -> impl Strategy<Value = MemberInfo> {
    (
        any::<u16>(),
        any::<u64>(),
        text(),
        text(),
        member_state(),
        any::<u32>(),
        any::<u32>(),
        (any::<u8>(), any::<u8>()),
    )
        .prop_map(
            |(node_id, incarnation, quic_addr, http_addr, state, rooms, sessions, protocols)| {
                MemberInfo {
                    node_id,
                    incarnation,
                    quic_addr,
                    http_addr,
                    state,
                    rooms,
                    sessions,
                    protocols,
                }
            },
        )
}

fn chosen() -> impl Strategy<Value = ChosenStatus> {
    (presence_status(), any::<u64>()).prop_map(|(status, at_ms)| ChosenStatus { status, at_ms })
}

fn presence_op() -> impl Strategy<Value = PresenceOp> {
    prop_oneof![
        any::<u64>().prop_map(|session_id| PresenceOp::Attach { session_id }),
        (any::<u64>(), any::<u64>(), proptest::option::of(chosen())).prop_map(
            |(session_id, idle_ms, chosen)| PresenceOp::Beat {
                session_id,
                idle_ms,
                chosen
            }
        ),
        any::<u64>().prop_map(|session_id| PresenceOp::Detach { session_id }),
        chosen().prop_map(|chosen| PresenceOp::Set { chosen }),
        (id(), any::<bool>(), any::<u64>()).prop_map(|(channel, on, at_ms)| PresenceOp::InCall {
            channel,
            on,
            at_ms
        }),
        id().prop_map(|room| PresenceOp::Probe { room }),
        (any::<u64>(), any::<bool>()).prop_map(|(session_id, focused)| {
            PresenceOp::FocusUntimed {
                session_id,
                focused,
            }
        }),
        (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(session_id, focused, at_ms)| {
            PresenceOp::Focus {
                session_id,
                focused,
                at_ms,
            }
        }),
        (id(), any::<u64>(), ".{0,20}").prop_map(|(room_id, dedupe, body)| PresenceOp::Push {
            at_ms: dedupe / 2,
            payload: crate::v1::push::PushPayload {
                kind: crate::v1::push::PushKind::Mention,
                room_id,
                message_id: Some(room_id),
                title: body.clone(),
                body,
                url: String::new(),
            },
            dedupe,
        }),
        (id(), any::<u64>()).prop_map(|(room_id, dedupe)| PresenceOp::PushUntimed {
            payload: crate::v1::push::PushPayload {
                kind: crate::v1::push::PushKind::Call,
                room_id,
                message_id: None,
                title: String::new(),
                body: String::new(),
                url: String::new(),
            },
            dedupe,
        }),
    ]
}

fn id() -> impl Strategy<Value = Snowflake> {
    any::<u64>().prop_map(Snowflake)
}

// Boxed: the nested strategy types of every message kind otherwise overflow a test
// thread's stack in debug builds.
fn room_call() -> BoxedStrategy<RoomCall> {
    prop_oneof![
        (id(), text()).prop_map(|(user_id, username)| RoomCall::AddMember { user_id, username }),
        (id(), proptest::option::of(id())).prop_map(|(user_id, removed_by)| {
            RoomCall::RemoveMember {
                user_id,
                removed_by,
            }
        }),
        (id(), id()).prop_map(|(message_id, by)| RoomCall::DeleteMessage { message_id, by }),
        room_record().prop_map(|room| RoomCall::Updated {
            room: Box::new(room)
        }),
        id().prop_map(|by| RoomCall::DeleteRoom { by }),
        Just(RoomCall::Members),
        (id(), proptest::option::of(id()), id()).prop_map(|(user_id, moved_to, by)| {
            RoomCall::DisconnectVoice {
                user_id,
                moved_to,
                by,
            }
        }),
    ]
    .boxed()
}

/// The fields every session request carries: session, user, username, payload, req id.
type Request<T> = (u64, Snowflake, String, T, Option<u64>);

fn request<T: std::fmt::Debug>(
    payload: impl Strategy<Value = T>,
) -> impl Strategy<Value = Request<T>> {
    (
        any::<u64>(),
        id(),
        text(),
        payload,
        proptest::option::of(any::<u64>()),
    )
}

fn room_op() -> impl Strategy<Value = RoomOp> {
    let opt = || proptest::option::of(any::<u64>());
    prop_oneof![
        (
            any::<u64>(),
            id(),
            text(),
            opt(),
            opt(),
            any::<bool>(),
            opt()
        )
            .prop_map(
                |(session_id, user_id, username, since, epoch, members, req_id)| RoomOp::Join {
                    session_id,
                    user_id,
                    username,
                    since,
                    epoch,
                    members,
                    req_id
                }
            ),
        (any::<u64>(), id(), opt()).prop_map(|(session_id, user_id, req_id)| {
            RoomOp::Leave {
                session_id,
                user_id,
                req_id,
            }
        }),
        request(send_message()).prop_map(|(session_id, user_id, username, post, req_id)| {
            RoomOp::Post {
                session_id,
                user_id,
                username,
                post,
                req_id,
            }
        }),
        request(action()).prop_map(|(session_id, user_id, username, action, req_id)| {
            RoomOp::Act {
                session_id,
                user_id,
                username,
                action,
                req_id,
            }
        }),
        request(voice_op()).prop_map(|(session_id, user_id, username, op, req_id)| {
            RoomOp::Voice {
                session_id,
                user_id,
                username,
                op,
                req_id,
            }
        }),
        (id(), presence_status(), opt(), any::<u64>(), any::<u16>()).prop_map(
            |(user_id, status, last_seen, version, source)| RoomOp::Presence {
                user_id,
                status,
                last_seen,
                version,
                source
            }
        ),
        (any::<u64>(), id(), any::<bool>(), opt()).prop_map(
            |(session_id, user_id, start, req_id)| RoomOp::Typing {
                session_id,
                user_id,
                start,
                req_id
            }
        ),
        (id(), text()).prop_map(|(user_id, username)| RoomOp::Renamed { user_id, username }),
        (any::<u64>(), room_call()).prop_map(|(call_id, call)| RoomOp::Call { call_id, call }),
        any::<u64>().prop_map(|call_id| RoomOp::Release { call_id }),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn room_delivery() -> impl Strategy<Value = RoomDelivery> {
    let opt = || proptest::option::of(any::<u64>());
    prop_oneof![
        (any::<u64>(), opt(), bytes(64)).prop_map(|(session_id, last, frames)| {
            RoomDelivery::ToSession {
                session_id,
                last,
                frames,
            }
        }),
        any::<u64>().prop_map(|session_id| RoomDelivery::Subscribed { session_id }),
        any::<u64>().prop_map(|session_id| RoomDelivery::Forget { session_id }),
        any::<u64>().prop_map(|session_id| RoomDelivery::JoinLater { session_id }),
        (proptest::option::of(id()), opt(), bytes(64)).prop_map(|(except_user, last, frames)| {
            RoomDelivery::Fanout {
                except_user,
                last,
                frames,
            }
        }),
        Just(RoomDelivery::Closed),
        (
            any::<u64>(),
            prop_oneof![call_answer().prop_map(Ok), error_body().prop_map(Err)]
        )
            .prop_map(|(call_id, result)| RoomDelivery::CallResult { call_id, result }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(call_id, busy)| RoomDelivery::Released { call_id, busy }),
    ]
}

/// Every kind of inter-node message, with arbitrary field values.
pub(crate) fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        member().prop_map(PeerMsg::Hello),
        (member(), proptest::collection::vec(member(), 0..4))
            .prop_map(|(from, members)| PeerMsg::Heartbeat { from, members }),
        // The nested strategies are boxed: unboxed, their value trees make one type deep
        // enough to overflow a debug test thread's stack.
        (id(), any::<u16>(), any::<u8>(), room_op().boxed()).prop_map(
            |(room, origin, hops, op)| {
                PeerMsg::ToRoom {
                    room,
                    origin,
                    hops,
                    op,
                }
            }
        ),
        (id(), room_delivery().boxed())
            .prop_map(|(room, delivery)| PeerMsg::FromRoom { room, delivery }),
        (id(), presence_op().boxed()).prop_map(|(user, op)| PeerMsg::ToPresence { user, op }),
        (id(), bytes(64)).prop_map(|(user, frames)| PeerMsg::ToUser { user, frames }),
        // Version 11 (swim).
        bytes(64).prop_map(|packet| PeerMsg::Swim { packet }),
        id().prop_map(|room| PeerMsg::HandedOff { room }),
    ]
}

/// One edit of a byte string: replace, insert or remove a byte, cut the tail, or overwrite
/// bytes with a bincode varint (`253` and a little-endian `u64`: how lengths are encoded).
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    Varint(usize, u64),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
        2 => (any::<usize>(), prop_oneof![any::<u64>(), 0u64..1 << 20, Just(u64::MAX)])
            .prop_map(|(i, n)| Edit::Varint(i, n)),
    ];
    proptest::collection::vec(edit, 1..6)
}

/// Applies `edits` to `bytes`, positions taken modulo the length at each step.
pub(crate) fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let n = bytes.len();
        match *edit {
            Edit::Set(i, b) if n > 0 => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Edit::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (n + 1)),
            Edit::Varint(i, v) => {
                let at = i % (n + 1);
                let mut varint = vec![253];
                varint.extend_from_slice(&v.to_le_bytes());
                let end = (at + varint.len()).min(n);
                bytes.splice(at..end, varint);
            }
            _ => {}
        }
    }
    bytes
}

/// A decoded frame is a message that encodes back to a frame decoding to itself.
fn assert_consistent(result: Result<PeerMsg, PeerFrameError>) -> Result<(), TestCaseError> {
    if let Ok(msg) = result {
        let again = encode(&msg);
        prop_assert_eq!(decode(&again[4..]), Ok(msg));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn valid_frames_round_trip(msg in peer_msg()) {
        let bytes = encode(&msg);
        let prefix: [u8; 4] = bytes[..4].try_into().expect("prefix");
        prop_assert_eq!(check_len(prefix, bytes.len() - 4), Ok(bytes.len() - 4));
        prop_assert_eq!(decode(&bytes[4..]), Ok(msg));
    }

    #[test]
    fn truncated_frames_are_refused(msg in peer_msg(), cut in any::<usize>()) {
        let bytes = encode(&msg);
        let body = &bytes[4..];
        let cut = cut % body.len();
        prop_assert!(decode(&body[..cut]).is_err(), "a strict prefix decoded");
    }

    #[test]
    fn frames_with_trailing_bytes_are_refused(
        msg in peer_msg(),
        extra in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encode(&msg);
        bytes.extend_from_slice(&extra);
        prop_assert!(matches!(decode(&bytes[4..]), Err(PeerFrameError::Decode(_))));
    }

    #[test]
    fn mutated_frames_decode_or_are_refused(msg in peer_msg(), edits in edits()) {
        let body = mutate(encode(&msg)[4..].to_vec(), &edits);
        assert_consistent(decode(&body))?;
    }

    #[test]
    fn mutated_version_7_frames_decode_or_are_refused(msg in peer_msg(), edits in edits()) {
        // A message that needs a newer version is never written at 7.
        let Ok(frame) = encode_at(&msg, 7) else {
            prop_assert!(crate::cluster::v8::needs(&msg) > 7);
            return Ok(());
        };
        let body = mutate(frame[4..].to_vec(), &edits);
        assert_consistent(decode(&body))?;
    }

    #[test]
    fn arbitrary_bytes_decode_or_are_refused(
        mut body in bytes(256),
        version in prop_oneof![Just(None), Just(Some(7u8)), Just(Some(PROTOCOL_VERSION))],
    ) {
        // Most random first bytes are refused as another version: make two thirds of them
        // versions this build speaks.
        if let (Some(version), false) = (version, body.is_empty()) {
            body[0] = version;
        }
        let result = decode(&body);
        let spoken = MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION;
        if !body.first().is_some_and(|v| spoken.contains(v)) {
            prop_assert!(result.is_err());
        }
        assert_consistent(result)?;
    }

    #[test]
    fn announced_lengths_are_checked(len in any::<u32>(), limit in 0usize..(1 << 26)) {
        let result = check_len(len.to_be_bytes(), limit);
        let len = len as usize;
        if len == 0 {
            prop_assert_eq!(result, Err(PeerFrameError::Empty));
        } else if len > limit {
            prop_assert_eq!(result, Err(PeerFrameError::TooLarge { len, limit }));
        } else {
            prop_assert_eq!(result, Ok(len));
        }
    }
}

/// A frame announcing a string of `len` bytes (a `Hello` whose `quic_addr` is that long) that
/// then ends: the bincode standard encoding of the length is `253` and a little-endian `u64`.
fn hello_announcing(version: u8, len: u64) -> Vec<u8> {
    // version, variant 0 (Hello), node_id 1, incarnation 1, then the string's length.
    let mut frame = vec![version, 0, 1, 1, 253];
    frame.extend_from_slice(&len.to_le_bytes());
    frame
}

/// Regression (found reading bincode's decoder, then by `mutated_frames_decode_or_are_refused`
/// once its edits included varint lengths): bincode allocated a string's
/// announced length before reading it, so 14 bytes announcing 2^40 aborted the process
/// ("memory allocation failed") and 2^63 panicked ("capacity overflow").
#[test]
fn a_huge_announced_string_is_refused_without_allocating_it() {
    for version in [7, PROTOCOL_VERSION] {
        for len in [1u64 << 24, 1 << 32, 1 << 40, 1 << 62, u64::MAX] {
            assert!(
                matches!(
                    decode(&hello_announcing(version, len)),
                    Err(PeerFrameError::Decode(_))
                ),
                "version {version}, {len}"
            );
        }
    }
}

/// The decode budget is generous enough for the largest legitimate frames: long strings and
/// byte strings, and many members.
#[test]
fn large_valid_frames_still_decode() {
    let long = "x".repeat(2 << 20);
    let member = MemberInfo {
        node_id: 0,
        incarnation: 0,
        quic_addr: String::new(),
        http_addr: String::new(),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (7, 8),
    };
    for msg in [
        PeerMsg::ToUser {
            user: Snowflake(1),
            frames: vec![0x81; 256 << 10],
        },
        PeerMsg::FromRoom {
            room: Snowflake(1),
            delivery: RoomDelivery::CallResult {
                call_id: 1,
                result: Err(ErrorBody::new(crate::ErrorCode::Forbidden, long)),
            },
        },
        PeerMsg::Heartbeat {
            from: member.clone(),
            members: vec![member; 20_000],
        },
    ] {
        let bytes = encode(&msg);
        assert_eq!(decode(&bytes[4..]), Ok(msg));
    }
}
