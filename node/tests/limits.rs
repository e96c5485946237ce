//! Rate limits and bad input through a real node, with small limits configured: the per-user
//! message bucket (RATE_LIMITED with retryAfterMs, recovery, other users unaffected), the
//! per-connection bucket and its flood close (4029), logins per IP (429 + Retry-After),
//! oversize frames (PAYLOAD_TOO_LARGE, then 1009 past the hard limit), deep JSON, and wrong
//! types naming the field.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{FAST_CONFIG_LIMITED, TestNode};
use serde_json::{Value, json};

/// A node config with the rate limits on and `[limits]` lines; `top` goes before the table.
fn config(top: &str, limits: &str) -> String {
    format!("{FAST_CONFIG_LIMITED}{top}[limits]\n{limits}")
}

fn retry_after_ms(v: &Value) -> u64 {
    v["error"]["details"]["retryAfterMs"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_user_over_the_message_rate_is_refused_then_recovers_and_others_are_unaffected()
-> Result<()> {
    let node = TestNode::start_with(&config(
        "",
        "messages_per_sec = 1\nmessages_burst = 3\nlogins_per_min = 100\n",
    ))
    .await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    node.join_code(&bob, &code).await?;
    let mut a = node.ws(&alice).await?;
    let mut a2 = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    for ws in [&mut a, &mut a2, &mut b] {
        ws.request("room:join", json!({"roomId": room})).await?;
    }
    let send = |n: u32| json!({"roomId": room, "content": format!("m{n}")});

    for n in 0..3 {
        assert_eq!(a.request("message:send", send(n)).await?["ok"], true);
    }
    let refused = a.request("message:send", send(3)).await?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "RATE_LIMITED");
    let wait = retry_after_ms(&refused);
    assert!((1..=1000).contains(&wait), "{refused}");
    // The bucket is the user's, not the connection's; without an id the answer is an event.
    a2.send_raw(&json!({"type": "message:send", "data": send(4)}).to_string())
        .await?;
    let event = a2.next_event("error").await?;
    assert_eq!(event["data"]["code"], "RATE_LIMITED", "{event}");
    assert!(event["data"]["details"]["retryAfterMs"].as_u64() > Some(0));
    // REST posting shares the bucket: 429 with Retry-After.
    let resp = node
        .http
        .post(node.url("/api/v1/messages"))
        .bearer_auth(&alice.token)
        .json(&send(5))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "RATE_LIMITED");

    // Bob is not slowed down, and saw exactly Alice's three messages.
    assert_eq!(
        b.request("message:send", json!({"roomId": room, "content": "hi"}))
            .await?["ok"],
        true
    );
    for n in 0..3 {
        let m = b
            .wait_for(|v| {
                v["type"] == "message:received" && v["data"]["userId"] == alice.id.as_str()
            })
            .await?;
        assert_eq!(m["data"]["content"], format!("m{n}"));
    }
    assert!(
        !b.sees_within(Duration::from_millis(200), |v| v["type"]
            == "message:received"
            && v["data"]["userId"] == alice.id.as_str())
            .await,
        "refused messages were dropped"
    );

    // After the advertised wait Alice can send again, on the same connection.
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(a.request("message:send", send(6)).await?["ok"], true);
    assert_eq!(a.request("ping", json!({})).await?["ok"], true);
    Ok(())
}

#[tokio::test]
async fn a_connection_over_its_event_budget_is_refused_and_a_flood_is_closed() -> Result<()> {
    let node = TestNode::start_with(&config(
        "",
        "connection_events = 5\nconnection_window_secs = 10\nconnection_close_factor = 3\n",
    ))
    .await?;
    let alice = node.register("alice").await?;
    let mut calm = node.ws(&alice).await?;
    let mut flood = node.ws(&alice).await?;
    for _ in 0..5 {
        assert_eq!(flood.request("ping", json!({})).await?["ok"], true);
    }
    let refused = flood.request("ping", json!({})).await?;
    assert_eq!(refused["error"]["code"], "RATE_LIMITED", "{refused}");
    assert!(retry_after_ms(&refused) > 0);
    // 3 × 5 frames in the window are tolerated (refused); the 16th closes the connection
    // (a few more are sent in case the bucket refilled meanwhile: one frame every 2 s).
    for _ in 6..30 {
        flood.send("ping", json!({})).await?;
    }
    assert_eq!(flood.closed().await?, Some(4029));
    assert_eq!(calm.request("ping", json!({})).await?["ok"], true);
    Ok(())
}

#[tokio::test]
async fn the_sixth_login_in_a_minute_from_one_address_gets_429() -> Result<()> {
    let node = TestNode::start_with(FAST_CONFIG_LIMITED).await?;
    let alice = node.register("alice").await?;
    let login = |password: &str| {
        node.post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": password}),
        )
    };
    // The registration was the first attempt; wrong passwords count too.
    assert_eq!(login("wrong-password").await?.0, 401);
    for _ in 0..3 {
        assert_eq!(login("password123").await?.0, 200);
    }
    let resp = node
        .http
        .post(node.url("/api/v1/auth/login"))
        .json(&json!({"email": "alice@example.com", "password": "password123"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str()?.parse()?;
    assert!(
        (1..=12).contains(&retry),
        "one attempt comes back every 12 s: {retry}"
    );
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert!(retry_after_ms(&body) > 0);
    // Registering is a login attempt too; other endpoints are not limited.
    let (status, _) = node
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "bob", "email": "bob@example.com", "password": "password123", "confirmPassword": "password123"}),
        )
        .await?;
    assert_eq!(status, 429);
    assert_eq!(
        node.get("/api/v1/users/me", Some(&alice.token)).await?.0,
        200
    );
    // Another address has its own bucket; a forwarded-for header from a client that is not
    // a trusted proxy changes nothing.
    let forged = node
        .http
        .post(node.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "alice@example.com", "password": "password123"}))
        .send()
        .await?;
    assert_eq!(forged.status().as_u16(), 429);
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()?;
    let resp = elsewhere
        .post(node.url("/api/v1/auth/login"))
        .json(&json!({"email": "alice@example.com", "password": "password123"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "127.0.0.2 has its own bucket");
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() -> Result<()> {
    let node = TestNode::start_with(&config(
        "",
        "logins_per_min = 2\ntrusted_proxies = [\"127.0.0.1\"]\n",
    ))
    .await?;
    let attempt = |client: &'static str| {
        node.http
            .post(node.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("6.6.6.6, {client}"))
            .json(&json!({"email": "nobody@example.com", "password": "password123"}))
            .send()
    };
    // The proxy (127.0.0.1) forwards two clients; the leftmost entry is the client's own
    // claim and does not count.
    for _ in 0..2 {
        assert_eq!(attempt("203.0.113.7").await?.status().as_u16(), 401);
    }
    assert_eq!(attempt("203.0.113.7").await?.status().as_u16(), 429);
    assert_eq!(attempt("198.51.100.4").await?.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn oversize_frames_are_refused_and_huge_ones_close_the_connection() -> Result<()> {
    let node = TestNode::start_with(&config(
        "ws_max_frame_bytes = 1024\n",
        "ws_frame_close_bytes = 8192\n",
    ))
    .await?;
    let alice = node.register("alice").await?;
    let mut ws = node.ws(&alice).await?;
    let big = json!({"type": "ping", "id": 1, "data": {"pad": "x".repeat(2000)}}).to_string();
    ws.send_raw(&big).await?;
    let ack = ws.ack(1).await?;
    assert_eq!(ack["error"]["code"], "PAYLOAD_TOO_LARGE", "{ack}");
    assert_eq!(ack["error"]["details"]["limit"], 1024);
    assert_eq!(
        ws.request("ping", json!({})).await?["ok"],
        true,
        "still open"
    );

    let huge = json!({"type": "ping", "id": 2, "data": {"pad": "x".repeat(10_000)}}).to_string();
    ws.send_raw(&huge).await?;
    assert_eq!(ws.closed().await?, Some(1009));
    Ok(())
}

#[tokio::test]
async fn deep_json_is_refused_unparsed_and_counts_as_an_invalid_frame() -> Result<()> {
    let node =
        TestNode::start_with(&config("max_invalid_frames = 3\n", "max_json_depth = 8\n")).await?;
    let alice = node.register("alice").await?;
    let mut ws = node.ws(&alice).await?;
    let deep = |id: Option<u64>| {
        let nest = format!("{}1{}", "[".repeat(10), "]".repeat(10));
        match id {
            Some(id) => format!(r#"{{"type":"ping","id":{id},"data":{{"x":{nest}}}}}"#),
            None => format!(r#"{{"type":"ping","data":{{"x":{nest}}}}}"#),
        }
    };
    ws.send_raw(&deep(Some(7))).await?;
    let ack = ws.ack(7).await?;
    assert_eq!(ack["error"]["code"], "INVALID_FRAME");
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deeply")),
        "{ack}"
    );
    // Within the limit (brackets in strings do not count), it is an ordinary frame.
    let shallow = json!({"type": "ping", "id": 8, "data": {"x": [[1]], "s": "[[[[[[[[[[[["}});
    ws.send_raw(&shallow.to_string()).await?;
    assert_eq!(ws.ack(8).await?["ok"], true);
    // Three bad frames within a minute close the connection (4002), as for any invalid
    // frame; the valid one between them does not wipe the count.
    ws.send_raw(&deep(None)).await?;
    assert_eq!(
        ws.next_event("error").await?["data"]["code"],
        "INVALID_FRAME"
    );
    ws.send_raw(&deep(None)).await?;
    assert_eq!(ws.closed().await?, Some(4002));
    Ok(())
}

#[tokio::test]
async fn refusals_a_correct_client_gets_do_not_count_but_garbage_between_valid_frames_does()
-> Result<()> {
    let node = TestNode::start_with(&config("max_invalid_frames = 3\n", "")).await?;
    let alice = node.register("alice").await?;
    let mut ws = node.ws(&alice).await?;
    // A client rejoining rooms that were deleted meanwhile: refused, not malformed.
    for _ in 0..5 {
        let refused = ws
            .request("room:join", json!({"roomId": "123456789"}))
            .await?;
        assert_eq!(refused["error"]["code"], "ROOM_NOT_FOUND", "{refused}");
    }
    assert_eq!(ws.request("ping", json!({})).await?["ok"], true);
    // Garbage slipped between valid frames still adds up.
    for round in 0..3 {
        ws.send_raw("not json").await?;
        if round < 2 {
            assert_eq!(ws.request("ping", json!({})).await?["ok"], true);
        }
    }
    assert_eq!(ws.closed().await?, Some(4002));
    Ok(())
}

#[tokio::test]
async fn wrong_types_name_the_field_and_unknown_fields_are_ignored() -> Result<()> {
    let node = TestNode::start_with(&config("", "")).await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;

    let ack = ws
        .request("message:send", json!({"roomId": room, "content": 5}))
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{ack}");
    assert_eq!(ack["error"]["details"]["field"], "content", "{ack}");
    let ack = ws
        .request("message:send", json!({"roomId": true, "content": "hi"}))
        .await?;
    assert_eq!(ack["error"]["details"]["field"], "roomId", "{ack}");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "hi", "type": 3}),
        )
        .await?;
    assert_eq!(ack["error"]["details"]["field"], "type", "{ack}");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "hi", "unknown": {"deep": [1, 2]}}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "unknown fields are ignored: {ack}");

    // REST bodies name the field the same way.
    let (status, body) = node
        .post(
            "/api/v1/rooms",
            Some(&alice.token),
            json!({"name": "Other", "settings": {"isPublic": "yes"}}),
        )
        .await?;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["field"], "settings.isPublic",
        "{body}"
    );
    Ok(())
}
