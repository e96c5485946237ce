//! Community channels in a real two-node cluster: the channel's room runs on node 2 while
//! every WebSocket and REST call goes through node 1. Permission changes made through node 1
//! (a role taken away, a timeout, a kick) reach the channel on node 2 and take effect on the
//! live sessions at once, and a moderator on node 1 moves a voice participant out of a
//! channel whose media runs on node 2 (a version 9 call between the nodes).
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it the test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::cluster::TestCluster;
use common::community::{code, found, text};
use common::{TestNode, User, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

/// `method /api/v1{path}` as `user`, sending again while the cluster answers "retry later".
async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    user: &User,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, reply) =
            common::community::call(node, method.clone(), path, user, body.clone()).await?;
        if status != 503 || Instant::now() > deadline {
            return Ok((status, reply));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A WebSocket request, sent again while it is answered `UNAVAILABLE`.
async fn request(ws: &mut WsClient, event: &str, data: Value) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ack = ws.request(event, data.clone()).await?;
        if ack["error"]["code"] != "UNAVAILABLE" || Instant::now() > deadline {
            return Ok(ack);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A new text channel of community `id` whose room is placed on node 2.
async fn channel_on_node_2(node: &TestNode, owner: &User, id: &str) -> Result<String> {
    placed_on_node_2(node, owner, id, "text").await
}

/// A new channel of `kind` in community `id` whose room is placed on node 2.
async fn placed_on_node_2(node: &TestNode, owner: &User, id: &str, kind: &str) -> Result<String> {
    for i in 0..40 {
        let (status, body) = call(
            node,
            Method::POST,
            &format!("/communities/{id}/channels"),
            owner,
            Some(json!({"name": format!("channel {i}"), "kind": kind})),
        )
        .await?;
        if status != 201 {
            bail!("channel not created: {status} {body}");
        }
        let channel = text(&body, "/data/id");
        if voiceflow_node::cluster::owner_among(&[1, 2], channel.parse()?) == Some(2) {
            return Ok(channel);
        }
    }
    bail!("no channel placed on node 2 in 40 tries")
}

#[tokio::test]
async fn permission_changes_through_one_node_reach_a_channel_on_another() -> Result<()> {
    let Some(cluster) = TestCluster::start(2, "channels").await? else {
        return Ok(());
    };
    let node = cluster.node(1);
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let id = found(node, &owner, "Spread", &[&alice, &bob]).await?;
    let channel = channel_on_node_2(node, &owner, &id).await?;

    // A role opens the channel, hidden from @everyone, to alice.
    let (_, role) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        &owner,
        Some(json!({"name": "Inner", "position": 1})),
    )
    .await?;
    let role = text(&role, "/data/id");
    let overwrites = format!("/communities/{id}/channels/{channel}/overwrites");
    for (target, body) in [
        (
            id.as_str(),
            json!({"type": "role", "deny": ["view_channel"]}),
        ),
        (
            role.as_str(),
            json!({"type": "role", "allow": ["view_channel"]}),
        ),
    ] {
        let (status, reply) = call(
            node,
            Method::PUT,
            &format!("{overwrites}/{target}"),
            &owner,
            Some(body),
        )
        .await?;
        assert_eq!(status, 200, "{reply}");
    }
    let grant = format!("/communities/{id}/members/{}/roles/{role}", alice.id);
    let (status, _) = call(node, Method::PUT, &grant, &owner, None).await?;
    assert_eq!(status, 200);
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    let ack = request(&mut b, "room:join", json!({"roomId": channel})).await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");
    let ack = request(&mut a, "room:join", json!({"roomId": channel})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let sent = request(
        &mut a,
        "message:send",
        json!({"roomId": channel, "content": "inner circle"}),
    )
    .await?;
    assert_eq!(sent["ok"], true, "{sent}");

    // Taken away through node 1: the channel on node 2 removes alice live.
    let (status, _) = call(node, Method::DELETE, &grant, &owner, None).await?;
    assert_eq!(status, 200);
    a.wait_for(|v| v["type"] == "room:removed" && v["data"]["roomId"] == channel.as_str())
        .await?;
    let ack = request(
        &mut a,
        "message:send",
        json!({"roomId": channel, "content": "still inside?"}),
    )
    .await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");

    // The override removed, bob is in; a timeout through node 1 silences him at once.
    let (status, _) = call(
        node,
        Method::DELETE,
        &format!("{overwrites}/{id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let ack = request(&mut b, "room:join", json!({"roomId": channel})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let timeout = format!("/communities/{id}/members/{}/timeout", bob.id);
    let (status, _) = call(
        node,
        Method::PUT,
        &timeout,
        &owner,
        Some(json!({"secs": 60})),
    )
    .await?;
    assert_eq!(status, 200);
    let ack = request(
        &mut b,
        "message:send",
        json!({"roomId": channel, "content": "timed out"}),
    )
    .await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");

    // A kick through node 1 removes him from the channel on node 2.
    let (status, body) = call(
        node,
        Method::DELETE,
        &format!("/communities/{id}/members/{}", bob.id),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{} {body}", code(&body).unwrap_or_default());
    let removed = b
        .wait_for(|v| v["type"] == "room:removed" && v["data"]["roomId"] == channel.as_str())
        .await?;
    assert_eq!(removed["data"]["by"], owner.id.as_str(), "{removed}");
    Ok(())
}

/// A room's settings edited through one node reach its actor on the other: made private,
/// it refuses a newcomer's join at once.
#[tokio::test]
async fn a_room_edited_through_one_node_changes_on_its_owner() -> Result<()> {
    let Some(cluster) = TestCluster::start(2, "roomedit").await? else {
        return Ok(());
    };
    let node = cluster.node(1);
    let owner = node.register("owner").await?;
    let newcomer = node.register("newcomer").await?;
    let mut room = None;
    for i in 0..40 {
        let (id, _) = node
            .create_room(&owner, &format!("Room {i}"), json!({"isPublic": true}), 50)
            .await?;
        if voiceflow_node::cluster::owner_among(&[1, 2], id.parse()?) == Some(2) {
            room = Some(id);
            break;
        }
    }
    let Some(room) = room else {
        bail!("no room placed on node 2 in 40 tries");
    };
    // Started on node 2 by the owner's join through node 1.
    let mut o = node.ws(&owner).await?;
    let ack = request(&mut o, "room:join", json!({"roomId": room})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let (status, body) = call(
        node,
        Method::PATCH,
        &format!("/rooms/{room}"),
        &owner,
        Some(json!({"settings": {"isPublic": false}})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let mut n = node.ws(&newcomer).await?;
    let ack = request(&mut n, "room:join", json!({"roomId": room})).await?;
    assert_eq!(
        ack["error"]["code"], "FORBIDDEN",
        "the owner on node 2 knows: {ack}"
    );
    Ok(())
}

#[tokio::test]
async fn a_move_through_one_node_disconnects_a_participant_on_another() -> Result<()> {
    let extra = "\n[voice]\nudp_port = 0\nconnect_timeout_secs = 5\n";
    let Some(cluster) = TestCluster::start_with(2, "channels_voice_move", extra).await? else {
        return Ok(());
    };
    let node = cluster.node(1);
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let id = found(node, &owner, "Moves", &[&alice]).await?;
    let lounge = placed_on_node_2(node, &owner, &id, "voice").await?;
    let den = placed_on_node_2(node, &owner, &id, "voice").await?;
    let path = format!("/communities/{id}/members/{}/voice/move", alice.id);

    // Not in the channel yet: the owner on node 2 answers NOT_FOUND through node 1.
    let body = json!({"fromChannelId": lounge, "toChannelId": den});
    let (status, reply) = call(node, Method::POST, &path, &owner, Some(body.clone())).await?;
    assert_eq!((status, code(&reply)), (404, Some("NOT_FOUND")), "{reply}");

    // Alice joins the lounge's voice through node 1 (her media terminates on node 2), and is
    // moved: her session hears where to go.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut alice_voice = loop {
        match common::voice::Participant::join(node, &alice, &lounge).await {
            Ok(p) => break p,
            // The cluster may still be settling ("retry later").
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let (status, reply) = call(node, Method::POST, &path, &owner, Some(body)).await?;
    assert_eq!(status, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frames = alice_voice.pump(Duration::from_millis(300)).await?;
        if frames
            .iter()
            .any(|f| f["type"] == "voice:moved" && f["data"]["toChannelId"] == den.as_str())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("no voice:moved");
        }
    }
    // Moved once: she is no longer in the lounge.
    let again = json!({"fromChannelId": lounge});
    let (status, reply) = call(node, Method::POST, &path, &owner, Some(again)).await?;
    assert_eq!((status, code(&reply)), (404, Some("NOT_FOUND")), "{reply}");
    Ok(())
}
