//! Web Push across a real 3-node cluster (QUIC links, the CQL store, the test push service
//! over HTTPS). The message, the sender's session, the mentioned user's presence actor (which
//! decides whether to push) and the node that took the subscription are on different nodes:
//! every node serves the same VAPID key (generated once, kept in the store); a mention reaches
//! the device exactly once; a focused session on another node holds pushes back, even when
//! the session's unfocus reaches the presence actor before the offer of a mention it saw
//! (they travel different links); and once the node of the user's presence actor is killed,
//! its successor pushes the next mention once.
//!
//! Absence is asserted after a positive control, as in `push.rs`: the next push must be the
//! control's, and nothing else may arrive within [`QUIET`] after it.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::cluster::TestCluster;
use common::push_service::{Device, PushService};
use common::{TestNode, User, WsClient};
use serde_json::{Value, json};
use voiceflow_node::cluster::owner_among;

/// How long nothing may arrive after a positive control.
const QUIET: Duration = Duration::from_millis(700);

/// Sends through `ws`; UNAVAILABLE (a room moving after a kill) is retried with the same nonce.
async fn say(ws: &mut WsClient, room: &str, content: &str) -> Result<String> {
    let body = json!({"roomId": room, "content": content, "nonce": format!("n{}", content.len())});
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ack = ws.request("message:send", body.clone()).await?;
        if ack["ok"] == true {
            return ack["data"]["message"]["id"]
                .as_str()
                .map(str::to_owned)
                .context("no message id");
        }
        if ack["error"]["code"] != "UNAVAILABLE" || Instant::now() > deadline {
            bail!("post: {ack}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next push must be `device`'s, for message `id`.
async fn pushed(service: &mut PushService, device: &Device, vapid: &str, id: &str) -> Result<()> {
    let req = service.next().await?;
    let payload = device.open(&req, vapid, &service.origin)?;
    ensure!(payload["messageId"] == id, "expected {id}, got {payload}");
    ensure!(payload["kind"] == "mention", "{payload}");
    Ok(())
}

/// Nothing more arrives within [`QUIET`].
async fn quiet(service: &mut PushService) -> Result<()> {
    match service.within(QUIET).await {
        None => Ok(()),
        Some(extra) => bail!("unexpected push to {}", extra.path),
    }
}

/// Registers users on `node` until one is placed (its presence actor) on `owner`.
async fn user_placed_on(node: &TestNode, owner: u16, name: &str) -> Result<User> {
    for i in 0..40 {
        let user = node.register(&format!("{name}{i}")).await?;
        if owner_among(&[1, 2, 3], user.id.parse()?) == Some(owner) {
            return Ok(user);
        }
    }
    bail!("no user placed on node {owner} in 40 tries")
}

/// Creates rooms through `node` until one is owned by `owner`; returns its id and join code.
async fn room_placed_on(node: &TestNode, by: &User, owner: u16) -> Result<(String, String)> {
    for i in 0..40 {
        let (room, code) = node
            .create_room(by, &format!("push-{i}"), json!({}), 10)
            .await?;
        if owner_among(&[1, 2, 3], room.parse()?) == Some(owner) {
            return Ok((room, code));
        }
    }
    bail!("no room placed on node {owner} in 40 tries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_pushes_once_whichever_nodes_hold_the_room_the_sender_and_the_presence()
-> Result<()> {
    let mut service = PushService::start().await?;
    let Some(mut cluster) =
        TestCluster::start_configured(3, "cluster_push", "", &service.config()).await?
    else {
        return Ok(());
    };

    // One key per deployment: every node serves the same one.
    let mut keys = Vec::new();
    for id in 1..=3 {
        let (status, body) = cluster
            .node(id)
            .get("/api/v1/push/vapid-public-key", None)
            .await?;
        ensure!(status == 200, "node {id}: {status} {body}");
        keys.push(
            body["data"]["publicKey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    ensure!(keys[0].len() == 87, "65 bytes, base64url: {keys:?}");
    ensure!(keys.iter().all(|k| *k == keys[0]), "keys differ: {keys:?}");
    let vapid = keys[0].clone();

    // Ann writes through node 2 in a room of node 1; Bob's presence actor is on node 3 and
    // his phone subscribed through node 1.
    let ann = cluster.node(2).register("ann").await?;
    let bob = user_placed_on(cluster.node(2), 3, "bob").await?;
    let (room, code) = room_placed_on(cluster.node(2), &ann, 1).await?;
    let (status, body) = cluster.node(1).join_code(&bob, &code).await?;
    ensure!(status == 200, "bob joins: {status} {body}");
    let phone = Device::new(&service, "bob-phone");
    let (status, body) = cluster
        .node(1)
        .post(
            "/api/v1/push/subscriptions",
            Some(&bob.token),
            phone.subscription(),
        )
        .await?;
    ensure!(status == 201, "subscribe: {status} {body}");
    let mut ann_ws = cluster.node(2).ws(&ann).await?;
    let joined = ann_ws.request("room:join", json!({"roomId": room})).await?;
    ensure!(joined["ok"] == true, "{joined}");

    // No session at all: pushed once.
    let id = say(&mut ann_ws, &room, &format!("<@{}> lunch?", bob.id)).await?;
    pushed(&mut service, &phone, &vapid, &id).await?;
    quiet(&mut service).await?;

    // A focused session on node 2 holds the push back; once unfocused, pushed again.
    let mut bob_ws = cluster.node(2).ws(&bob).await?;
    let ack = bob_ws
        .request("session:focus", json!({"focused": true}))
        .await?;
    ensure!(ack["data"]["focused"] == true, "{ack}");
    let held = say(&mut ann_ws, &room, &format!("<@{}> are you there", bob.id)).await?;
    bob_ws
        .wait_for(|v: &Value| v["type"] == "mention:created" && v["data"]["messageId"] == held)
        .await?;
    let ack = bob_ws
        .request("session:focus", json!({"focused": false}))
        .await?;
    ensure!(ack["data"]["focused"] == false, "{ack}");
    let control = say(&mut ann_ws, &room, &format!("<@{}> gone?", bob.id)).await?;
    pushed(&mut service, &phone, &vapid, &control).await?;
    quiet(&mut service).await?;
    drop(bob_ws);

    // The node of Bob's presence actor dies: once the others see it (an offer sent to a node
    // that died unseen is lost with it, as any message to it), its successor decides.
    cluster.kill9(3);
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(20))
        .await?;
    let after = say(
        &mut ann_ws,
        &room,
        &format!("<@{}> node three is gone", bob.id),
    )
    .await?;
    pushed(&mut service, &phone, &vapid, &after).await?;
    quiet(&mut service).await?;
    Ok(())
}
