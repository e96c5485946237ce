//! Video in a voice channel end to end: a real node, WebSocket signalling and real WebRTC
//! peers (the `webrtc` crate, on loopback). A participant turns the camera on with
//! `voice:state`; everyone is told, the others get its VP8 frames on a track of their own; a
//! second publisher beyond `max_video_publishers` is refused; `voice:subscribe` pauses and
//! resumes one subscriber's copy. In a community channel, the `video` permission decides, and
//! losing it stops a live camera with a `voice:state` to everyone.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::TestNode;
use common::community::{call, found, text};
use common::voice::{Participant, pump_all, voice};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_reaches_the_others_until_paused_and_the_cap_refuses_one_more() -> Result<()> {
    let config = voice(0).replace(
        "[voice]\n",
        "[voice]\nmax_video_publishers = 1\nvideo_max_kbps = 800\n",
    );
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let channel = node.create_voice_room(&alice, "Studio", "voice").await?;
    let mut a = Participant::join_with_camera(&node, &alice, &channel).await?;
    let mut b = Participant::join_with_camera(&node, &bob, &channel).await?;
    let track = format!("camera-{}", a.session);

    let on =
        a.ws.request("voice:state", json!({"channelId": channel, "video": true}))
            .await?;
    assert_eq!(on["ok"], true, "{on}");
    assert_eq!(on["data"]["video"], true, "{on}");
    assert_eq!(on["data"]["screen"], false, "{on}");
    a.media.send_video();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut told = false;
    loop {
        let seen = pump_all(&mut [&mut a, &mut b], Duration::from_millis(300)).await?;
        told |= seen[1].iter().any(|f| {
            f["type"] == "voice:state"
                && f["data"]["userId"] == alice.id.as_str()
                && f["data"]["video"] == true
        });
        // The SFU asked for a keyframe (PLI) when Bob's track was ready; the test peer
        // cannot read RTCP, so it is sent on a timer here.
        a.media
            .keyframe
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (packets, keyframes) = b.media.video_from(&track);
        if told && packets > 20 && keyframes > 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("no video at bob: told {told}, {packets} packets, {keyframes} keyframes");
        }
    }
    assert_eq!(a.media.video_from(&track), (0, 0), "nobody sees themselves");

    // One publisher is the cap: Bob's camera is refused with a stable code.
    let refused =
        b.ws.request("voice:state", json!({"channelId": channel, "video": true}))
            .await?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "ROOM_FULL", "{refused}");

    // Bob pauses Alice's camera: the frames stop; resuming brings them back.
    let paused =
        b.ws.request(
            "voice:subscribe",
            json!({"channelId": channel, "userId": alice.id, "track": "camera", "paused": true}),
        )
        .await?;
    assert_eq!(paused["ok"], true, "{paused}");
    pump_all(&mut [&mut a, &mut b], Duration::from_millis(300)).await?;
    let before = b.media.video_from(&track).0;
    pump_all(&mut [&mut a, &mut b], Duration::from_millis(800)).await?;
    assert_eq!(b.media.video_from(&track).0, before, "paused");
    let resumed =
        b.ws.request(
            "voice:subscribe",
            json!({"channelId": channel, "userId": alice.id, "track": "camera", "paused": false}),
        )
        .await?;
    assert_eq!(resumed["ok"], true, "{resumed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.media.video_from(&track).0 < before + 10 {
        if Instant::now() > deadline {
            bail!("video did not resume");
        }
        pump_all(&mut [&mut a, &mut b], Duration::from_millis(300)).await?;
    }

    // Bad input: a user who is not in the channel, a track that does not exist.
    let nobody =
        b.ws.request(
            "voice:subscribe",
            json!({"channelId": channel, "userId": "12345", "track": "camera", "paused": true}),
        )
        .await?;
    assert_eq!(nobody["error"]["code"], "VALIDATION_ERROR", "{nobody}");
    let bad =
        b.ws.request(
            "voice:subscribe",
            json!({"channelId": channel, "userId": alice.id, "track": "hologram", "paused": true}),
        )
        .await?;
    assert_eq!(bad["ok"], false, "{bad}");

    // Alice turns her camera off: Bob may now publish.
    let off =
        a.ws.request("voice:state", json!({"channelId": channel, "video": false}))
            .await?;
    assert_eq!(off["data"]["video"], false, "{off}");
    let now_ok =
        b.ws.request("voice:state", json!({"channelId": channel, "video": true}))
            .await?;
    assert_eq!(now_ok["ok"], true, "{now_ok}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_community_channel_video_needs_the_video_permission() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Cameras", &[&member]).await?;
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "studio", "kind": "voice"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    let studio = text(&body, "/data/id");
    // @everyone may speak here but not show video.
    let (status, reply) = call(
        &node,
        Method::PUT,
        &format!("/communities/{id}/channels/{studio}/overwrites/{id}"),
        &owner,
        Some(json!({"type": "role", "deny": ["video"]})),
    )
    .await?;
    anyhow::ensure!(status == 200, "{reply}");
    let mut o = Participant::join_with_camera(&node, &owner, &studio).await?;
    let mut m = Participant::join_with_camera(&node, &member, &studio).await?;
    let refused =
        m.ws.request("voice:state", json!({"channelId": studio, "video": true}))
            .await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let screen =
        m.ws.request("voice:state", json!({"channelId": studio, "screen": true}))
            .await?;
    assert_eq!(screen["error"]["code"], "FORBIDDEN", "{screen}");
    // Muting still works for them; the owner passes every override.
    let muted =
        m.ws.request("voice:state", json!({"channelId": studio, "muted": true}))
            .await?;
    assert_eq!(muted["data"]["muted"], true, "{muted}");
    let on =
        o.ws.request("voice:state", json!({"channelId": studio, "video": true}))
            .await?;
    assert_eq!(on["data"]["video"], true, "{on}");
    pump_all(&mut [&mut o, &mut m], Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_video_permission_stops_a_live_camera_and_tells_the_channel() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Cameras", &[&member]).await?;
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "studio", "kind": "voice"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    let studio = text(&body, "/data/id");
    let mut o = Participant::join_with_camera(&node, &owner, &studio).await?;
    let mut m = Participant::join_with_camera(&node, &member, &studio).await?;
    let on =
        m.ws.request("voice:state", json!({"channelId": studio, "video": true}))
            .await?;
    assert_eq!(on["data"]["video"], true, "{on}");
    // @everyone loses `video`: the member's camera stops, and everyone is told.
    let (status, reply) = call(
        &node,
        Method::PUT,
        &format!("/communities/{id}/channels/{studio}/overwrites/{id}"),
        &owner,
        Some(json!({"type": "role", "deny": ["video"]})),
    )
    .await?;
    anyhow::ensure!(status == 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = pump_all(&mut [&mut o, &mut m], Duration::from_millis(200)).await?;
        let stopped = seen[0].iter().any(|f| {
            f["type"] == "voice:state"
                && f["data"]["userId"] == member.id.as_str()
                && f["data"]["video"] == false
        });
        if stopped {
            break;
        }
        if Instant::now() > deadline {
            bail!("the owner was not told the member's camera stopped");
        }
    }
    let again =
        m.ws.request("voice:state", json!({"channelId": studio, "video": true}))
            .await?;
    assert_eq!(again["error"]["code"], "FORBIDDEN", "{again}");
    Ok(())
}
