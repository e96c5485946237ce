//! Voice in community channels, with real WebRTC peers: `connect` is needed to join, an
//! override taking `speak` away silences a live participant at the SFU at once (the owner
//! is still heard), a stage channel's hosts are its stage moderators, and a server mute or
//! deafen applies to a live participant at once.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::community::{call, code, found, item, text};
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

/// Pumps both until each heard the other at least 20 packets (20 s at most).
async fn until_heard(a: &mut Participant, b: &mut Participant) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while a.media.from(b.session) < 20 || b.media.from(a.session) < 20 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "never heard each other"
        );
        pump_all(&mut [&mut *a, &mut *b], Duration::from_millis(300)).await?;
    }
    Ok(())
}

/// A test of one frame: which participant got it (0: `a`), and the frame.
type FramePred<'a> = Box<dyn Fn(usize, &serde_json::Value) -> bool + 'a>;

/// Pumps both until each of `preds` held for some frame one of them got; 10 s at most.
async fn until_frames(
    a: &mut Participant,
    b: &mut Participant,
    preds: Vec<FramePred<'_>>,
) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut met = vec![false; preds.len()];
    while met.iter().any(|m| !m) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "frames never came: {met:?}"
        );
        let seen = pump_all(&mut [&mut *a, &mut *b], Duration::from_millis(200)).await?;
        for (i, frames) in seen.iter().enumerate() {
            for frame in frames {
                for (pred, met) in preds.iter().zip(met.iter_mut()) {
                    *met |= pred(i, frame);
                }
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_mute_and_deafen_apply_at_once_until_lifted() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let other = node.register("other").await?;
    let id = found(&node, &owner, "Moderated", &[&member, &other]).await?;
    let lounge = channel(&node, &owner, &id, "voice").await?;
    let mut o = Participant::join(&node, &owner, &lounge).await?;
    let mut m = Participant::join(&node, &member, &lounge).await?;
    let (os, ms) = (o.session, m.session);
    until_heard(&mut o, &mut m).await?;

    // Without mute_members (and on the owner), refused; a body saying nothing, refused.
    let on_owner = format!("/communities/{id}/members/{}/voice", owner.id);
    let on_member = format!("/communities/{id}/members/{}/voice", member.id);
    let (status, body) = call(
        &node,
        Method::PUT,
        &on_owner,
        &other,
        Some(json!({"mute": true})),
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = call(&node, Method::PUT, &on_member, &owner, Some(json!({}))).await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );

    // Server mute: the member is told, everyone sees them muted, nobody hears them; they
    // still hear the owner.
    let (status, body) = call(
        &node,
        Method::PUT,
        &on_member,
        &owner,
        Some(json!({"mute": true})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["mute"], true, "{body}");
    let member_id = member.id.clone();
    let told: FramePred =
        Box::new(|i, f| i == 1 && f["type"] == "voice:moderated" && f["data"]["mute"] == true);
    let shown: FramePred = Box::new(|i, f| {
        i == 0
            && f["type"] == "voice:state"
            && f["data"]["userId"] == member_id.as_str()
            && f["data"]["muted"] == true
    });
    until_frames(&mut o, &mut m, vec![told, shown]).await?;
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let from_member = heard(&mut o, &mut m, Duration::from_secs(2), (true, ms)).await?;
    let from_owner = heard(&mut o, &mut m, Duration::from_secs(2), (false, os)).await?;
    assert_eq!(from_member, 0, "a server-muted member is not heard");
    assert!(from_owner > 20, "they still hear: {from_owner}");

    // Deafened instead: heard again, but they hear nobody.
    let (status, body) = call(
        &node,
        Method::PUT,
        &on_member,
        &owner,
        Some(json!({"mute": false, "deafen": true})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let from_member = heard(&mut o, &mut m, Duration::from_secs(2), (true, ms)).await?;
    let from_owner = heard(&mut o, &mut m, Duration::from_secs(2), (false, os)).await?;
    assert!(from_member > 20, "unmuted: {from_member}");
    assert_eq!(from_owner, 0, "a server-deafened member hears nobody");
    let (_, members) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/members"),
        &owner,
        None,
    )
    .await?;
    let row = item(&members, "userId", &member.id);
    assert_eq!(
        (&row["voiceMuted"], &row["voiceDeafened"]),
        (&json!(false), &json!(true)),
        "{row}"
    );

    // Lifted: they hear the owner again.
    let (status, _) = call(
        &node,
        Method::PUT,
        &on_member,
        &owner,
        Some(json!({"deafen": false})),
    )
    .await?;
    assert_eq!(status, 200);
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let from_owner = heard(&mut o, &mut m, Duration::from_secs(2), (false, os)).await?;
    assert!(from_owner > 20, "undeafened: {from_owner}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_moves_a_participant_to_another_voice_channel() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let other = node.register("other").await?;
    let id = found(&node, &owner, "Moving", &[&member, &other]).await?;
    let lounge = channel(&node, &owner, &id, "voice").await?;
    let den = channel(&node, &owner, &id, "voice").await?;
    let text_channel = channel(&node, &owner, &id, "text").await?;
    let mut o = Participant::join(&node, &owner, &lounge).await?;
    let mut m = Participant::join(&node, &member, &lounge).await?;
    until_heard(&mut o, &mut m).await?;

    let path = format!("/communities/{id}/members/{}/voice/move", member.id);
    let to_den = json!({"fromChannelId": lounge, "toChannelId": den});
    // Without move_members, refused; into a text channel, refused; someone not in the
    // channel, not found.
    let (status, body) = call(&node, Method::POST, &path, &other, Some(to_den.clone())).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let to_text = json!({"fromChannelId": lounge, "toChannelId": text_channel});
    let (status, body) = call(&node, Method::POST, &path, &owner, Some(to_text)).await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let absent = json!({"fromChannelId": den, "toChannelId": lounge});
    let (status, body) = call(&node, Method::POST, &path, &owner, Some(absent)).await?;
    assert_eq!((status, code(&body)), (404, Some("NOT_FOUND")), "{body}");

    // The move: the member's session is told where to go, the owner sees them leave.
    let (status, body) = call(&node, Method::POST, &path, &owner, Some(to_den)).await?;
    assert_eq!(status, 200, "{body}");
    let (member_id, den_id) = (member.id.clone(), den.clone());
    let told: FramePred = Box::new(|i, f| {
        i == 1 && f["type"] == "voice:moved" && f["data"]["toChannelId"] == den_id.as_str()
    });
    let left: FramePred = Box::new(|i, f| {
        i == 0
            && f["type"] == "voice:user_left"
            && f["data"]["userId"] == member_id.as_str()
            && f["data"]["reason"] == "moved"
    });
    until_frames(&mut o, &mut m, vec![told, left]).await?;
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(500)).await?;
    let ms = m.session;
    let from_member = heard(&mut o, &mut m, Duration::from_secs(2), (true, ms)).await?;
    assert_eq!(from_member, 0, "no longer in the lounge");

    // The member's client joins the den, as the web client does on voice:moved (the join's
    // ack is checked by `Participant::join`).
    let moved = Participant::join(&node, &member, &den).await?;
    assert_eq!(moved.channel, den);
    let (_, log) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/audit-log?action=member.voice_move"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(log["data"][0]["targetId"], member.id.as_str(), "{log}");
    Ok(())
}
