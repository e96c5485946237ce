//! Budgets charged to the user rather than to one socket, through a real node with the default
//! `[limits]`. Each test replays one finding of the probe that found them per socket: 5 sockets
//! gave 600 pings in 5 s against a 120/60 s budget (and a reconnect got a fresh one); 3 sockets
//! gave 330 reactions in 5 s, each logged and fanned out; 100 edits of 4 KB went through in
//! 1.5 s; one user held 50 sockets.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::{FAST_CONFIG_LIMITED, TestNode, WsClient};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The default limits, except logins (tests register several users from one address).
fn defaults() -> String {
    format!("{FAST_CONFIG_LIMITED}[limits]\nlogins_per_min = 100\n")
}

/// Asserts `ack` is a RATE_LIMITED refusal with a retry time.
fn assert_rate_limited(ack: &Value) {
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "RATE_LIMITED", "{ack}");
    assert!(
        ack["error"]["details"]["retryAfterMs"].as_u64() > Some(0),
        "{ack}"
    );
}

/// The most a bucket of `burst` refilled at `per_sec` can let through in `elapsed`.
fn most_allowed(burst: f64, per_sec: f64, elapsed: Duration) -> u32 {
    (burst + per_sec * elapsed.as_secs_f64()).ceil() as u32 + 1
}

/// Acks of `count` frames sent back to back on `ws` (ids `first..first+count`).
async fn acks(ws: &mut WsClient, ids: &[u64]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(ws.ack(*id).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn pings_from_five_sockets_and_a_reconnect_share_one_user_budget() -> Result<()> {
    let node = TestNode::start_with(&defaults()).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(node.ws(&alice).await?);
    }
    let started = Instant::now();
    let (mut ok, mut limited) = (0u32, 0u32);
    for ws in &mut sockets {
        // 120 each: within every socket's own budget (120 per 60 s).
        for _ in 0..120 {
            let ack = ws.request("ping", json!({})).await?;
            if ack["ok"] == true {
                ok += 1;
            } else {
                assert_rate_limited(&ack);
                limited += 1;
            }
        }
    }
    // The user's budget is 240 per 60 s (one frame back every 250 ms) over all sockets.
    let most = most_allowed(240.0, 4.0, started.elapsed());
    assert!(
        ok <= most,
        "{ok} of 600 pings went through (at most {most})"
    );
    assert_eq!(ok + limited, 600);

    // Closing them and connecting again gives no fresh budget: only what refilled since (one
    // frame per 250 ms) goes through, then the user's bucket refuses.
    let drained = Instant::now();
    drop(sockets);
    let mut again = node.ws(&alice).await?;
    let mut passed = 0u32;
    let ack = loop {
        let ack = again.request("ping", json!({})).await?;
        if ack["ok"] == true && passed < 100 {
            passed += 1;
        } else {
            break ack;
        }
    };
    let refilled = most_allowed(0.0, 4.0, drained.elapsed());
    assert!(
        passed <= refilled,
        "{passed} pings after reconnecting (at most {refilled})"
    );
    assert_rate_limited(&ack);
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("from this user")),
        "{ack}"
    );
    // Another user has their own.
    let mut b = node.ws(&bob).await?;
    assert_eq!(b.request("ping", json!({})).await?["ok"], true);
    Ok(())
}

#[tokio::test]
async fn reactions_from_three_sockets_are_charged_to_the_user_and_refused_ones_never_fan_out()
-> Result<()> {
    let node = TestNode::start_with(&defaults()).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    node.join_code(&bob, &code).await?;
    let mut watcher = node.ws(&bob).await?;
    watcher
        .request("room:join", json!({"roomId": room}))
        .await?;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = node.ws(&alice).await?;
        ws.request("room:join", json!({"roomId": room})).await?;
        sockets.push(ws);
    }
    let sent = sockets[0]
        .request(
            "message:send",
            json!({"roomId": room, "content": "react to me"}),
        )
        .await?;
    let message = sent["data"]["message"]["id"].clone();

    let started = Instant::now();
    let mut answers = Vec::new();
    for ws in &mut sockets {
        let mut ids = Vec::new();
        for n in 0..110 {
            // Alternately added and removed: each one a real change if it went through.
            let event = if n % 2 == 0 {
                "reaction:add"
            } else {
                "reaction:remove"
            };
            ids.push(
                ws.send(event, json!({"messageId": message, "emoji": "👍"}))
                    .await?,
            );
        }
        answers.extend(acks(ws, &ids).await?);
    }
    let ok = answers.iter().filter(|a| a["ok"] == true).count() as u32;
    // Edits, deletions and reactions: 5/s per user, burst 20.
    let most = most_allowed(20.0, 5.0, started.elapsed());
    assert!(
        ok <= most,
        "{ok} of 330 reactions went through (at most {most})"
    );
    for refused in answers.iter().filter(|a| a["ok"] != true) {
        assert_rate_limited(refused);
    }
    assert!(
        answers.iter().any(|a| a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("edits, deletions and reactions"))),
        "the reaction bucket refused some"
    );
    // Bob sees one `reaction:updated` per accepted reaction, and nothing of the refused ones.
    let mut seen = 0;
    while watcher
        .sees_within(Duration::from_millis(500), |v| {
            v["type"] == "reaction:updated"
        })
        .await
    {
        watcher.backlog.retain(|v| v["type"] != "reaction:updated");
        seen += 1;
    }
    assert!(seen <= ok, "{seen} reactions fanned out, {ok} accepted");
    Ok(())
}

#[tokio::test]
async fn a_hundred_large_edits_are_limited_per_user_and_rest_deletes_share_the_bucket() -> Result<()>
{
    let node = TestNode::start_with(&defaults()).await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    let sent = ws
        .request("message:send", json!({"roomId": room, "content": "v0"}))
        .await?;
    let message = sent["data"]["message"]["id"].clone();

    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..100 {
        let content = format!("{n:04}{}", "x".repeat(3996));
        ids.push(
            ws.send(
                "message:update",
                json!({"messageId": message, "content": content}),
            )
            .await?,
        );
    }
    let answers = acks(&mut ws, &ids).await?;
    let ok = answers.iter().filter(|a| a["ok"] == true).count() as u32;
    let most = most_allowed(20.0, 5.0, started.elapsed());
    assert!(
        ok <= most,
        "{ok} of 100 edits went through (at most {most})"
    );
    let refused = answers
        .iter()
        .find(|a| a["ok"] != true)
        .expect("some edits refused");
    assert_rate_limited(refused);

    // Deleting over REST draws on the same bucket: 429 with Retry-After.
    let resp = node
        .http
        .delete(node.url(&format!(
            "/api/v1/messages/{}",
            message.as_str().unwrap_or("")
        )))
        .bearer_auth(&alice.token)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");

    // After the advertised wait, an edit goes through again.
    let wait = refused["error"]["details"]["retryAfterMs"]
        .as_u64()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait.max(200) + 50)).await;
    let ack = ws
        .request(
            "message:update",
            json!({"messageId": message, "content": "final"}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    Ok(())
}

/// Connects and reads the first frame: `Ok` with the open socket after its `hello`, or the
/// close code and reason the server answered with.
async fn connect(
    node: &TestNode,
    token: &str,
) -> Result<
    std::result::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        (u16, String),
    >,
> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", node.addr)).await?;
    match tokio::time::timeout(Duration::from_secs(15), ws.next()).await? {
        Some(Ok(Message::Text(text))) if text.contains("\"hello\"") => Ok(Ok(ws)),
        Some(Ok(Message::Close(Some(close)))) => {
            Ok(Err((u16::from(close.code), close.reason.to_string())))
        }
        other => bail!("unexpected first frame: {other:?}"),
    }
}

#[tokio::test]
async fn one_user_gets_ten_sockets_not_fifty_and_a_closed_one_frees_its_place() -> Result<()> {
    let node = TestNode::start_with(&defaults()).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let mut open = Vec::new();
    let mut refusals = Vec::new();
    for _ in 0..50 {
        match connect(&node, &alice.token).await? {
            Ok(ws) => open.push(ws),
            Err(close) => refusals.push(close),
        }
    }
    assert_eq!(open.len(), 10, "max_connections_per_user is 10");
    assert_eq!(refusals.len(), 40);
    for (code, reason) in &refusals {
        assert_eq!(*code, 4030, "{reason}");
        assert!(reason.contains("limit 10"), "{reason}");
    }
    // Other users are not affected.
    WsClient::connect(node.addr, &bob.token).await?;

    // Once one closes (the server notices), a new one gets in.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&node, &alice.token).await? {
            Ok(ws) => {
                open.push(ws);
                break;
            }
            Err((code, reason)) if code == 4030 && Instant::now() < deadline => {
                let _ = reason;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(close) => bail!("still refused: {close:?}"),
        }
    }
    assert_eq!(open.len(), 10);
    Ok(())
}
