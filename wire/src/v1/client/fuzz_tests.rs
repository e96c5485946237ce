//! Property (fuzz) tests of client frames: the envelope ([`ClientFrame::parse`]) and every
//! request's payload ([`ClientFrame::payload`]) over arbitrary text, arbitrary JSON in the
//! places the protocol expects objects, and mutations of valid frames. Each answer is a frame
//! or a clear error: INVALID_FRAME for the envelope, VALIDATION_ERROR naming the field for a
//! payload, the ack id kept whenever the envelope had one; never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::fuzzing::config;
use crate::v1::call::CallRequest;
use crate::v1::request::{ClientEvent, RequestFrame};
use crate::v1::rich::{DeleteMessage, MarkRead, PresenceUpdate, ReactionRequest, UpdateMessage};
use crate::v1::voice::{StageRequest, VoiceChannelRef, VoiceJoin, VoiceSignal, VoiceStateUpdate};

/// Every event a client may send, and a few that do not exist.
const EVENTS: &[&str] = &[
    "room:join",
    "room:leave",
    "message:send",
    "typing:start",
    "typing:stop",
    "ping",
    "message:update",
    "message:delete",
    "reaction:add",
    "reaction:remove",
    "message:read",
    "presence:update",
    "voice:join",
    "voice:signal",
    "voice:state",
    "voice:leave",
    "stage:hand_raise",
    "stage:promote",
    "stage:end",
    "call:start",
    "call:hangup",
    "call:",
    "stage:",
    "",
    "nope",
];

/// Field names of the payloads (so that generated objects hit real fields).
const FIELDS: &[&str] = &[
    "roomId",
    "content",
    "type",
    "nonce",
    "replyTo",
    "fileId",
    "messageId",
    "emoji",
    "status",
    "channelId",
    "sdp",
    "candidate",
    "muted",
    "deafened",
    "userId",
    "since",
    "epoch",
    "id",
    "data",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        // Strings that are, or almost are, ids, statuses, kinds and emoji.
        proptest::sample::select(vec![
            "1",
            "0",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "00001",
            " 1",
            "text",
            "file",
            "voice_note",
            "system",
            "online",
            "dnd",
            "in_call",
            "👍",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,16}".prop_map(Value::String),
        "[0-9]{1,22}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON, nested a few levels, objects keyed mostly by real field names.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A frame's JSON text: an envelope of a real or unknown event, with an arbitrary id and data
/// (sometimes missing), or some other JSON altogether.
fn frame_text() -> impl Strategy<Value = String> {
    let envelope = (
        proptest::sample::select(EVENTS),
        proptest::option::of(prop_oneof![
            3 => any::<u64>().prop_map(Value::from),
            1 => json_value(),
        ]),
        proptest::option::of(json_value()),
    )
        .prop_map(|(event, id, data)| {
            let mut frame = Map::new();
            frame.insert("type".into(), Value::from(event));
            if let Some(id) = id {
                frame.insert("id".into(), id);
            }
            if let Some(data) = data {
                frame.insert("data".into(), data);
            }
            Value::Object(frame).to_string()
        });
    prop_oneof![
        4 => envelope,
        1 => json_value().prop_map(|v| v.to_string()),
    ]
}

/// One edit of a text: replace, insert or remove a character, or cut the tail.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
}

fn json_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::sample::select(vec!['{', '}', '[', ']', '"', ':', ',', '\\', '0', '-', 'e', 'u', ' ']),
        1 => any::<char>(),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        3 => (any::<usize>(), json_char()).prop_map(|(i, c)| Edit::Set(i, c)),
        3 => (any::<usize>(), json_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(edit, 1..5)
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let n = chars.len();
        match *edit {
            Edit::Set(i, c) if n > 0 => chars[i % n] = c,
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Remove(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Truncate(i) => chars.truncate(i % (n + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// A payload that does not parse is a VALIDATION_ERROR with a message, the frame's ack id,
/// and a `details.field` that is a non-empty string when present.
fn check_payload<R: serde::de::DeserializeOwned>(
    frame: &ClientFrame<'_>,
) -> Result<(), TestCaseError> {
    if let Err(e) = frame.payload::<R>() {
        prop_assert_eq!(e.id, frame.id);
        prop_assert_eq!(e.error.code, ErrorCode::ValidationError);
        prop_assert!(!e.error.message.is_empty());
        if let Some(details) = &e.error.details {
            let field = details["field"].as_str().unwrap_or_default();
            prop_assert!(!field.is_empty(), "details without a field: {}", details);
        }
    }
    Ok(())
}

/// Parses `text` as a client frame and, if the envelope holds, its payload as every request.
fn check_frame(text: &str) -> Result<(), TestCaseError> {
    let frame = match ClientFrame::parse(text) {
        Ok(frame) => frame,
        Err(e) => {
            prop_assert_eq!(e.error.code, ErrorCode::InvalidFrame);
            prop_assert!(e.error.message.starts_with("malformed frame"));
            return Ok(());
        }
    };
    check_payload::<JoinRoom>(&frame)?;
    check_payload::<LeaveRoom>(&frame)?;
    check_payload::<SendMessage>(&frame)?;
    check_payload::<Typing>(&frame)?;
    check_payload::<Ping>(&frame)?;
    check_payload::<UpdateMessage>(&frame)?;
    check_payload::<DeleteMessage>(&frame)?;
    check_payload::<ReactionRequest>(&frame)?;
    check_payload::<MarkRead>(&frame)?;
    check_payload::<PresenceUpdate>(&frame)?;
    check_payload::<VoiceJoin>(&frame)?;
    check_payload::<VoiceSignal>(&frame)?;
    check_payload::<VoiceStateUpdate>(&frame)?;
    check_payload::<VoiceChannelRef>(&frame)?;
    check_payload::<StageRequest>(&frame)?;
    check_payload::<CallRequest>(&frame)?;
    // The one parse the server does: a request, or one of the three errors of a bad frame.
    match RequestFrame::parse(text) {
        Ok(parsed) => prop_assert_eq!(parsed.id, frame.id),
        Err(e) => {
            prop_assert_eq!(e.id, frame.id);
            prop_assert!(
                matches!(
                    e.error.code,
                    ErrorCode::UnknownEvent | ErrorCode::ValidationError
                ),
                "{:?}",
                e
            );
        }
    }
    Ok(())
}

fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Text),
        Just(MessageType::File),
        Just(MessageType::VoiceNote),
        Just(MessageType::System),
    ]
}

fn send_message() -> impl Strategy<Value = SendMessage> {
    let id = || any::<u64>().prop_map(Snowflake);
    (
        id(),
        "\\PC{0,40}",
        message_type(),
        proptest::option::of("\\PC{0,12}"),
        proptest::option::of(id()),
        proptest::option::of(id()),
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

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_text_is_a_frame_or_a_clear_error(text in "\\PC{0,64}") {
        check_frame(&text)?;
    }

    #[test]
    fn arbitrary_json_frames_parse_or_name_the_problem(text in frame_text()) {
        check_frame(&text)?;
    }

    #[test]
    fn mutated_frames_parse_or_name_the_problem(text in frame_text(), edits in edits()) {
        check_frame(&mutate(&text, &edits))?;
    }

    #[test]
    fn an_unparseable_envelope_keeps_its_ack_id(
        id in any::<u64>(),
        // Anything but a string (a string is wrapped in an array).
        bad_type in json_value().prop_map(|v| if v.is_string() { Value::Array(vec![v]) } else { v }),
    ) {
        let text = json!({"type": bad_type, "id": id}).to_string();
        let e = ClientFrame::parse(&text).expect_err("type is not a string");
        prop_assert_eq!(e.id, Some(id));
        prop_assert_eq!(e.error.code, ErrorCode::InvalidFrame);
    }

    #[test]
    fn valid_messages_round_trip(send in send_message(), id in proptest::option::of(any::<u64>())) {
        let event = ClientEvent::SendMessage.name();
        let text = json!({"type": event, "id": id, "data": send}).to_string();
        let frame = ClientFrame::parse(&text).expect("envelope");
        prop_assert_eq!(frame.event, event);
        prop_assert_eq!(frame.id, id);
        let back: SendMessage = frame.payload().expect("payload");
        prop_assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&send).expect("json")
        );
    }

    #[test]
    fn ids_round_trip_and_only_decimal_u64_strings_are_ids(n in any::<u64>(), s in "[0-9+-]{0,22}|\\PC{0,22}") {
        let id = Snowflake(n);
        prop_assert_eq!(Snowflake::parse(&id.to_string()), Some(id));
        let json = serde_json::to_string(&id).expect("json");
        prop_assert_eq!(serde_json::from_str::<Snowflake>(&json).ok(), Some(id));
        let expected = (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok().map(Snowflake))
            .flatten();
        prop_assert_eq!(Snowflake::parse(&s), expected);
        let quoted = serde_json::to_string(&s).expect("json");
        prop_assert_eq!(serde_json::from_str::<Snowflake>(&quoted).ok(), expected);
    }
}

/// An event name written with JSON escapes cannot be borrowed from the frame: it is refused
/// as malformed (with its id), not mistaken for another event.
#[test]
fn an_escaped_event_name_is_a_clear_error() {
    let e = ClientFrame::parse(r#"{"type":"pin\u0067","id":4}"#).expect_err("escaped");
    assert_eq!(e.error.code, ErrorCode::InvalidFrame);
    assert_eq!(e.id, Some(4));
}
