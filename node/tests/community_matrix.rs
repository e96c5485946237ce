//! The permission matrix of a community channel on a real node: for each event a member can
//! send, the permission it needs is taken away by an `@everyone` override and the event is
//! refused with its stable code, then given back and the same event passes. A channel the
//! member may not view answers as if it did not exist, on every path (WebSocket and REST).

mod common;

use anyhow::Result;
use common::community::{call, found, text};
use common::{TestNode, User, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

/// Sets `@everyone`'s override in `channel` to deny `deny` (nothing: no override).
async fn deny(
    node: &TestNode,
    owner: &User,
    (id, channel): (&str, &str),
    deny: &[&str],
) -> Result<()> {
    let path = format!("/communities/{id}/channels/{channel}/overwrites/{id}");
    let (status, body) = match deny {
        [] => call(node, Method::DELETE, &path, owner, None).await?,
        _ => {
            call(
                node,
                Method::PUT,
                &path,
                owner,
                Some(json!({"type": "role", "deny": deny})),
            )
            .await?
        }
    };
    anyhow::ensure!(
        status == 200 || (deny.is_empty() && status == 404),
        "{status} {body}"
    );
    Ok(())
}

/// The error code of an ack (`None` when it passed).
fn refusal(ack: &Value) -> Option<String> {
    (ack["ok"] != true).then(|| ack["error"]["code"].as_str().unwrap_or("?").to_owned())
}

/// An upload of a small text file to `room` as `user`: the HTTP status.
async fn upload(node: &TestNode, user: &User, room: &str) -> Result<u16> {
    let response = node
        .http
        .post(node.url(&format!("/api/v1/files?roomId={room}&name=a.txt")))
        .bearer_auth(&user.token)
        .body("hello")
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_needs_its_permission_and_hidden_channels_do_not_exist() -> Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Matrix", &[&member]).await?;
    let (status, created) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "general"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{created}");
    let ch = text(&created, "/data/id");
    let mut ws: WsClient = node.ws(&member).await?;
    let mut own = node.ws(&owner).await?;
    for socket in [&mut ws, &mut own] {
        let ack = socket.request("room:join", json!({"roomId": ch})).await?;
        anyhow::ensure!(ack["ok"] == true, "{ack}");
    }
    let mine = ws
        .request("message:send", json!({"roomId": ch, "content": "mine"}))
        .await?;
    let mine = text(&mine, "/data/message/id");
    let theirs = own
        .request(
            "message:send",
            json!({"roomId": ch, "content": "the owner's"}),
        )
        .await?;
    let theirs = text(&theirs, "/data/message/id");

    // (permission taken away, the event, the code it is refused with)
    type Event = (&'static str, Value);
    let cases: Vec<(&str, Event)> = vec![
        (
            "send_messages",
            ("message:send", json!({"roomId": ch, "content": "hi"})),
        ),
        (
            "send_messages",
            (
                "message:update",
                json!({"roomId": ch, "messageId": mine, "content": "edited"}),
            ),
        ),
        ("send_messages", ("typing:start", json!({"roomId": ch}))),
        (
            "add_reactions",
            (
                "reaction:add",
                json!({"roomId": ch, "messageId": theirs, "emoji": "👍"}),
            ),
        ),
    ];
    for (permission, (event, data)) in &cases {
        deny(&node, &owner, (&id, &ch), &[permission]).await?;
        let ack = ws.request(event, data.clone()).await?;
        assert_eq!(
            refusal(&ack).as_deref(),
            Some("FORBIDDEN"),
            "{event} without {permission}: {ack}"
        );
        deny(&node, &owner, (&id, &ch), &[]).await?;
        let ack = ws.request(event, data.clone()).await?;
        assert_eq!(refusal(&ack), None, "{event} with {permission}: {ack}");
    }
    // Deleting someone else's message needs manage_messages, which @everyone lacks.
    let delete = json!({"roomId": ch, "messageId": theirs});
    let ack = ws.request("message:delete", delete).await?;
    assert_eq!(refusal(&ack).as_deref(), Some("FORBIDDEN"), "{ack}");
    // Files need attach_files (and send_messages).
    deny(&node, &owner, (&id, &ch), &["attach_files"]).await?;
    assert_eq!(upload(&node, &member, &ch).await?, 403);
    deny(&node, &owner, (&id, &ch), &[]).await?;
    assert_eq!(upload(&node, &member, &ch).await?, 201);
    let file = {
        let response = node
            .http
            .post(node.url(&format!("/api/v1/files?roomId={ch}&name=b.txt")))
            .bearer_auth(&owner.token)
            .body("owner's file")
            .send()
            .await?;
        let body: Value = response.json().await?;
        text(&body, "/data/id")
    };

    // Hidden: every path answers as if the channel did not exist.
    deny(&node, &owner, (&id, &ch), &["view_channel"]).await?;
    let mut fresh = node.ws(&member).await?;
    let ack = fresh.request("room:join", json!({"roomId": ch})).await?;
    assert_eq!(refusal(&ack).as_deref(), Some("ROOM_NOT_FOUND"), "{ack}");
    let ack = fresh
        .request("message:send", json!({"roomId": ch, "content": "hi"}))
        .await?;
    assert_eq!(refusal(&ack).as_deref(), Some("ROOM_NOT_FOUND"), "{ack}");
    let ack = fresh
        .request("message:read", json!({"roomId": ch, "messageId": theirs}))
        .await?;
    assert_eq!(refusal(&ack).as_deref(), Some("ROOM_NOT_FOUND"), "{ack}");
    for path in [
        format!("/api/v1/rooms/{ch}/messages"),
        format!("/api/v1/rooms/{ch}"),
        format!("/api/v1/files/{file}"),
    ] {
        let (status, body) = node.get(&path, Some(&member.token)).await?;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(upload(&node, &member, &ch).await?, 404);
    let (status, listed) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/channels"),
        &member,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["channels"], json!([]), "{listed}");
    Ok(())
}
