//! Voice in community channels, with real WebRTC peers: `connect` is needed to join, an
//! override taking `speak` away silences a live participant at the SFU at once (the owner
//! is still heard), and a stage channel's hosts are its stage moderators.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::community::{call, found, text};
use common::voice::{Participant, pump_all, voice};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::json;
use voiceflow_media::testing::Client;

/// A channel of `kind` in community `id`, made by `owner`; its id.
async fn channel(node: &TestNode, owner: &User, id: &str, kind: &str) -> Result<String> {
    let (status, body) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        owner,
        Some(json!({"name": format!("{kind} room"), "kind": kind})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    Ok(text(&body, "/data/id"))
}

/// Sets the `@everyone` override of `channel` to `body`.
async fn everyone(
    node: &TestNode,
    owner: &User,
    (id, channel): (&str, &str),
    body: serde_json::Value,
) -> Result<()> {
    let path = format!("/communities/{id}/channels/{channel}/overwrites/{id}");
    let (status, reply) = call(node, Method::PUT, &path, owner, Some(body)).await?;
    anyhow::ensure!(status == 200, "{reply}");
    Ok(())
}

/// Pumps both for `wait`; packets `listener` received from `speaker` meanwhile.
async fn heard(
    a: &mut Participant,
    b: &mut Participant,
    wait: Duration,
    (listener_is_a, speaker): (bool, u64),
) -> Result<u32> {
    let before = match listener_is_a {
        true => a.media.from(speaker),
        false => b.media.from(speaker),
    };
    pump_all(&mut [&mut *a, &mut *b], wait).await?;
    let after = match listener_is_a {
        true => a.media.from(speaker),
        false => b.media.from(speaker),
    };
    Ok(after - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_and_connect_follow_the_channel_and_stage_moderators_host() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Voices", &[&member]).await?;
    let lounge = channel(&node, &owner, &id, "voice").await?;

    // Without connect, no joining.
    everyone(
        &node,
        &owner,
        (&id, &lounge),
        json!({"type": "role", "deny": ["connect"]}),
    )
    .await?;
    let mut ws = node.ws(&member).await?;
    let refused = ws
        .request("voice:join", json!({"channelId": lounge, "sdp": "v=0"}))
        .await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    everyone(&node, &owner, (&id, &lounge), json!({"type": "role"})).await?;

    // Both heard; then speak is taken from @everyone and the member falls silent at once.
    let mut o = Participant::join(&node, &owner, &lounge).await?;
    let mut m = Participant::join(&node, &member, &lounge).await?;
    let (os, ms) = (o.session, m.session);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while o.media.from(m.session) < 20 || m.media.from(o.session) < 20 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "never heard each other"
        );
        pump_all(&mut [&mut o, &mut m], Duration::from_millis(300)).await?;
    }
    everyone(
        &node,
        &owner,
        (&id, &lounge),
        json!({"type": "role", "deny": ["speak"]}),
    )
    .await?;
    // What was in flight when the rights changed drains first.
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let from_member = heard(&mut o, &mut m, Duration::from_secs(2), (true, ms)).await?;
    let from_owner = heard(&mut o, &mut m, Duration::from_secs(2), (false, os)).await?;
    assert_eq!(from_member, 0, "the member is silenced");
    assert!(
        from_owner > 20,
        "the owner passes every override: {from_owner}"
    );
    everyone(&node, &owner, (&id, &lounge), json!({"type": "role"})).await?;
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let again = heard(&mut o, &mut m, Duration::from_secs(2), (true, ms)).await?;
    assert!(again > 20, "speak given back: {again}");

    // A stage channel: its stage moderators host, everyone else listens.
    let stage = channel(&node, &owner, &id, "stage").await?;
    let mut listener = node.ws(&member).await?;
    let media = Client::new(1).await?;
    let offer = media.offer().await?;
    let ack = listener
        .request("voice:join", json!({"channelId": stage, "sdp": offer}))
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let me = ack["data"]["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["userId"] == member.id.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["role"], "listener", "{ack}");
    media.close().await?;
    let mut host = node.ws(&owner).await?;
    let media = Client::new(2).await?;
    let offer = media.offer().await?;
    let ack = host
        .request("voice:join", json!({"channelId": stage, "sdp": offer}))
        .await?;
    let me = ack["data"]["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["userId"] == owner.id.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["role"], "host", "the owner moderates the stage: {ack}");
    media.close().await?;
    Ok(())
}
