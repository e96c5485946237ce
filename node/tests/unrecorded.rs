//! A room that keeps no messages (`recordMessages: false`), on a real node: its messages are
//! acknowledged and delivered live with their content, a client resuming within the window
//! gets them replayed with it, but storage never gets the content: history shows tombstones,
//! a resume after the window or a restart replays tombstones, the node's data directory
//! holds no copy of the text, and files are refused.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use common::{FAST_CONFIG, TestNode, User, WsClient};
use serde_json::{Value, json};

/// A second of window: long enough to resume within it, short enough to wait out.
fn config() -> String {
    format!("unrecorded_window_secs = 2\n{FAST_CONFIG}")
}

/// Joins `room` on a fresh connection with `since`; the content of each replayed message.
async fn resume(node: &TestNode, user: &User, room: &str, since: u64) -> Result<Vec<String>> {
    let mut ws = node.ws(user).await?;
    let ack = ws
        .request("room:join", json!({"roomId": room, "since": since}))
        .await?;
    anyhow::ensure!(ack["ok"] == true, "{ack}");
    let mut contents = Vec::new();
    while let Some(frame) = ws.next_within(Duration::from_millis(300)).await {
        if frame["type"] == "message:received" {
            contents.push(frame["data"]["content"].as_str().unwrap_or("?").to_owned());
        }
    }
    Ok(contents)
}

/// Whether any file under `dir` contains `needle`.
fn found_in(dir: &Path, needle: &[u8]) -> Result<bool> {
    for entry in walk(dir)? {
        let bytes = std::fs::read(&entry)?;
        if bytes.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// Nonces that say nothing of the content (a nonce is stored, like any retry key).
static NONCE: AtomicU64 = AtomicU64::new(1);

async fn send(ws: &mut WsClient, room: &str, content: &str) -> Result<Value> {
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": content, "nonce": format!("n{}", NONCE.fetch_add(1, Ordering::Relaxed))}),
        )
        .await?;
    anyhow::ensure!(ack["ok"] == true, "{ack}");
    Ok(ack["data"]["message"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_a_room_that_keeps_none_are_delivered_but_never_stored() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut node = TestNode::start_in(tmp.path(), &config()).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let settings = json!({"isPublic": false, "recordMessages": false});
    let (room, code) = node
        .create_room(&alice, "off the record", settings, 10)
        .await?;
    node.join_code(&bob, &code).await?;
    let (recorded, recorded_code) = node
        .create_room(&alice, "kept", json!({"isPublic": false}), 10)
        .await?;
    node.join_code(&bob, &recorded_code).await?;

    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    for ws in [&mut a, &mut b] {
        for r in [&room, &recorded] {
            let ack = ws.request("room:join", json!({"roomId": r})).await?;
            anyhow::ensure!(ack["ok"] == true, "{ack}");
        }
    }
    // Acknowledged and delivered with its content.
    let secret = "ephemeral-7Qz4-a-secret-that-is-never-written";
    let sent = send(&mut a, &room, secret).await?;
    assert_eq!(sent["content"], secret, "{sent}");
    let seq = sent["seq"].as_u64().unwrap_or_default();
    let live = b.next_event("message:received").await?;
    assert_eq!(live["data"]["content"], secret, "{live}");
    // A control: the same kind of text in a room that keeps its messages.
    let kept = "recorded-3Hw9-a-text-that-is-written-to-disk";
    send(&mut a, &recorded, kept).await?;

    // Storage has the tombstone only.
    let history = node.history(&bob.token, &room, 50).await?;
    let stored = history
        .iter()
        .find(|m| m["id"] == sent["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(stored["content"], "", "{stored}");
    assert_eq!(stored["deleted"], true, "{stored}");

    // Within the window a resume replays it with its content.
    assert_eq!(resume(&node, &bob, &room, seq - 1).await?, vec![secret]);

    // Files are refused.
    let ack = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "", "type": "file", "fileId": "12345"}),
        )
        .await?;
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{ack}");

    // Past the window, a resume replays the tombstone.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if resume(&node, &bob, &room, seq - 1).await? == vec![String::new()] {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "still replayed after the window");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // On disk: the kept text is there, the other is not (journal and tables alike).
    node.terminate()?;
    let data = tmp.path().join("data");
    assert!(
        found_in(&data, kept.as_bytes())?,
        "the control text is on disk"
    );
    assert!(
        !found_in(&data, secret.as_bytes())?,
        "the unrecorded text is not"
    );

    // After a restart: the tombstone, and sending still works.
    let node = TestNode::start_in(tmp.path(), &config()).await?;
    assert_eq!(
        resume(&node, &bob, &room, seq - 1).await?,
        vec![String::new()]
    );
    let mut a = node.ws(&alice).await?;
    let ack = a.request("room:join", json!({"roomId": room})).await?;
    anyhow::ensure!(ack["ok"] == true, "{ack}");
    send(&mut a, &room, "still live").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_can_keep_no_messages() -> Result<()> {
    use common::community::{call, found, text};
    use reqwest::Method;
    let node = TestNode::start_with(&config()).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Quiet", &[&member]).await?;
    let (status, created) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "off the record", "recordMessages": false})),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["recordMessages"], false, "{created}");
    let channel = text(&created, "/data/id");
    let mut ws = node.ws(&member).await?;
    let ack = ws.request("room:join", json!({"roomId": channel})).await?;
    anyhow::ensure!(ack["ok"] == true, "{ack}");
    let sent = send(&mut ws, &channel, "said once, kept nowhere").await?;
    let history = node.history(&member.token, &channel, 50).await?;
    let stored = history
        .iter()
        .find(|m| m["id"] == sent["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&stored["content"], &stored["deleted"]),
        (&json!(""), &json!(true)),
        "{stored}"
    );

    // Turned back on: what is sent from now on is kept.
    let (status, edited) = call(
        &node,
        Method::PATCH,
        &format!("/communities/{id}/channels/{channel}"),
        &owner,
        Some(json!({"recordMessages": true})),
    )
    .await?;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["data"]["recordMessages"], true, "{edited}");
    // (The edit reaches the running room right after the reply: a few tries at most.)
    let deadline = Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let text = format!("kept from now on, try {attempt:03}");
        let sent = send(&mut ws, &channel, &text).await?;
        let history = node.history(&member.token, &channel, 50).await?;
        let stored = history
            .iter()
            .find(|m| m["id"] == sent["id"])
            .cloned()
            .unwrap_or_default();
        if stored["content"] == text.as_str() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never kept: {stored}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
