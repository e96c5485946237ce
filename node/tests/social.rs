//! Rich messages, resume by seq, presence and read state over real WebSockets on one node.

mod common;

use std::time::Duration;

use common::{TestNode, WsClient};
use serde_json::{Value, json};

/// Room events (logged: they carry a seq) of `room` in `frames`.
fn logged(frames: &[Value], room: &str) -> Vec<(String, u64)> {
    frames
        .iter()
        .filter(|f| f["data"]["roomId"] == room && f["data"]["seq"].as_u64().is_some())
        .filter(|f| f["type"] != "ack" && f["data"]["type"] != "system")
        .map(|f| {
            (
                f["type"].as_str().unwrap_or_default().to_owned(),
                f["data"]["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Reads frames until `n` logged events of `room` arrived (or 15 s pass).
async fn collect(ws: &mut WsClient, room: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    while logged(&out, room).len() < n {
        let frame = ws
            .wait_for(|v| v["type"] != "ack" && v["data"]["seq"].as_u64().is_some())
            .await?;
        out.push(frame);
    }
    Ok(out)
}

#[tokio::test]
async fn edits_deletes_reactions_and_replies_reach_every_member_in_log_order() -> anyhow::Result<()>
{
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    let joined = a.request("room:join", json!({"roomId": room})).await?;
    assert!(joined["data"]["epoch"].as_u64().is_some(), "{joined}");
    b.request("room:join", json!({"roomId": room})).await?;

    let sent = b
        .request("message:send", json!({"roomId": room, "content": "hello"}))
        .await?;
    let id = sent["data"]["message"]["id"].clone();
    // Bob's "joined the room" notice may be committed before or after Alice's join ack;
    // the first message's seq is the settled base.
    let start = sent["data"]["message"]["seq"].as_u64().unwrap_or(1) - 1;
    let reply = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "hi bob", "replyTo": id}),
        )
        .await?;
    assert_eq!(reply["data"]["message"]["replyTo"]["snippet"], "hello");
    assert_eq!(reply["data"]["message"]["replyTo"]["id"], id);
    // Only the author edits; the room is found from the message when not given.
    let refused = a
        .request("message:update", json!({"messageId": id, "content": "x"}))
        .await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let edited = b
        .request(
            "message:update",
            json!({"messageId": id, "content": "hello, all"}),
        )
        .await?;
    assert_eq!(
        edited["data"]["message"]["content"], "hello, all",
        "{edited}"
    );
    for (by_alice, emoji) in [(true, "👍"), (false, "👍"), (true, "🎉")] {
        let ws = if by_alice { &mut a } else { &mut b };
        let ack = ws
            .request(
                "reaction:add",
                json!({"roomId": room, "messageId": id, "emoji": emoji}),
            )
            .await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let again = a
        .request(
            "reaction:add",
            json!({"roomId": room, "messageId": id, "emoji": "👍"}),
        )
        .await?;
    assert_eq!(again["data"]["count"], 2, "one per user per emoji: {again}");
    assert_eq!(again["data"]["seq"], 0, "nothing changed");
    let bad = a
        .request(
            "reaction:add",
            json!({"roomId": room, "messageId": id, "emoji": "a b"}),
        )
        .await?;
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(bad["error"]["details"]["field"], "emoji");
    let removed = a
        .request(
            "reaction:remove",
            json!({"roomId": room, "messageId": id, "emoji": "🎉"}),
        )
        .await?;
    assert_eq!(removed["data"]["added"], false);
    // The admin deletes Bob's message: a tombstone stays.
    let deleted = a
        .request("message:delete", json!({"roomId": room, "messageId": id}))
        .await?;
    assert_eq!(deleted["ok"], true, "{deleted}");
    let late = b
        .request(
            "message:update",
            json!({"messageId": id, "content": "back"}),
        )
        .await?;
    assert_eq!(late["error"]["code"], "VALIDATION_ERROR", "{late}");

    let expected: Vec<(String, u64)> = [
        "message:received",
        "message:received",
        "message:updated",
        "reaction:updated",
        "reaction:updated",
        "reaction:updated",
        "reaction:updated",
        "message:deleted",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| (t.to_string(), start + 1 + i as u64))
    .collect();
    for ws in [&mut a, &mut b] {
        let frames = collect(ws, &room, expected.len()).await?;
        assert_eq!(
            logged(&frames, &room),
            expected,
            "same events, same order, dense seqs"
        );
        let reactions = frames.iter().rfind(|f| f["type"] == "reaction:updated");
        let last = reactions.map(|f| f["data"]["reactions"].clone());
        assert_eq!(
            last,
            Some(json!([{"emoji": "👍", "count": 2, "userIds": [alice.id, bob.id]}]))
        );
    }
    let (_, history) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages?limit=10"),
            Some(&bob.token),
        )
        .await?;
    let stored = history["data"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["id"] == id).cloned())
        .unwrap_or_default();
    assert_eq!(stored["deleted"], true, "{stored}");
    assert_eq!(stored["content"], "");
    assert!(stored["editedAt"].is_string());
    // The reply no longer quotes the deleted parent, whether or not the parent is on the page.
    let reply_id = reply["data"]["message"]["id"].clone();
    let after_reply = reply_id
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|n| n + 1)
        .unwrap_or_default();
    for query in [
        "limit=10".to_owned(),
        format!("limit=1&before={after_reply}"),
    ] {
        let (_, page) = node
            .get(
                &format!("/api/v1/rooms/{room}/messages?{query}"),
                Some(&bob.token),
            )
            .await?;
        let listed = page["data"]
            .as_array()
            .and_then(|l| l.iter().find(|m| m["id"] == reply_id).cloned())
            .unwrap_or_default();
        assert_eq!(listed["replyTo"]["id"], id, "{query}: {page}");
        assert_eq!(listed["replyTo"]["snippet"], "", "{query}: {page}");
    }
    Ok(())
}

#[tokio::test]
async fn a_reconnect_after_500_missed_messages_replays_exactly_those_and_their_changes_in_order()
-> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    let mut a = node.ws(&alice).await?;
    let joined = a.request("room:join", json!({"roomId": room})).await?;
    let epoch = joined["data"]["epoch"].clone();
    // Bob's "joined the room" notice may still be queued when the join is acked; a message of
    // Alice's own, once acked, is committed after it, so its seq is a settled cursor.
    let marker = a
        .request("message:send", json!({"roomId": room, "content": "cursor"}))
        .await?;
    let since = marker["data"]["message"]["seq"].clone();
    assert!(since.as_u64().is_some(), "{marker}");
    drop(a);

    let mut b = node.ws(&bob).await?;
    b.request("room:join", json!({"roomId": room})).await?;
    let mut pending = Vec::new();
    for i in 0..500 {
        pending.push(
            b.send(
                "message:send",
                json!({"roomId": room, "content": format!("m{i}"), "nonce": format!("n{i}")}),
            )
            .await?,
        );
    }
    let mut ids = Vec::new();
    for id in pending {
        let ack = b.ack(id).await?;
        assert_eq!(ack["ok"], true, "{ack}");
        ids.push(ack["data"]["message"]["id"].clone());
    }
    // While Alice is away: an edit, a reaction, a deletion over the WebSocket and one over
    // REST (Bob deletes his own messages).
    b.request(
        "message:update",
        json!({"roomId": room, "messageId": ids[0], "content": "m0!"}),
    )
    .await?;
    b.request(
        "reaction:add",
        json!({"roomId": room, "messageId": ids[0], "emoji": "🔥"}),
    )
    .await?;
    let deleted = b
        .request(
            "message:delete",
            json!({"roomId": room, "messageId": ids[1]}),
        )
        .await?;
    assert_eq!(deleted["ok"], true, "{deleted}");
    let path = format!("/api/v1/messages/{}", ids[2].as_str().unwrap_or_default());
    let (status, body) = node
        .call(reqwest::Method::DELETE, &path, Some(&bob.token), None)
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = node
        .call(reqwest::Method::DELETE, &path, Some("not-a-token"), None)
        .await?;
    assert_eq!(status, 401, "{body}");

    let mut a = node.ws(&alice).await?;
    let ack_id = a
        .send(
            "room:join",
            json!({"roomId": room, "since": since, "epoch": epoch}),
        )
        .await?;
    let ack = a.ack(ack_id).await?;
    assert_eq!(ack["data"]["replayed"], 504, "{ack}");
    assert_eq!(ack["data"]["replayTruncated"], false);
    // The replay arrived before the ack: it is all in the backlog.
    let replay: Vec<Value> = a.backlog.drain(..).collect();
    let seqs: Vec<u64> = replay
        .iter()
        .filter_map(|f| f["data"]["seq"].as_u64())
        .collect();
    let base = since.as_u64().unwrap_or(0);
    assert_eq!(seqs, (base + 1..=base + 504).collect::<Vec<_>>());
    let received: Vec<&Value> = replay
        .iter()
        .filter(|f| f["type"] == "message:received")
        .collect();
    let got_ids: Vec<Value> = received.iter().map(|f| f["data"]["id"].clone()).collect();
    assert_eq!(got_ids, ids, "exactly the 500 missed messages, in order");
    let contents: Vec<&str> = received
        .iter()
        .map(|f| f["data"]["content"].as_str().unwrap_or_default())
        .collect();
    let mut want: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    // What was deleted meanwhile is replayed as the tombstone it is now.
    want[1].clear();
    want[2].clear();
    assert_eq!(contents, want);
    assert_eq!(received[1]["data"]["deleted"], true);
    let tail: Vec<&Value> = replay[500..].iter().map(|f| &f["type"]).collect();
    assert_eq!(
        tail,
        [
            "message:updated",
            "reaction:updated",
            "message:deleted",
            "message:deleted"
        ]
    );
    assert_eq!(replay[500]["data"]["content"], "m0!");
    assert_eq!(replay[503]["data"]["messageId"], ids[2]);
    // Live continues at the seam without a gap or a duplicate.
    b.request("message:send", json!({"roomId": room, "content": "live"}))
        .await?;
    let live = a.next_event("message:received").await?;
    assert_eq!(live["data"]["content"], "live");
    assert_eq!(live["data"]["seq"], base + 505);
    // A cursor from another epoch (or beyond the log) replays nothing and says so.
    let mut c = node.ws(&alice).await?;
    let other = c
        .request("room:join", json!({"roomId": room, "since": 3, "epoch": 1}))
        .await?;
    assert_eq!(other["data"]["replayTruncated"], true, "{other}");
    assert_eq!(other["data"]["replayed"], 0);
    Ok(())
}

#[tokio::test]
async fn a_nonce_resent_after_a_reconnect_gives_one_message() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut a = node.ws(&alice).await?;
    a.request("room:join", json!({"roomId": room})).await?;
    let body = json!({"roomId": room, "content": "once", "nonce": "retry-1"});
    let first = a.request("message:send", body.clone()).await?;
    drop(a);
    let mut a = node.ws(&alice).await?;
    let again = a.request("message:send", body).await?;
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(
        again["data"]["message"]["id"],
        first["data"]["message"]["id"]
    );
    assert_eq!(
        again["data"]["message"]["seq"],
        first["data"]["message"]["seq"]
    );
    let (_, history) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
        )
        .await?;
    let count = history["data"]
        .as_array()
        .map_or(0, |l| l.iter().filter(|m| m["content"] == "once").count());
    assert_eq!(count, 1);
    Ok(())
}

/// Waits for `user:presence_changed` about `user` with `status`.
async fn presence(ws: &mut WsClient, user: &str, status: &str) -> anyhow::Result<Value> {
    let (user, status) = (user.to_owned(), status.to_owned());
    ws.wait_for(move |v| {
        v["type"] == "user:presence_changed"
            && v["data"]["userId"] == user.as_str()
            && v["data"]["status"] == status.as_str()
    })
    .await
}

#[tokio::test]
async fn presence_follows_every_session_of_a_user() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    let mut a = node.ws(&alice).await?;
    let joined = a.request("room:join", json!({"roomId": room})).await?;
    let bob_entry = joined["data"]["participants"]
        .as_array()
        .and_then(|p| p.iter().find(|m| m["userId"] == bob.id.as_str()).cloned());
    let bob_entry = bob_entry.unwrap_or_default();
    assert_eq!(
        bob_entry["status"], "offline",
        "every member, with presence: {joined}"
    );
    assert_eq!(bob_entry["online"], false);

    // Bob on his phone and his browser, not even in the room: online once.
    let phone = node.ws(&bob).await?;
    presence(&mut a, &bob.id, "online").await?;
    let mut browser = node.ws(&bob).await?;
    let dnd = browser
        .request("presence:update", json!({"status": "dnd"}))
        .await?;
    assert_eq!(dnd["ok"], true, "{dnd}");
    presence(&mut a, &bob.id, "dnd").await?;
    let refused = browser
        .request("presence:update", json!({"status": "in_call"}))
        .await?;
    assert_eq!(refused["error"]["details"]["field"], "status", "{refused}");
    let (_, members) = node
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&alice.token))
        .await?;
    let listed = members["data"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["userId"] == bob.id.as_str()).cloned())
        .unwrap_or_default();
    assert_eq!(listed["status"], "dnd", "{members}");
    assert_eq!(listed["online"], false, "not subscribed to the room");

    // Killing one connection is not enough; the last one is.
    drop(phone);
    assert!(
        !a.sees_within(Duration::from_secs(2), |v| v["type"]
            == "user:presence_changed"
            && v["data"]["status"] == "offline")
            .await,
        "one session is still open"
    );
    let killed = std::time::Instant::now();
    drop(browser);
    let offline = presence(&mut a, &bob.id, "offline").await?;
    assert!(killed.elapsed() < Duration::from_secs(30));
    assert!(offline["data"]["lastSeen"].as_u64().is_some(), "{offline}");
    Ok(())
}

#[tokio::test]
async fn read_markers_send_receipts_and_drive_unread_counts() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    a.request("room:join", json!({"roomId": room})).await?;
    b.request("room:join", json!({"roomId": room})).await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let ack = b
            .request(
                "message:send",
                json!({"roomId": room, "content": format!("m{i}")}),
            )
            .await?;
        ids.push(ack["data"]["message"]["id"].clone());
    }
    let unread = |list: &Value| {
        list["data"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["id"] == room.as_str()).cloned())
            .unwrap_or_default()
    };
    let (_, mine) = node
        .get("/api/v1/users/me/rooms", Some(&alice.token))
        .await?;
    let entry = unread(&mine);
    assert_eq!(entry["unreadCount"], 3, "{entry}");
    assert_eq!(entry["lastMessage"]["content"], "m2");
    let (_, theirs) = node.get("/api/v1/users/me/rooms", Some(&bob.token)).await?;
    assert_eq!(unread(&theirs)["unreadCount"], 0, "own messages are read");

    let read = a
        .request("message:read", json!({"roomId": room, "messageId": ids[1]}))
        .await?;
    assert_eq!(read["data"]["messageId"], ids[1], "{read}");
    let receipt = b.next_event("message:read_receipt").await?;
    assert_eq!(receipt["data"]["userId"], alice.id.as_str());
    assert_eq!(receipt["data"]["messageId"], ids[1]);
    let back = a
        .request("message:read", json!({"roomId": room, "messageId": ids[0]}))
        .await?;
    assert_eq!(back["data"]["messageId"], ids[1], "never backward");
    let (_, mine) = node
        .get("/api/v1/users/me/rooms", Some(&alice.token))
        .await?;
    let entry = unread(&mine);
    assert_eq!(entry["unreadCount"], 1, "{entry}");
    assert_eq!(entry["lastReadMessageId"], ids[1]);
    Ok(())
}

#[tokio::test]
async fn file_messages_point_at_files_uploaded_to_their_room() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let (other, _) = node.create_room(&alice, "Other", json!({}), 10).await?;
    let upload = |room: String, name: &'static str, bytes: Vec<u8>| {
        let request = node
            .http
            .post(node.url(&format!("/api/v1/files?roomId={room}&name={name}")))
            .bearer_auth(&alice.token)
            .body(bytes);
        async move {
            let resp = request.send().await?;
            anyhow::Ok(resp.json::<Value>().await?["data"]["id"].clone())
        }
    };
    let png = upload(
        room.clone(),
        "a.png",
        b"\x89PNG\r\n\x1a\n0000000000000000".to_vec(),
    )
    .await?;
    let elsewhere = upload(other, "b.txt", b"hello".to_vec()).await?;
    let mut a = node.ws(&alice).await?;
    a.request("room:join", json!({"roomId": room})).await?;
    let sent = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "a.png", "type": "file", "fileId": png}),
        )
        .await?;
    assert_eq!(sent["data"]["message"]["fileId"], png, "{sent}");
    for (kind, file) in [
        ("file", elsewhere.clone()),
        ("file", json!("12345")),
        ("voice_note", png),
    ] {
        let refused = a
            .request(
                "message:send",
                json!({"roomId": room, "content": "x", "type": kind, "fileId": file}),
            )
            .await?;
        assert_eq!(refused["error"]["details"]["field"], "fileId", "{refused}");
    }
    let missing = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "x", "type": "file"}),
        )
        .await?;
    assert_eq!(missing["error"]["code"], "VALIDATION_ERROR", "{missing}");

    // A voice note as browsers record it: WebM with one Opus track (magic numbers alone say
    // video/webm). The same container with a video track is not a voice note.
    let webm = voiceflow_node::files::webm_head;
    let note = upload(room.clone(), "note.webm", webm("A_OPUS")).await?;
    let (_, meta) = node
        .get(
            &format!("/api/v1/files/{}/meta", note.as_str().unwrap_or_default()),
            Some(&alice.token),
        )
        .await?;
    assert_eq!(meta["data"]["mimeType"], "audio/webm", "{meta}");
    let sent = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "", "type": "voice_note", "fileId": note}),
        )
        .await?;
    assert_eq!(sent["data"]["message"]["type"], "voice_note", "{sent}");
    let clip = upload(room.clone(), "clip.webm", webm("V_VP8")).await?;
    let refused = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "", "type": "voice_note", "fileId": clip}),
        )
        .await?;
    assert_eq!(refused["error"]["details"]["field"], "fileId", "{refused}");
    Ok(())
}
