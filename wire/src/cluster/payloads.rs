//! Test-only values of the typed payloads the cluster protocol carries: one sample of every
//! message kind (the round-trip and version-conversion tests walk them all) and proptest
//! strategies for the fuzz tests.

use proptest::prelude::*;

use super::room::{Action, CallAction, CallAnswer, StageAction, VoiceOp};
use super::*;
use crate::ErrorCode;
use crate::json_text::OpaqueJson;
use crate::room::{RoomKind, RoomRecord, RoomSettings};
use crate::v1::client::{MessageType, SendMessage};
use crate::v1::rich::PresenceStatus;
use crate::v1::server::{JoinReply, Participant};
use crate::v1::voice::VoiceMember;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn id() -> impl Strategy<Value = Snowflake> {
    any::<u64>().prop_map(Snowflake)
}

pub(crate) fn send_message() -> impl Strategy<Value = SendMessage> {
    let opt_id = || proptest::option::of(id());
    (
        id(),
        text(),
        prop_oneof![Just(MessageType::Text), Just(MessageType::File)],
        proptest::option::of(text()),
        opt_id(),
        opt_id(),
    )
        .prop_map(
            |(room_id, content, kind, nonce, reply_to, file_id)| SendMessage {
                room_id,
                content,
                kind,
                nonce,
                reply_to,
                file_id,
            },
        )
}

pub(crate) fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (id(), text()).prop_map(|(message_id, content)| Action::Edit {
            message_id,
            content
        }),
        id().prop_map(|message_id| Action::Delete { message_id }),
        (id(), text(), any::<bool>()).prop_map(|(message_id, emoji, add)| Action::React {
            message_id,
            emoji,
            add
        }),
        id().prop_map(|message_id| Action::Read { message_id }),
    ]
}

pub(crate) fn voice_op() -> impl Strategy<Value = VoiceOp> {
    let candidate = text().prop_map(|c| OpaqueJson(serde_json::json!({ "candidate": c })));
    prop_oneof![
        text().prop_map(|sdp| VoiceOp::Join { sdp }),
        (
            proptest::option::of(candidate),
            proptest::option::of(text())
        )
            .prop_map(|(candidate, sdp)| VoiceOp::Signal { candidate, sdp }),
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(muted, deafened)| VoiceOp::State { muted, deafened }),
        Just(VoiceOp::Leave),
        Just(VoiceOp::IceServers),
        Just(VoiceOp::Beat),
        proptest::option::of(id()).prop_map(|user_id| VoiceOp::Stage {
            action: StageAction::Promote,
            user_id
        }),
        Just(VoiceOp::Call {
            action: CallAction::Accept
        }),
        // One arm for version 11's two: past ten arms `prop_oneof!` builds a strategy whose
        // generation overflows a test thread's stack in debug builds.
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
            id(),
        )
            .prop_map(|(video, screen, user_id)| match video {
                Some(paused) => VoiceOp::Subscribe {
                    user_id,
                    track: crate::v1::voice::VideoTrack::Screen,
                    paused,
                    layer: paused.then_some(crate::v1::voice::VideoLayer::Medium),
                },
                None => VoiceOp::Media {
                    muted: None,
                    deafened: Some(false),
                    video,
                    screen
                },
            }),
    ]
}

pub(crate) fn room_record() -> impl Strategy<Value = RoomRecord> {
    (
        id(),
        text(),
        any::<u32>(),
        proptest::collection::vec(id(), 0..3),
    )
        .prop_map(|(id, name, max_users, banned)| RoomRecord {
            id,
            name,
            description: String::new(),
            max_users,
            settings: RoomSettings::default(),
            join_code: "abc".into(),
            created_by: id,
            created_at: 1,
            updated_at: 2,
            kind: RoomKind::Stage,
            banned,
        })
}

fn participant() -> impl Strategy<Value = Participant> {
    (id(), text(), proptest::option::of(any::<u64>())).prop_map(|(user_id, username, last_seen)| {
        Participant {
            user_id,
            username,
            role: "member".into(),
            online: last_seen.is_none(),
            status: PresenceStatus::Away,
            last_seen,
        }
    })
}

pub(crate) fn call_answer() -> impl Strategy<Value = CallAnswer> {
    prop_oneof![
        Just(CallAnswer::Done),
        proptest::collection::vec(participant(), 0..3).prop_map(CallAnswer::Members),
        (id(), proptest::collection::vec(participant(), 0..3))
            .prop_map(|(room_id, ps)| { CallAnswer::Joined(join_reply(room_id, ps)) }),
    ]
}

pub(crate) fn error_body() -> impl Strategy<Value = ErrorBody> {
    prop_oneof![
        text().prop_map(|m| ErrorBody::new(ErrorCode::Forbidden, m)),
        text().prop_map(ErrorBody::unavailable),
    ]
}

fn join_reply(room_id: Snowflake, participants: Vec<Participant>) -> JoinReply {
    JoinReply {
        room_id,
        member_count: participants.len() as u32,
        participants,
        online_count: 1,
        replayed: 2,
        replay_truncated: true,
        seq: 3,
        epoch: 4,
        voice: vec![VoiceMember {
            channel_id: room_id,
            user_id: Snowflake(5),
            username: "ann".into(),
            muted: true,
            deafened: false,
            speaking: true,
            role: Some("host".into()),
        }],
    }
}

pub(crate) fn member(node_id: NodeId) -> MemberInfo {
    MemberInfo {
        node_id,
        incarnation: 17,
        quic_addr: "127.0.0.1:4003".into(),
        http_addr: "127.0.0.1:3003".into(),
        state: MemberState::Up,
        rooms: 2,
        sessions: 9,
        protocols: (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION),
    }
}

/// One of every message kind, with every optional field set somewhere.
pub(crate) fn samples() -> Vec<PeerMsg> {
    let room = Snowflake(42);
    let user = Snowflake(8);
    let participant = Participant {
        user_id: user,
        username: "ann".into(),
        role: "admin".into(),
        online: false,
        status: PresenceStatus::Offline,
        last_seen: Some(99),
    };
    let record = RoomRecord {
        id: room,
        name: "general".into(),
        description: "d".into(),
        max_users: 50,
        settings: RoomSettings::default(),
        join_code: "xyz".into(),
        created_by: user,
        created_at: 1,
        updated_at: 2,
        kind: RoomKind::Voice,
        banned: vec![Snowflake(3)],
    };
    let chosen = ChosenStatus {
        status: PresenceStatus::Dnd,
        at_ms: 5,
    };
    let ops = vec![
        RoomOp::Join {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            since: Some(3),
            epoch: Some(1),
            members: true,
            req_id: Some(2),
        },
        RoomOp::Leave {
            session_id: 7,
            user_id: user,
            req_id: None,
        },
        RoomOp::Post {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            post: SendMessage {
                room_id: room,
                content: "see attached".into(),
                kind: MessageType::File,
                nonce: Some("n-1".into()),
                reply_to: Some(Snowflake(40)),
                file_id: Some(Snowflake(41)),
            },
            req_id: Some(3),
        },
        RoomOp::Act {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            action: Action::React {
                message_id: Snowflake(40),
                emoji: "👍".into(),
                add: true,
            },
            req_id: Some(4),
        },
        RoomOp::Voice {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            op: VoiceOp::Signal {
                candidate: Some(OpaqueJson(serde_json::json!({
                    "candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0
                }))),
                sdp: None,
            },
            req_id: Some(5),
        },
        RoomOp::Voice {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            op: VoiceOp::Stage {
                action: StageAction::Kick,
                user_id: Some(Snowflake(9)),
            },
            req_id: None,
        },
        RoomOp::Voice {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            op: VoiceOp::Media {
                muted: None,
                deafened: None,
                video: Some(true),
                screen: None,
            },
            req_id: Some(6),
        },
        RoomOp::Voice {
            session_id: 7,
            user_id: user,
            username: "ann".into(),
            op: VoiceOp::Subscribe {
                user_id: Snowflake(9),
                track: crate::v1::voice::VideoTrack::Camera,
                paused: false,
                layer: Some(crate::v1::voice::VideoLayer::Low),
            },
            req_id: None,
        },
        RoomOp::Presence {
            user_id: user,
            status: PresenceStatus::Away,
            last_seen: Some(6),
            version: 7,
            source: 2,
        },
        RoomOp::Typing {
            session_id: 7,
            user_id: user,
            start: true,
            req_id: Some(8),
        },
        RoomOp::Renamed {
            user_id: user,
            username: "bob".into(),
        },
        RoomOp::Release { call_id: 9 },
    ];
    let calls = vec![
        RoomCall::AddMember {
            user_id: user,
            username: "ann".into(),
        },
        RoomCall::RemoveMember {
            user_id: user,
            removed_by: Some(Snowflake(1)),
        },
        RoomCall::DeleteMessage {
            message_id: Snowflake(40),
            by: user,
        },
        RoomCall::Updated {
            room: Box::new(record),
        },
        RoomCall::DeleteRoom { by: user },
        RoomCall::Members,
        RoomCall::DisconnectVoice {
            user_id: user,
            moved_to: Some(Snowflake(41)),
            by: Snowflake(1),
        },
    ];
    let deliveries = vec![
        RoomDelivery::ToSession {
            session_id: 7,
            last: Some(40),
            frames: b"{}\n".to_vec(),
        },
        RoomDelivery::Subscribed { session_id: 7 },
        RoomDelivery::Forget { session_id: 7 },
        RoomDelivery::Fanout {
            except_user: Some(user),
            last: Some(40),
            frames: b"{}\n".to_vec(),
        },
        RoomDelivery::Closed,
        RoomDelivery::CallResult {
            call_id: 1,
            result: Ok(CallAnswer::Joined(join_reply(
                room,
                vec![participant.clone()],
            ))),
        },
        RoomDelivery::CallResult {
            call_id: 2,
            result: Ok(CallAnswer::Done),
        },
        RoomDelivery::CallResult {
            call_id: 3,
            result: Ok(CallAnswer::Members(vec![participant])),
        },
        RoomDelivery::CallResult {
            call_id: 4,
            result: Err(ErrorBody::unavailable("moving")),
        },
        RoomDelivery::JoinLater { session_id: 7 },
        RoomDelivery::Released {
            call_id: 5,
            busy: true,
        },
    ];
    let presence = vec![
        PresenceOp::Attach { session_id: 7 },
        PresenceOp::Beat {
            session_id: 7,
            idle_ms: 10,
            chosen: Some(chosen),
        },
        PresenceOp::Detach { session_id: 7 },
        PresenceOp::Set { chosen },
        PresenceOp::InCall {
            channel: room,
            on: true,
            at_ms: 11,
        },
        PresenceOp::Probe { room },
        PresenceOp::FocusUntimed {
            session_id: 7,
            focused: true,
        },
        PresenceOp::Focus {
            session_id: 7,
            focused: true,
            at_ms: 1_700_000_000_000,
        },
        PresenceOp::Push {
            payload: crate::v1::push::PushPayload {
                kind: crate::v1::push::PushKind::Dm,
                room_id: room,
                message_id: Some(room),
                title: "ann".into(),
                body: "hi".into(),
                url: "/#/rooms/1".into(),
            },
            dedupe: 9,
            at_ms: 1_700_000_000_000,
        },
        PresenceOp::PushUntimed {
            payload: crate::v1::push::PushPayload {
                kind: crate::v1::push::PushKind::Call,
                room_id: room,
                message_id: None,
                title: "ann".into(),
                body: "calling".into(),
                url: "/#/rooms/1".into(),
            },
            dedupe: 10,
        },
    ];
    let mut all = vec![
        PeerMsg::Hello(member(3)),
        PeerMsg::Heartbeat {
            from: member(3),
            members: vec![member(1), member(3)],
        },
        PeerMsg::ToUser {
            user,
            frames: b"{}\n".to_vec(),
        },
        PeerMsg::ForUser {
            user,
            op: UserOp::Renamed {
                username: "bob".into(),
            },
        },
        PeerMsg::ForUser {
            user,
            op: UserOp::Close {
                family: Some("f".into()),
                code: 4001,
                reason: "logged out".into(),
            },
        },
        PeerMsg::Search {
            call_id: 12,
            rooms: vec![room, Snowflake(43)],
            query: crate::v1::search::IndexQuery {
                words: vec!["hello".into()],
                phrases: vec!["big world".into()],
                author: Some(user),
                has: vec![crate::v1::search::Has::Link],
                before: Some(2_000),
                after: Some(1_000),
                sort: crate::v1::search::SearchSort::Relevance,
                limit: 25,
            },
        },
        PeerMsg::SearchAnswer {
            call_id: 12,
            result: Ok(vec![crate::v1::search::SearchHit {
                message_id: Snowflake(50),
                room_id: room,
                user_id: user,
                username: "ann".into(),
                created_at: 1_500,
                snippet: "say hello".into(),
                highlights: vec![(4, 9)],
                score: 1.5,
            }]),
        },
        // Version 11 (swim): a SWIM packet's bytes.
        PeerMsg::Swim {
            packet: vec![0, 1, 2, 250],
        },
        PeerMsg::HandedOff { room },
    ];
    let to_room = |op| PeerMsg::ToRoom {
        room,
        origin: 1,
        hops: 2,
        op,
    };
    all.extend(ops.into_iter().map(to_room));
    all.extend(calls.into_iter().enumerate().map(|(i, call)| {
        to_room(RoomOp::Call {
            call_id: i as u64,
            call,
        })
    }));
    all.extend(
        deliveries
            .into_iter()
            .map(|delivery| PeerMsg::FromRoom { room, delivery }),
    );
    all.extend(
        presence
            .into_iter()
            .map(|op| PeerMsg::ToPresence { user, op }),
    );
    all
}
