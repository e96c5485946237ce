//! What was acknowledged survives: a graceful restart, and `kill -9` in the middle of sends.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{FAST_CONFIG, TestNode};
use serde_json::json;

#[tokio::test]
async fn graceful_restart_keeps_everything_and_says_going_away() -> anyhow::Result<()> {
    let mut node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    for i in 0..20 {
        ws.request(
            "message:send",
            json!({"roomId": room, "content": format!("m{i}")}),
        )
        .await?;
    }
    let before = node.history(&alice.token, &room, 100).await?;
    assert_eq!(before.len(), 20);
    let code = node.terminate()?;
    assert_eq!(code, Some(0), "SIGTERM exits cleanly");
    assert_eq!(
        ws.closed().await?,
        Some(1001),
        "clients are told the server is going away"
    );

    let dir = node.take_dir().ok_or_else(|| anyhow::anyhow!("dir"))?;
    let node = TestNode::start_in(dir.path(), FAST_CONFIG).await?;
    let after = node.history(&alice.token, &room, 100).await?;
    assert_eq!(after, before);
    // Tokens issued before the restart still work (the secret was kept in the data dir).
    assert_eq!(
        node.get("/api/v1/users/me", Some(&alice.token)).await?.0,
        200
    );
    Ok(())
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message() -> anyhow::Result<()> {
    let mut node = TestNode::start().await?;
    let mut users = Vec::new();
    for name in ["u_one", "u_two", "u_three"] {
        users.push(node.register(name).await?);
    }
    let (room, code) = node
        .create_room(&users[0], "General", json!({}), 10)
        .await?;
    for u in &users[1..] {
        node.join_code(u, &code).await?;
    }
    // Three clients send as fast as acks allow (16 in flight each) until the node dies.
    let mut tasks = Vec::new();
    for (n, user) in users.iter().enumerate() {
        let mut ws = node.ws(user).await?;
        ws.request("room:join", json!({"roomId": room})).await?;
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut in_flight = std::collections::VecDeque::new();
            for i in 0..100_000u32 {
                let content = format!("c{n}-{i}");
                match ws
                    .send(
                        "message:send",
                        json!({"roomId": room, "content": content, "nonce": content}),
                    )
                    .await
                {
                    Ok(id) => in_flight.push_back(id),
                    Err(_) => break,
                }
                if in_flight.len() >= 16 {
                    let Some(id) = in_flight.pop_front() else {
                        break;
                    };
                    match ws.ack(id).await {
                        Ok(ack) if ack["ok"] == true => acked.push((
                            ack["data"]["message"]["id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            ack["data"]["message"]["content"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        )),
                        _ => break,
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = node.kill9().ok_or_else(|| anyhow::anyhow!("dir"))?;
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(tokio::time::timeout(Duration::from_secs(30), t).await??);
    }
    assert!(acked.len() > 50, "load ran: {} acked", acked.len());

    let node = TestNode::start_in(dir.path(), FAST_CONFIG).await?;
    let stored = node.history(&users[0].token, &room, 100).await?;
    let stored_ids: Vec<&str> = stored
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default())
        .collect();
    let unique: HashSet<&str> = stored_ids.iter().copied().collect();
    assert_eq!(unique.len(), stored_ids.len(), "no duplicates");
    let by_id: std::collections::HashMap<&str, &str> = stored
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default(),
                m["content"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for (id, content) in &acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(&content.as_str()),
            "acknowledged message {id} lost"
        );
    }
    // Per-sender order in the log is the order they were sent.
    for n in 0..3 {
        let seq: Vec<u32> = stored
            .iter()
            .filter_map(|m| {
                m["content"]
                    .as_str()?
                    .strip_prefix(&format!("c{n}-"))?
                    .parse()
                    .ok()
            })
            .collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "sender {n} reordered");
    }
    eprintln!(
        "kill -9: {} acknowledged, {} stored, all acknowledged present",
        acked.len(),
        stored.len()
    );
    Ok(())
}
