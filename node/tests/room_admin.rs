//! Room admins manage membership through a real node: rotating the join code (the old one
//! stops working at once) and removing a member (their live session leaves the room and gets
//! `room:removed`; they can no longer post); non-admins may do neither.

mod common;

use anyhow::{Context, Result};
use common::TestNode;
use serde_json::json;

async fn delete(node: &TestNode, path: &str, token: &str) -> Result<(u16, serde_json::Value)> {
    node.call(reqwest::Method::DELETE, path, Some(token), None)
        .await
}

#[tokio::test]
async fn an_admin_rotates_the_join_code() -> Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (room, old) = node
        .create_room(&alice, "private", json!({"isPublic": false}), 100)
        .await?;
    let path = format!("/api/v1/rooms/{room}/join-code");
    assert_eq!(node.join_code(&bob, &old).await?.0, 200);
    let (status, body) = node.post(&path, Some(&bob.token), json!({})).await?;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("FORBIDDEN")));

    let (status, body) = node.post(&path, Some(&alice.token), json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let new = body["data"]["joinCode"]
        .as_str()
        .context("new code")?
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(new.len(), 8);
    let (status, body) = node.join_code(&carol, &old).await?;
    assert_eq!(status, 404, "the old code no longer works: {body}");
    let (status, body) = node.join_code(&carol, &new).await?;
    assert_eq!(status, 200, "{body}");
    let (_, room_now) = node
        .get(&format!("/api/v1/rooms/{room}"), Some(&alice.token))
        .await?;
    assert_eq!(room_now["data"]["joinCode"], new.as_str());
    Ok(())
}

#[tokio::test]
async fn an_admin_removes_a_member_and_their_session_leaves() -> Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (room, code) = node
        .create_room(&alice, "club", json!({"isPublic": true}), 100)
        .await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    assert_eq!(node.join_code(&carol, &code).await?.0, 200);
    let mut bob_ws = node.ws(&bob).await?;
    let ack = bob_ws.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let mut alice_ws = node.ws(&alice).await?;
    let ack = alice_ws
        .request("room:join", json!({"roomId": room}))
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");

    let member = |id: &str| format!("/api/v1/rooms/{room}/members/{id}");
    let (status, _) = delete(&node, &member(&bob.id), &carol.token).await?;
    assert_eq!(status, 403, "a member cannot remove another");
    let (status, _) = delete(&node, &member(&alice.id), &alice.token).await?;
    assert_eq!(status, 400, "an admin removes others, and leaves to go");
    let stranger = node.register("dave").await?;
    let (status, _) = delete(&node, &member(&stranger.id), &alice.token).await?;
    assert_eq!(status, 404, "not a member");

    let (status, body) = delete(&node, &member(&bob.id), &alice.token).await?;
    assert_eq!(status, 200, "{body}");
    let removed = bob_ws.next_event("room:removed").await?;
    assert_eq!(removed["data"]["roomId"], room.as_str(), "{removed}");
    assert_eq!(removed["data"]["by"], alice.id.as_str(), "{removed}");
    let (_, members) = node
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&alice.token))
        .await?;
    let ids: Vec<&str> = members["data"]
        .as_array()
        .context("members")?
        .iter()
        .filter_map(|m| m["userId"].as_str().or(m["id"].as_str()))
        .collect();
    assert!(!ids.contains(&bob.id.as_str()), "{members}");
    assert!(ids.contains(&carol.id.as_str()), "{members}");
    let ack = bob_ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "still here?"}),
        )
        .await?;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    // Alice's session sees Bob go.
    let note = alice_ws
        .wait_for(|f| {
            f["type"] == "message:received"
                && f["data"]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("was removed"))
        })
        .await?;
    assert_eq!(note["data"]["userId"], bob.id.as_str(), "{note}");
    Ok(())
}
