//! Voice channels end to end: a real node, WebSocket signalling, and real WebRTC peers
//! (the `webrtc` crate, in this process, on loopback) that send Opus RTP with audio levels.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::TestNode;
use common::voice::{Participant, pump_all, voice};
use serde_json::{Value, json};
use voiceflow_media::testing::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_talk_in_a_voice_channel_over_the_sfu() -> Result<()> {
    let node = TestNode::start_with(&voice(47000)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let channel = node.create_voice_room(&alice, "Lounge", "voice").await?;

    // Alice also watches the room's chat: she sees who is in the call.
    let mut watcher = node.ws(&alice).await?;
    watcher
        .request("room:join", json!({"roomId": channel}))
        .await?;
    let mut a = Participant::join(&node, &alice, &channel).await?;
    let mut b = Participant::join(&node, &bob, &channel).await?;
    let mut c = Participant::join(&node, &carol, &channel).await?;
    let (sa, sb, sc) = (a.session, b.session, c.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(600)).await?;
        let heard = a.media.from(sb) > 10
            && a.media.from(sc) > 10
            && b.media.from(sa) > 10
            && b.media.from(sc) > 10
            && c.media.from(sa) > 10
            && c.media.from(sb) > 10;
        if heard {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "not everyone hears everyone: a<-b {} a<-c {} b<-a {} b<-c {} c<-a {} c<-b {}",
                a.media.from(sb),
                a.media.from(sc),
                b.media.from(sa),
                b.media.from(sc),
                c.media.from(sa),
                c.media.from(sb)
            );
        }
    }
    for p in [&a, &b, &c] {
        assert_eq!(p.media.from(p.session), 0, "nobody hears themselves");
    }
    // Someone opening the channel now learns who is in it from the join ack.
    let mut late = node.ws(&alice).await?;
    let ack = late
        .request("room:join", json!({"roomId": channel}))
        .await?;
    assert_eq!(
        ack["data"]["voice"].as_array().map(Vec::len),
        Some(3),
        "{ack}"
    );
    // One port serves everyone; the loop reports its connections every 100 ms.
    assert_eq!(node.metric("voiceflow_voice_ports_in_use").await?, 1.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.metric("voiceflow_voice_connections").await?, 3.0);
    let text = node.metrics_text().await?;
    let forwarded: f64 = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "voiceflow_voice_forwarded_packets_total{{channel=\"{channel}\"}}"
            ))
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        forwarded > 30.0,
        "per-channel forwarding counter: {forwarded}"
    );
    let bob_id = bob.id.clone();
    let joined = watcher
        .wait_for(move |v| {
            v["type"] == "voice:user_joined" && v["data"]["userId"] == bob_id.as_str()
        })
        .await?;
    assert_eq!(joined["data"]["muted"], false);
    let bob_id = bob.id.clone();
    watcher
        .wait_for(move |v| {
            v["type"] == "user:presence_changed"
                && v["data"]["userId"] == bob_id.as_str()
                && v["data"]["status"] == "in_call"
        })
        .await?;

    // Alice mutes: everyone is told, and her packets stop at the server.
    let muted =
        a.ws.request("voice:state", json!({"channelId": channel, "muted": true}))
            .await?;
    assert_eq!(muted["data"]["muted"], true, "{muted}");
    let seen = b.pump(Duration::from_millis(300)).await?;
    assert!(
        seen.iter()
            .any(|f| f["type"] == "voice:state" && f["data"]["userId"] == alice.id.as_str()),
        "{seen:?}"
    );
    let before = b.media.from(sa);
    pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(900)).await?;
    assert!(b.media.from(sa) <= before + 2, "muted audio is dropped");
    assert!(b.media.from(sc) > 10);

    // Speaking rings come from the audio levels.
    c.media
        .level
        .store(20, std::sync::atomic::Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(5);
    let mut ring = false;
    while Instant::now() < until && !ring {
        let seen = b.pump(Duration::from_millis(200)).await?;
        ring = seen.iter().any(|f| {
            f["type"] == "voice:state"
                && f["data"]["userId"] == carol.id.as_str()
                && f["data"]["speaking"] == true
        });
    }
    assert!(ring, "carol's speaking ring reached bob");

    // Alice leaves; Carol's connection drops: Bob is told about both.
    let left =
        a.ws.request("voice:leave", json!({"channelId": channel}))
            .await?;
    assert_eq!(left["ok"], true, "{left}");
    a.media.close().await?;
    drop(c.ws);
    c.media.close().await?;
    let until = Instant::now() + Duration::from_secs(5);
    let mut gone = Vec::new();
    while Instant::now() < until && gone.len() < 2 {
        for f in b.pump(Duration::from_millis(200)).await? {
            if f["type"] == "voice:user_left" {
                gone.push(f["data"]["userId"].clone());
            }
        }
    }
    assert!(
        gone.contains(&json!(alice.id)) && gone.contains(&json!(carol.id)),
        "{gone:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        node.metric("voiceflow_voice_connections").await?,
        1.0,
        "no leaked connections"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_voice_input_gets_clear_errors_and_leaks_nothing() -> Result<()> {
    let node = TestNode::start_with(&voice(47020)).await?;
    let alice = node.register("alice").await?;
    let channel = node.create_voice_room(&alice, "Lounge", "voice").await?;
    let (text, _) = node.create_room(&alice, "Chat", json!({}), 10).await?;
    let (status, odd) = node
        .post(
            "/api/v1/rooms",
            Some(&alice.token),
            json!({"name": "Odd", "kind": "video"}),
        )
        .await?;
    assert_eq!(status, 400, "{odd}");
    assert_eq!(odd["error"]["details"]["field"], "kind", "{odd}");
    let mut ws = node.ws(&alice).await?;
    let garbage = ws
        .request(
            "voice:join",
            json!({"channelId": channel, "sdp": "v=0 nonsense"}),
        )
        .await?;
    assert_eq!(garbage["error"]["details"]["field"], "sdp", "{garbage}");
    let not_voice = ws
        .request("voice:join", json!({"channelId": text, "sdp": "v=0"}))
        .await?;
    assert_eq!(
        not_voice["error"]["code"], "VALIDATION_ERROR",
        "{not_voice}"
    );
    let stray = ws
        .request(
            "voice:signal",
            json!({"channelId": channel, "candidate": {"candidate": "x"}}),
        )
        .await?;
    assert_eq!(stray["ok"], false, "{stray}");
    let answer = ws
        .request("voice:signal", json!({"channelId": channel, "sdp": "v=0"}))
        .await?;
    assert_eq!(answer["ok"], false, "{answer}");
    // A client that offers and then never connects is removed after the connect timeout.
    assert!(
        ws.backlog.iter().all(|f| f["type"] != "voice:user_joined"),
        "refused joins are not announced"
    );
    ws.backlog.clear();
    let media = Client::new(1).await?;
    let offer = media.offer().await?;
    media.close().await?;
    let ack = ws
        .request("voice:join", json!({"channelId": channel, "sdp": offer}))
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let left = ws.wait_for(|v| v["type"] == "voice:user_left").await?;
    assert_eq!(left["data"]["reason"], "disconnected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.metric("voiceflow_voice_connections").await?, 0.0);
    assert_eq!(node.metric("voiceflow_voice_participants").await?, 0.0);
    // The connection and chat are unaffected.
    let pong = ws.request("ping", json!({})).await?;
    assert_eq!(pong["ok"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_forwards_only_hosts_and_speakers_with_hands_bans_and_an_end() -> Result<()> {
    let node = TestNode::start_with(&voice(47040)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let stage = node.create_voice_room(&alice, "Town hall", "stage").await?;
    let mut a = Participant::join(&node, &alice, &stage).await?;
    let mut b = Participant::join(&node, &bob, &stage).await?;
    let mut c = Participant::join(&node, &carol, &stage).await?;
    let (sa, sb) = (a.session, b.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.media.from(sa) < 10 || c.media.from(sa) < 10 {
        pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(600)).await?;
        if Instant::now() > deadline {
            bail!("listeners do not hear the host");
        }
    }
    assert_eq!(a.media.from(sb), 0, "a listener's audio is not forwarded");
    assert_eq!(c.media.from(sb), 0);

    // Hands go up in order; the host sees the queue.
    let raised =
        b.ws.request("stage:hand_raise", json!({"channelId": stage}))
            .await?;
    assert_eq!(raised["ok"], true, "{raised}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let raised =
        c.ws.request("stage:hand_raise", json!({"channelId": stage}))
            .await?;
    let queue: Vec<Value> = raised["data"]["queue"]
        .as_array()
        .map(|q| q.iter().map(|h| h["userId"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(queue, vec![json!(bob.id), json!(carol.id)], "{raised}");
    let refused =
        c.ws.request(
            "stage:promote",
            json!({"channelId": stage, "userId": carol.id}),
        )
        .await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");

    // The host lets Bob speak: everyone hears him now.
    let promoted =
        a.ws.request(
            "stage:promote",
            json!({"channelId": stage, "userId": bob.id}),
        )
        .await?;
    assert_eq!(promoted["ok"], true, "{promoted}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.media.from(sb) < 10 || c.media.from(sb) < 10 {
        pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(600)).await?;
        if Instant::now() > deadline {
            bail!("the promoted speaker is not heard");
        }
    }

    // Carol is banned: off the stage and out of the room, and she cannot come back.
    let banned =
        a.ws.request("stage:ban", json!({"channelId": stage, "userId": carol.id}))
            .await?;
    assert_eq!(banned["ok"], true, "{banned}");
    let left = c.ws.wait_for(|v| v["type"] == "voice:user_left").await?;
    assert_eq!(left["data"]["reason"], "banned");
    let media = Client::new(99).await?;
    let offer = media.offer().await?;
    let again =
        c.ws.request("voice:join", json!({"channelId": stage, "sdp": offer}))
            .await?;
    assert_eq!(again["error"]["code"], "FORBIDDEN", "{again}");
    media.close().await?;

    // Every change is in the chat; the host ends the stage.
    let (_, history) = node
        .get(
            &format!("/api/v1/rooms/{stage}/messages"),
            Some(&alice.token),
        )
        .await?;
    let notices: Vec<String> = history["data"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|m| m["type"] == "system")
                .filter_map(|m| m["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        notices.contains(&"bob was invited to speak".to_owned()),
        "{notices:?}"
    );
    assert!(
        notices.contains(&"carol was banned".to_owned()),
        "{notices:?}"
    );
    let ended =
        a.ws.request("stage:end", json!({"channelId": stage}))
            .await?;
    assert_eq!(ended["ok"], true, "{ended}");
    let left =
        b.ws.wait_for(|v| v["type"] == "voice:user_left" && v["data"]["userId"] == bob.id.as_str())
            .await?;
    assert_eq!(left["data"]["reason"], "ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.metric("voiceflow_voice_connections").await?, 0.0);
    Ok(())
}

/// Regression (found fuzzing the SFU's signalling, `media/tests/fuzz_sdp.rs`): webrtc-rs dials
/// the address of a remote ICE-TCP `tcptype passive` candidate, so `voice:signal {candidate}`
/// made the node open a TCP connection to any host and port a client named. It is refused
/// with VALIDATION_ERROR naming `candidate`, and nothing is dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_tcp_candidate_is_refused_and_never_dialled() -> Result<()> {
    let node = TestNode::start_with(&voice(47160)).await?;
    let alice = node.register("alice").await?;
    let channel = node.create_voice_room(&alice, "Lounge", "voice").await?;
    let mut a = Participant::join(&node, &alice, &channel).await?;
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = target.local_addr()?.port();
    let candidate =
        format!("candidate:1 1 tcp 2130706431 127.0.0.1 {port} typ host tcptype passive");
    let refused = a
        .ws
        .request(
            "voice:signal",
            json!({"channelId": channel, "candidate": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}}),
        )
        .await?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{refused}");
    assert_eq!(
        refused["error"]["details"]["field"], "candidate",
        "{refused}"
    );
    // A dial would arrive at once on loopback; a second is ample to see that none does.
    let dialled = tokio::time::timeout(Duration::from_secs(1), target.accept()).await;
    assert!(
        dialled.is_err(),
        "the node connected to the candidate's address"
    );
    // UDP candidates are still taken.
    let udp = a
        .ws
        .request(
            "voice:signal",
            json!({"channelId": channel, "candidate": {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
        )
        .await?;
    assert_eq!(udp["ok"], true, "{udp}");
    a.media.close().await?;
    Ok(())
}
