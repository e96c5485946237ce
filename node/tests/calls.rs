//! Direct conversations and 1:1 calls end to end: a real node, WebSocket signalling, the
//! callee's devices ringing without following the conversation, media through the SFU with
//! real WebRTC peers, and the system messages calls leave in the chat.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::voice::{Participant, pump_all, voice};
use common::{TestNode, User, WsClient};
use serde_json::{Value, json};

fn config(first_port: u16, ring_secs: u64) -> String {
    format!("{}call_ring_secs = {ring_secs}\n", voice(first_port))
}

async fn open_dm(node: &TestNode, by: &User, with: &User) -> Result<(u16, Value)> {
    node.post("/api/v1/dms", Some(&by.token), json!({"userId": with.id}))
        .await
}

/// The conversation's newest system message, once one satisfying `want` is stored (the call
/// ends, then its message is written: wait up to 10 s).
async fn system_message(
    node: &TestNode,
    user: &User,
    room: &str,
    want: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = node
            .get(
                &format!("/api/v1/rooms/{room}/messages?limit=20"),
                Some(&user.token),
            )
            .await?;
        let newest = page["data"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .filter(|m| m["type"] == "system")
                    .max_by_key(|m| m["id"].as_str().and_then(|s| s.parse::<u64>().ok()))
                    .cloned()
            })
            .unwrap_or_default();
        let line = newest["content"].as_str().unwrap_or_default().to_owned();
        if want(&line) || Instant::now() > deadline {
            return Ok(line);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is(event: &'static str, field: &'static str, value: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == event && v["data"][field] == value
}

async fn call(ws: &mut WsClient, action: &str, room: &str) -> Result<Value> {
    ws.request(&format!("call:{action}"), json!({ "roomId": room }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_every_device_connects_over_the_sfu_and_logs_its_duration() -> Result<()> {
    let node = TestNode::start_with(&config(47300, 30)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;

    // One conversation per pair, whoever opens it; no conversation with oneself or nobody.
    let (status, dm) = open_dm(&node, &alice, &bob).await?;
    assert_eq!(status, 201, "{dm}");
    assert_eq!(dm["data"]["kind"], "dm");
    assert_eq!(dm["data"]["settings"]["isPublic"], false);
    let room = dm["data"]["id"].as_str().unwrap_or_default().to_owned();
    let (status, again) = open_dm(&node, &bob, &alice).await?;
    assert_eq!(
        (status, again["data"]["id"].as_str()),
        (200, Some(room.as_str()))
    );
    let (status, body) = open_dm(&node, &alice, &alice).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "userId");
    let (status, _) = node
        .post("/api/v1/dms", Some(&alice.token), json!({"userId": "123"}))
        .await?;
    assert_eq!(status, 404);
    let code = dm["data"]["joinCode"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        node.join_code(&carol, &code).await?.0,
        404,
        "no joining a DM by code"
    );

    let mut a = node.ws(&alice).await?;
    let mut phone = node.ws(&bob).await?;
    let mut desk = node.ws(&bob).await?;
    let mut c = node.ws(&carol).await?;
    let refused = call(&mut c, "start", &room).await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let early = a
        .request("voice:join", json!({"channelId": room, "sdp": "v=0"}))
        .await?;
    assert_eq!(
        early["error"]["code"], "VALIDATION_ERROR",
        "no media without a call"
    );

    let started = call(&mut a, "start", &room).await?;
    assert_eq!(started["data"]["state"], "dialing", "{started}");
    let call_id = started["data"]["callId"].clone();
    for device in [&mut phone, &mut desk] {
        let ring = device.next_event("call:incoming").await?;
        assert_eq!(ring["data"]["callId"], call_id);
        assert_eq!(ring["data"]["callerName"], "alice");
        assert_eq!(ring["data"]["roomId"], room.as_str());
    }
    a.wait_for(is("call:state", "state", "ringing")).await?;
    let twice = call(&mut a, "start", &room).await?;
    assert_eq!(twice["error"]["code"], "CONFLICT", "{twice}");
    let not_yours = call(&mut a, "accept", &room).await?;
    assert_eq!(not_yours["error"]["code"], "FORBIDDEN", "{not_yours}");

    let accepted = call(&mut phone, "accept", &room).await?;
    assert_eq!(accepted["data"]["state"], "connecting", "{accepted}");
    desk.wait_for(is("call:state", "state", "connecting"))
        .await?;

    let mut pa = Participant::join_on(a, &room).await?;
    let mut pb = Participant::join_on(phone, &room).await?;
    let (sa, sb) = (pa.session, pb.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<Value> = Vec::new();
    loop {
        for frames in pump_all(&mut [&mut pa, &mut pb], Duration::from_millis(600)).await? {
            seen.extend(frames);
        }
        let connected = seen
            .iter()
            .any(|v| v["type"] == "call:state" && v["data"]["state"] == "connected");
        if connected && pa.media.from(sb) > 10 && pb.media.from(sa) > 10 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "call not up: connected seen {connected}, a<-b {} b<-a {}",
                pa.media.from(sb),
                pb.media.from(sa)
            );
        }
    }
    let up = seen
        .iter()
        .find(|v| v["type"] == "call:state" && v["data"]["state"] == "connected")
        .cloned()
        .unwrap_or_default();
    assert!(up["data"]["connectedAt"].is_string(), "{up}");
    // A third device of a side cannot add itself to the call.
    let second = desk
        .request("voice:join", json!({"channelId": room, "sdp": "v=0"}))
        .await?;
    assert_eq!(second["error"]["code"], "VALIDATION_ERROR", "{second}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hung = pb
        .ws
        .request("call:hangup", json!({"roomId": room}))
        .await?;
    assert_eq!(hung["ok"], true, "{hung}");
    for ws in [&mut pa.ws, &mut pb.ws, &mut desk] {
        let ended = ws.next_event("call:ended").await?;
        assert_eq!(ended["data"]["reason"], "hung_up", "{ended}");
        assert!(
            ended["data"]["durationMs"].as_u64().unwrap_or(0) >= 1000,
            "{ended}"
        );
    }
    pa.ws
        .wait_for(|v| v["type"] == "voice:user_left" && v["data"]["reason"] == "ended")
        .await?;
    let lasted = |l: &str| l.starts_with("alice called — call lasted 0:0");
    let line = system_message(&node, &alice, &room, lasted).await?;
    assert!(lasted(&line), "{line}");
    let gone = call(&mut pb.ws, "hangup", &room).await?;
    assert_eq!(gone["error"]["code"], "VALIDATION_ERROR", "{gone}");
    pa.media.close().await?;
    pb.media.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_declined_cancelled_busy_and_offline_callees() -> Result<()> {
    let node = TestNode::start_with(&config(47330, 2)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (_, dm) = open_dm(&node, &alice, &bob).await?;
    let room = dm["data"]["id"].as_str().unwrap_or_default().to_owned();
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    a.request("room:join", json!({"roomId": room})).await?;

    // Nobody answers within call_ring_secs (2 s here): missed, for both.
    call(&mut a, "start", &room).await?;
    b.next_event("call:incoming").await?;
    let t0 = Instant::now();
    for ws in [&mut a, &mut b] {
        let ended = ws.next_event("call:ended").await?;
        assert_eq!(ended["data"]["reason"], "missed", "{ended}");
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "rang {:?}",
        t0.elapsed()
    );
    let missed = |l: &str| l == "alice called — missed call";
    let line = system_message(&node, &alice, &room, missed).await?;
    assert!(missed(&line), "{line}");

    // Declined by the callee; cancelled by the caller.
    call(&mut a, "start", &room).await?;
    b.next_event("call:incoming").await?;
    assert_eq!(call(&mut b, "decline", &room).await?["ok"], true);
    let ended = a.next_event("call:ended").await?;
    assert_eq!(ended["data"]["reason"], "declined");
    b.next_event("call:ended").await?;
    call(&mut a, "start", &room).await?;
    b.next_event("call:incoming").await?;
    assert_eq!(call(&mut a, "cancel", &room).await?["ok"], true);
    let ended = b.next_event("call:ended").await?;
    assert_eq!(ended["data"]["reason"], "cancelled");
    a.next_event("call:ended").await?;

    // Bob is in a voice channel (presence in_call): busy, without ringing.
    let lounge = node.create_voice_room(&bob, "Lounge", "voice").await?;
    let mut in_lounge = Participant::join(&node, &bob, &lounge).await?;
    in_lounge.pump(Duration::from_millis(300)).await?;
    let bob_id = bob.id.clone();
    a.wait_for(move |v| {
        v["type"] == "user:presence_changed"
            && v["data"]["userId"] == bob_id.as_str()
            && v["data"]["status"] == "in_call"
    })
    .await?;
    call(&mut a, "start", &room).await?;
    let ended = a.next_event("call:ended").await?;
    assert_eq!(ended["data"]["reason"], "busy", "{ended}");
    assert!(
        !b.sees_within(Duration::from_millis(500), |v| v["type"] == "call:incoming")
            .await,
        "a busy callee is not rung"
    );
    in_lounge.media.close().await?;

    // Carol has no session: the call dials, and rings once she connects.
    let (_, dm2) = open_dm(&node, &alice, &carol).await?;
    let room2 = dm2["data"]["id"].as_str().unwrap_or_default().to_owned();
    let started = call(&mut a, "start", &room2).await?;
    assert_eq!(started["data"]["state"], "dialing");
    let ringing = |v: &Value| {
        v["type"] == "call:state" && v["data"]["state"] == "ringing" && v["data"]["roomId"] == room2
    };
    assert!(!a.sees_within(Duration::from_millis(500), ringing).await);
    let mut c = node.ws(&carol).await?;
    c.next_event("call:incoming").await?;
    a.wait_for(ringing).await?;
    assert_eq!(call(&mut c, "decline", &room2).await?["ok"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_that_vanishes_mid_call_ends_it_after_the_grace_period() -> Result<()> {
    let cfg = format!("{}call_grace_secs = 1\n", config(47360, 30));
    let node = TestNode::start_with(&cfg).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (_, dm) = open_dm(&node, &alice, &bob).await?;
    let room = dm["data"]["id"].as_str().unwrap_or_default().to_owned();
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    call(&mut a, "start", &room).await?;
    b.next_event("call:incoming").await?;
    call(&mut b, "accept", &room).await?;
    let mut pa = Participant::join_on(a, &room).await?;
    let mut pb = Participant::join_on(b, &room).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<Value> = Vec::new();
    while !seen
        .iter()
        .any(|v| v["type"] == "call:state" && v["data"]["state"] == "connected")
    {
        if Instant::now() > deadline {
            bail!("the call never connected");
        }
        for frames in pump_all(&mut [&mut pa, &mut pb], Duration::from_millis(400)).await? {
            seen.extend(frames);
        }
    }
    // Bob's device drops off the network: no hangup, no leave.
    pb.media.close().await?;
    drop(pb);
    let back = pa
        .ws
        .wait_for(is("call:state", "state", "connecting"))
        .await?;
    assert_eq!(back["data"]["roomId"], room.as_str());
    let ended = pa.ws.next_event("call:ended").await?;
    assert_eq!(ended["data"]["reason"], "disconnected", "{ended}");
    let lost = |l: &str| l.ends_with("(connection lost)");
    let line = system_message(&node, &alice, &room, lost).await?;
    assert!(lost(&line), "{line}");
    pa.media.close().await?;
    Ok(())
}
