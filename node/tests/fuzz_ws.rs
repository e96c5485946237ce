//! Fuzzing the client protocol end to end: a real node, real WebSockets, and batches of
//! arbitrary and mutated frames for every event (with real room, channel, user and message ids
//! mixed in so that payloads reach the rooms and the voice channel). After each frame a `ping`
//! must be answered on the same connection: the session parsed the frame, answered or ignored
//! it, and is still there. At the end no actor has crashed and the node still serves.
//!
//! CI runs 128 batches; `VOICEFLOW_FUZZ_SCALE=100` (or `PROPTEST_CASES=N`) runs more.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{FAST_CONFIG, TestNode, WsClient};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

const CI_CASES: u32 = 128;

/// The test's proptest configuration (the same rules as the unit fuzz tests).
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        let scale = std::env::var("VOICEFLOW_FUZZ_SCALE")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        config.cases = CI_CASES.saturating_mul(scale);
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x5eed_f00d_0015);
    }
    config.max_shrink_time = 60_000;
    config
}

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
    "stage:hand_lower",
    "stage:promote",
    "stage:demote",
    "stage:kick",
    "stage:ban",
    "stage:end",
    "call:start",
    "call:accept",
    "call:decline",
    "call:cancel",
    "call:hangup",
    "nope",
];

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
];

/// Leaves: scalars, and the ids of the world (so that requests reach real rooms).
fn leaf(ids: Vec<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        3 => proptest::sample::select(ids).prop_map(Value::String),
        1 => proptest::sample::select(vec![
            "hi", "text", "file", "voice_note", "system", "online", "away", "dnd", "in_call",
            "👍", "", "0", "-1", "18446744073709551616", "v=0\r\n",
            "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        1 => "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn json_value(ids: Vec<String>) -> impl Strategy<Value = Value> {
    leaf(ids).prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..5).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

/// A client frame: an envelope of a real event (usually with an id and an object of real
/// fields), possibly mutated character by character.
fn frame(ids: Vec<String>) -> impl Strategy<Value = String> {
    let data = proptest::collection::vec(
        (proptest::sample::select(FIELDS), json_value(ids.clone())),
        0..5,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let envelope = (
        proptest::sample::select(EVENTS),
        proptest::option::of(1u64..1_000_000),
        prop_oneof![4 => data, 1 => json_value(ids)],
    )
        .prop_map(|(event, id, data)| {
            let mut frame = Map::new();
            frame.insert("type".into(), event.into());
            if let Some(id) = id {
                frame.insert("id".into(), id.into());
            }
            frame.insert("data".into(), data);
            Value::Object(frame).to_string()
        });
    let edits = proptest::collection::vec(
        (
            any::<usize>(),
            prop_oneof![
                proptest::sample::select(vec!['{', '}', '[', ']', '"', ':', ',', '\\', '1']),
                any::<char>()
            ],
            0u8..3,
        ),
        0..3,
    );
    (envelope, edits).prop_map(|(text, edits)| {
        let mut chars: Vec<char> = text.chars().collect();
        for (i, c, op) in edits {
            let n = chars.len();
            match op {
                0 if n > 0 => chars[i % n] = c,
                1 => chars.insert(i % (n + 1), c),
                _ if n > 0 => {
                    chars.remove(i % n);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// Ids of pings that follow each fuzzed frame (fuzzed ids stay below a million).
const BARRIER_IDS: u64 = 1 << 40;

/// Sends `frames`, each followed by a ping that must be answered on the same connection.
async fn run_batch(ws: &mut WsClient, frames: &[String], batch: u64) -> Result<()> {
    for (i, text) in frames.iter().enumerate() {
        ws.send_raw(text).await?;
        let barrier = BARRIER_IDS + batch * 100 + i as u64;
        ws.send_raw(&json!({"type": "ping", "id": barrier}).to_string())
            .await?;
        let ack = ws
            .ack(barrier)
            .await
            .map_err(|e| anyhow::anyhow!("no answer to the ping after {text:?}: {e}"))?;
        anyhow::ensure!(ack["ok"] == true, "{ack}");
        // Everything the server sent was JSON (checked by the client); the rest is not needed.
        ws.backlog.clear();
    }
    Ok(())
}

/// The sum of a labelled counter in the node's `/metrics`.
async fn counter_sum(node: &TestNode, name: &str) -> Result<f64> {
    Ok(node
        .metrics_text()
        .await?
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum())
}

#[test]
fn arbitrary_client_frames_are_answered_and_break_nothing() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let node_config = format!("{FAST_CONFIG}max_invalid_frames = 1000000000\n");
    let node = rt.block_on(TestNode::start_with(&node_config))?;
    let (alice, ids) = rt.block_on(async {
        let alice = node.register("alice").await?;
        let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
        let channel = node.create_voice_room(&alice, "Voice", "voice").await?;
        let stage = node.create_voice_room(&alice, "Stage", "stage").await?;
        let mut ws = node.ws(&alice).await?;
        ws.request("room:join", json!({"roomId": room})).await?;
        let sent = ws
            .request("message:send", json!({"roomId": room, "content": "hello"}))
            .await?;
        let message = sent["data"]["message"]["id"]
            .as_str()
            .unwrap_or("1")
            .to_owned();
        let ids = vec![room, channel, stage, message, alice.id.clone()];
        anyhow::Ok((alice, ids))
    })?;

    let mut runner = TestRunner::new(config());
    let strategy = proptest::collection::vec(frame(ids), 1..8);
    let batches = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |frames| {
        batches.set(batches.get() + 1);
        rt.block_on(async {
            let mut ws = node.ws(&alice).await?;
            run_batch(&mut ws, &frames, batches.get()).await
        })
        .map_err(|e| TestCaseError::fail(format!("{e:#}")))
    });
    if let Err(e) = result {
        anyhow::bail!("{e}");
    }

    rt.block_on(async {
        assert_eq!(
            counter_sum(&node, "voiceflow_actor_crashes_total").await?,
            0.0,
            "an actor crashed"
        );
        // The node still does its job.
        let mut ws = node.ws(&alice).await?;
        let pong =
            tokio::time::timeout(Duration::from_secs(10), ws.request("ping", json!({}))).await??;
        assert_eq!(pong["ok"], true);
        anyhow::Ok(())
    })
}
