//! Property (fuzz) tests of the WebSocket front door's checks on raw client text (the limits
//! before the parse, then the frame's one parse): [`nesting_exceeds`] against the real depth of the JSON, [`ConnectionGate`]'s
//! verdict on arbitrary and mutated frames, and [`client_ip`] on arbitrary `X-Forwarded-For`.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::fuzzing::config;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Brackets, quotes and backslashes inside strings must not count as nesting.
        "[\\[\\]{}\"\\\\a ]{0,8}".prop_map(Value::String),
        "\\PC{0,8}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[\\[{\"a]{0,3}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The nesting depth of a parsed value (a scalar is 0, `[]` is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The gate of a node with small limits: 256-byte frames, depth 6, no rate limits (those
/// have their own tests), and invalid frames never closing the connection.
fn gate_limits(rate_limits: bool) -> Limits {
    let config = Config::from_toml(&format!(
        "ws_max_frame_bytes = 256\nmax_invalid_frames = 1000000000\n\
         [limits]\nmax_json_depth = 6\nrate_limits = {rate_limits}\n\
         connection_events = 50\nconnection_close_factor = 0\nmessages_per_sec = 5\n"
    ))
    .expect("config");
    Limits::new(&config)
}

fn frame_text() -> impl Strategy<Value = String> {
    let events = proptest::sample::select(vec![
        "ping",
        "message:send",
        "room:join",
        "voice:signal",
        "nope",
    ]);
    prop_oneof![
        3 => (events, proptest::option::of(any::<u64>()), json_value()).prop_map(
            |(event, id, data)| json!({"type": event, "id": id, "data": data}).to_string()
        ),
        1 => "\\PC{0,300}",
        1 => (1usize..40).prop_map(|n| format!(
            r#"{{"type":"ping","id":7,"data":{}1{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )),
    ]
}

fn mutate(text: &str, edits: &[(usize, char, bool)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(i, c, insert) in edits {
        let n = chars.len();
        if insert {
            chars.insert(i % (n + 1), c);
        } else if n > 0 {
            chars[i % n] = c;
        }
    }
    chars.into_iter().collect()
}

/// The verdict on one frame: forwarded frames are within the limits; refusals are one error
/// frame of a front-door code, with the frame's ack id when its envelope had one.
fn check_verdict(
    limits: &Limits,
    gate: &mut ConnectionGate,
    text: &str,
) -> Result<(), TestCaseError> {
    match gate.check_text(limits, Snowflake(1), text) {
        Verdict::Forward(frame) => {
            prop_assert!(text.len() <= 256);
            prop_assert!(!nesting_exceeds(text.as_bytes(), 6));
            prop_assert_eq!(frame.id, envelope_id(text));
        }
        Verdict::Refuse(frame) => {
            let answer: Value = serde_json::from_str(frame.as_str()).expect("json answer");
            let error = if answer["type"] == "ack" {
                &answer["error"]
            } else {
                &answer["data"]
            };
            let code = error["code"].as_str().unwrap_or_default();
            let message = error["message"].as_str().unwrap_or_default();
            // Refused before the parse: the envelope's id; by the parse: the id it found.
            let id = if matches!(code, "PAYLOAD_TOO_LARGE" | "RATE_LIMITED")
                || message.contains("nested too deeply")
            {
                envelope_id(text)
            } else {
                RequestFrame::parse(text).err().and_then(|e| e.id)
            };
            if answer["type"] == "ack" {
                prop_assert_eq!(answer["ok"].as_bool(), Some(false));
                prop_assert_eq!(answer["id"].as_u64(), id);
            } else {
                prop_assert_eq!(answer["type"].as_str(), Some("error"));
                prop_assert_eq!(id, None);
            }
            prop_assert!(
                matches!(
                    code,
                    "PAYLOAD_TOO_LARGE"
                        | "INVALID_FRAME"
                        | "RATE_LIMITED"
                        | "UNKNOWN_EVENT"
                        | "VALIDATION_ERROR"
                ),
                "unexpected code {}",
                code
            );
            prop_assert!(!error["message"].as_str().unwrap_or_default().is_empty());
        }
        Verdict::Close(_, reason) => {
            prop_assert!(false, "closed with {:?}", reason);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn nesting_is_the_depth_of_the_json(value in json_value(), max in 0usize..14) {
        let text = value.to_string();
        prop_assert_eq!(nesting_exceeds(text.as_bytes(), max), depth(&value) > max);
    }

    #[test]
    fn nesting_of_arbitrary_bytes_is_monotone(bytes in proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(b"[]{}\"\\ a".to_vec()),
            1 => any::<u8>(),
        ],
        0..200,
    ), max in 0usize..16) {
        if nesting_exceeds(&bytes, max + 1) {
            prop_assert!(nesting_exceeds(&bytes, max));
        }
        let opens = bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count();
        if opens <= max {
            prop_assert!(!nesting_exceeds(&bytes, max));
        }
    }

    #[test]
    fn the_gate_forwards_or_refuses_arbitrary_frames(
        texts in proptest::collection::vec(frame_text(), 1..8),
        edits in proptest::collection::vec((any::<usize>(), any::<char>(), any::<bool>()), 0..4),
        rate_limits in any::<bool>(),
    ) {
        let limits = gate_limits(rate_limits);
        let mut gate = limits.connection();
        for text in &texts {
            check_verdict(&limits, &mut gate, &mutate(text, &edits))?;
        }
    }

    #[test]
    fn the_client_address_is_the_peer_or_a_forwarded_entry(
        peer in any::<[u8; 4]>(),
        entries in proptest::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(|ip| IpAddr::from(ip).to_string()),
                Just("10.0.0.1".to_owned()),
                "\\PC{0,12}",
            ],
            0..6,
        ),
        trust_peer in any::<bool>(),
    ) {
        let peer = IpAddr::from(peer);
        let mut trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().expect("ip")];
        if trust_peer {
            trusted.push(peer);
        }
        let forwarded = entries.join(",");
        let ip = client_ip(peer, Some(&forwarded), &trusted);
        if !trusted.contains(&peer) {
            prop_assert_eq!(ip, peer);
        } else {
            prop_assert!(
                ip == peer || entries.iter().any(|e| e.trim().parse::<IpAddr>() == Ok(ip)),
                "{} came from nowhere", ip
            );
        }
    }
}

/// A frame nested far deeper than serde_json's own recursion limit is refused by the byte
/// scan (no parse, no stack growth).
#[test]
fn nesting_far_past_the_parser_limit_is_refused_without_parsing() {
    let deep = format!(
        r#"{{"type":"ping","id":3,"data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(nesting_exceeds(deep.as_bytes(), 32));
    let limits = Limits::new(&Config::from_toml("ws_max_frame_bytes = 1000000\n").expect("config"));
    match limits.connection().check_text(&limits, Snowflake(1), &deep) {
        Verdict::Refuse(frame) => assert!(frame.as_str().contains("INVALID_FRAME")),
        other => panic!("{other:?}"),
    }
}
