//! Live chat over real WebSockets: ordering for every member, nonce dedupe, history paging,
//! typing expiry, presence in the room, and bad frames that harm nothing.

mod common;

use std::time::Duration;

use common::TestNode;
use serde_json::{Value, json};

fn ids(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["data"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn message_ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn every_member_sees_every_message_in_the_same_order() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);

    let mut a1 = node.ws(&alice).await?;
    let mut a2 = node.ws(&alice).await?; // Alice's second tab
    let mut b = node.ws(&bob).await?;
    for ws in [&mut a1, &mut a2, &mut b] {
        let ack = ws.request("room:join", json!({"roomId": room})).await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    // Interleave senders without waiting for acks.
    let mut sent = 0;
    let mut a_requests = Vec::new();
    for i in 0..30 {
        a_requests.push(
            a1.send(
                "message:send",
                json!({"roomId": room, "content": format!("a{i}")}),
            )
            .await?,
        );
        b.send(
            "message:send",
            json!({"roomId": room, "content": format!("b{i}")}),
        )
        .await?;
        sent += 2;
    }
    let mut seen = Vec::new();
    for ws in [&mut a1, &mut a2, &mut b] {
        let mut frames = Vec::new();
        while frames.len() < sent {
            // Joins are logged as system messages; this test counts what users sent.
            let frame = ws.next_event("message:received").await?;
            if frame["data"]["type"] != "system" {
                frames.push(frame);
            }
        }
        seen.push(ids(&frames));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let mut sorted = seen[0].clone();
    sorted.sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
    assert_eq!(seen[0], sorted, "delivery order is id order");
    sorted.dedup();
    assert_eq!(sorted.len(), sent);
    // Every send was acked with the stored message, in the order sent.
    let mut a_acked = Vec::new();
    for id in a_requests {
        let ack = a1.ack(id).await?;
        assert_eq!(ack["ok"], true, "{ack}");
        a_acked.push(
            ack["data"]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        a_acked,
        (0..30).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
    let (_, history) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages?limit=100"),
            Some(&bob.token),
        )
        .await?;
    let sent_by_users: Vec<serde_json::Value> = history["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["type"] != "system")
        .collect();
    let mut stored = message_ids(&sent_by_users);
    stored.reverse();
    assert_eq!(stored, seen[0], "history matches live order");
    Ok(())
}

#[tokio::test]
async fn acks_carry_the_stored_message_and_nonces_dedupe() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    let first = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "hello", "nonce": "n-1"}),
        )
        .await?;
    assert_eq!(first["ok"], true, "{first}");
    let msg = &first["data"]["message"];
    assert_eq!(msg["content"], "hello");
    assert_eq!(msg["type"], "text");
    assert_eq!(msg["nonce"], "n-1");
    assert!(msg["id"].is_string());
    // Retries with the same nonce, concurrently and later, give back the same message.
    let r1 = ws
        .send(
            "message:send",
            json!({"roomId": room, "content": "hello", "nonce": "n-1"}),
        )
        .await?;
    let r2 = ws
        .send(
            "message:send",
            json!({"roomId": room, "content": "hello", "nonce": "n-1"}),
        )
        .await?;
    for id in [r1, r2] {
        let ack = ws.ack(id).await?;
        assert_eq!(ack["data"]["message"]["id"], msg["id"]);
    }
    // Two fresh nonces sent back to back without waiting: one message each.
    let x = ws
        .send(
            "message:send",
            json!({"roomId": room, "content": "x", "nonce": "n-2"}),
        )
        .await?;
    let y = ws
        .send(
            "message:send",
            json!({"roomId": room, "content": "x", "nonce": "n-2"}),
        )
        .await?;
    let (ax, ay) = (ws.ack(x).await?, ws.ack(y).await?);
    assert_eq!(ax["data"]["message"]["id"], ay["data"]["message"]["id"]);
    // The REST path shares the dedupe.
    let (status, rest) = node
        .post(
            "/api/v1/messages",
            Some(&alice.token),
            json!({"roomId": room, "content": "hello", "nonce": "n-1"}),
        )
        .await?;
    assert_eq!(status, 201);
    assert_eq!(rest["data"]["message"]["id"], msg["id"]);
    let (_, history) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
        )
        .await?;
    assert_eq!(
        history["data"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
    Ok(())
}

#[tokio::test]
async fn history_pages_back_through_250_messages_without_gap_or_duplicate() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    let mut sent = Vec::new();
    for chunk in 0..5 {
        let mut pending = Vec::new();
        for i in 0..50 {
            pending.push(
                ws.send(
                    "message:send",
                    json!({"roomId": room, "content": format!("m{}", chunk * 50 + i)}),
                )
                .await?,
            );
        }
        for id in pending {
            let ack = ws.ack(id).await?;
            sent.push(
                ack["data"]["message"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &before {
            Some(b) => format!("/api/v1/rooms/{room}/messages?limit=40&before={b}"),
            None => format!("/api/v1/rooms/{room}/messages?limit=40"),
        };
        let (status, page) = node.get(&path, Some(&alice.token)).await?;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().cloned().unwrap_or_default();
        pages += 1;
        paged.extend(message_ids(&data));
        before = paged.last().cloned();
        if page["hasMore"] == false {
            break;
        }
        assert!(pages < 20, "paging does not end");
    }
    paged.reverse();
    assert_eq!(paged, sent);
    assert_eq!(pages, 7);
    let (status, _) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages?limit=101"),
            Some(&alice.token),
        )
        .await?;
    assert_eq!(status, 400);
    let (status, _) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages?before=abc"),
            Some(&alice.token),
        )
        .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn typing_shows_to_others_and_expires_by_itself() -> anyhow::Result<()> {
    let node = TestNode::start().await?; // typing_ttl_ms = 600
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    node.join_code(&bob, &code).await?;
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    a.request("room:join", json!({"roomId": room})).await?;
    b.request("room:join", json!({"roomId": room})).await?;
    let joined = a.next_event("room:user_joined").await?;
    assert_eq!(joined["data"]["userId"], bob.id.as_str());

    let ack = b.request("typing:start", json!({"roomId": room})).await?;
    assert_eq!(ack["ok"], true);
    let typing = a.next_event("user:typing").await?;
    assert_eq!(typing["data"]["userId"], bob.id.as_str());
    let started = std::time::Instant::now();
    let stopped = a.next_event("user:stopped_typing").await?;
    assert_eq!(stopped["data"]["userId"], bob.id.as_str());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "expired too early"
    );
    // The typer does not hear its own indicator.
    assert!(
        !b.sees_within(Duration::from_millis(200), |v| v["type"] == "user:typing")
            .await
    );

    // Explicit stop, and typing ends when the message is sent.
    b.request("typing:start", json!({"roomId": room})).await?;
    a.next_event("user:typing").await?;
    b.request("typing:stop", json!({"roomId": room})).await?;
    a.next_event("user:stopped_typing").await?;
    b.request("typing:start", json!({"roomId": room})).await?;
    a.next_event("user:typing").await?;
    b.request("message:send", json!({"roomId": room, "content": "done"}))
        .await?;
    a.next_event("user:stopped_typing").await?;

    b.request("room:leave", json!({"roomId": room})).await?;
    let left = a.next_event("room:user_left").await?;
    assert_eq!(left["data"]["userId"], bob.id.as_str());
    Ok(())
}

#[tokio::test]
async fn bad_frames_get_clear_errors_and_the_connection_survives() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;

    ws.send_raw("{not json").await?;
    let err = ws.next_event("error").await?;
    assert_eq!(err["data"]["code"], "INVALID_FRAME");
    ws.send_raw(r#"{"type":"no:such","id":77}"#).await?;
    let ack = ws.ack(77).await?;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("UNKNOWN_EVENT"))
    );
    let ack = ws.request("message:send", json!({"roomId": room})).await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(ack["error"]["details"]["field"], "content");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "x".repeat(4001)}),
        )
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    let ack = ws
        .request("message:send", json!({"roomId": room, "content": "   "}))
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "hi", "type": "system"}),
        )
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": "not-an-id", "content": "hi"}),
        )
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    let ack = ws
        .request("message:send", json!({"roomId": "999", "content": "hi"}))
        .await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND");
    ws.send_raw("[1,2,3]").await?;
    assert_eq!(
        ws.next_event("error").await?["data"]["code"],
        "INVALID_FRAME"
    );

    // Still fine afterwards.
    let ack = ws.request("ping", json!({})).await?;
    assert_eq!(ack["ok"], true);
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "still here"}),
        )
        .await?;
    assert_eq!(ack["ok"], true);

    // Without a valid token there is no WebSocket.
    let resp = node
        .http
        .get(node.url("/ws?token=bogus"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);

    // A client that only sends garbage is disconnected with a reason.
    let mut spammer = node.ws(&alice).await?;
    for _ in 0..25 {
        if spammer.send_raw("garbage").await.is_err() {
            break;
        }
    }
    assert_eq!(spammer.closed().await?, Some(4002));
    // ...and the first connection is unaffected.
    assert_eq!(ws.request("ping", json!({})).await?["ok"], true);
    Ok(())
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_closed_and_nobody_else_notices() -> anyhow::Result<()> {
    let config = format!(
        "{}outbound_queue_frames = 512\nws_write_timeout_ms = 10000\n",
        common::FAST_CONFIG
    );
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    node.join_code(&bob, &code).await?;
    let mut sender = node.ws(&alice).await?;
    let mut slow = node.ws(&bob).await?;
    sender.request("room:join", json!({"roomId": room})).await?;
    slow.request("room:join", json!({"roomId": room})).await?;
    // Bob reads one frame every 20 ms while Alice sends ~16 MB as fast as acks come back.
    let reader = tokio::spawn(async move {
        let mut frames = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match slow.next_frame().await {
                Ok(Some(_)) => frames += 1,
                Ok(None) => return (frames, None),
                Err(code) => return (frames, code),
            }
        }
    });
    let big = "x".repeat(4000);
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..4000 {
        pending.push_back(
            sender
                .send("message:send", json!({"roomId": room, "content": big}))
                .await?,
        );
        if pending.len() >= 32 {
            let id = pending.pop_front().unwrap_or_default();
            assert_eq!(
                sender.ack(id).await?["ok"],
                true,
                "the sender is never slowed or refused"
            );
            sender.backlog.clear();
        }
    }
    for id in pending {
        assert_eq!(sender.ack(id).await?["ok"], true);
    }
    let (frames, close) = tokio::time::timeout(Duration::from_secs(60), reader).await??;
    assert_eq!(
        close,
        Some(4008),
        "closed as a slow consumer after {frames} frames"
    );
    assert_eq!(sender.request("ping", json!({})).await?["ok"], true);
    Ok(())
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let config = format!(
        "{}ws_ping_interval_secs = 1\nws_idle_timeout_secs = 2\n",
        common::FAST_CONFIG
    );
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let mut silent = node.ws(&alice).await?;
    let mut chatty = node.ws(&alice).await?;
    // The silent client neither sends nor reads (so never answers the server's pings) until
    // half a second after its timeout, then reads the close; the server waits 2 s for that in
    // its closing handshake. The chatty one keeps talking and must stay open.
    let started = std::time::Instant::now();
    let talk = async {
        for _ in 0..8 {
            assert_eq!(chatty.request("ping", json!({})).await?["ok"], true);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::Ok(())
    };
    let listen_late = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        silent.closed().await
    };
    let (talked, closed) = tokio::join!(talk, listen_late);
    talked?;
    assert_eq!(closed?, Some(4000), "closed for idleness");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(chatty.request("ping", json!({})).await?["ok"], true);
    Ok(())
}
