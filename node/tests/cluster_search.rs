//! Search across a real 3-node cluster (QUIC links, the CQL store): messages of rooms owned
//! by different nodes are found from any node; a killed node's rooms are reported as
//! unavailable (`partial: true`) until they move, and then their new owner, which never
//! indexed them, reads them from their logs and finds them; a room that moves away and back
//! is caught up at its old-and-new owner before a search trusts its index.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use common::cluster::TestCluster;
use common::community::text;
use common::{TestNode, User};
use serde_json::{Value, json};

/// `GET /api/v1/search?q=…` through `node` as `user`.
async fn search(node: &TestNode, user: &User, q: &str) -> Result<Value> {
    let resp = node
        .http
        .get(node.url("/api/v1/search"))
        .query(&[("q", q), ("limit", "100")])
        .bearer_auth(&user.token)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await?;
    ensure!(status == 200, "search: {status} {body}");
    Ok(body)
}

fn ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Waits (20 s at most) until `q` through `node` finds exactly `want`, none missing.
async fn finds_all(node: &TestNode, user: &User, q: &str, want: &[String]) -> Result<()> {
    let mut want = want.to_vec();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = search(node, user, q).await?;
        if ids(&body) == want && body["partial"] == false {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{q}: {body}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts through a WebSocket to `node` (REST posts reach only local rooms in a cluster);
/// UNAVAILABLE (a room moving) is retried with the same nonce.
async fn say(node: &TestNode, user: &User, room: &str, content: &str) -> Result<String> {
    let mut ws = node.ws(user).await?;
    let body = json!({"roomId": room, "content": content, "nonce": content.replace(' ', "-")});
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ack = ws.request("message:send", body.clone()).await?;
        if ack["ok"] == true {
            return Ok(text(&ack, "/data/message/id"));
        }
        if ack["error"]["code"] != "UNAVAILABLE" || Instant::now() > deadline {
            bail!("post: {ack}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_of_every_node_are_found_and_a_dead_owner_makes_the_answer_partial() -> Result<()> {
    // Peers' parts are waited for 500 ms (a dead node is detected after 3 s).
    let extra = "\n[search]\npeer_timeout_ms = 500\ncommit_interval_ms = 100\n";
    let Some(mut cluster) = TestCluster::start_with(3, "cluster_search", extra).await? else {
        return Ok(());
    };
    let one = cluster.node(1);
    let ann = one.register("ann").await?;
    // One room owned by each node.
    let mut rooms: [Option<String>; 3] = [None, None, None];
    for i in 0..60 {
        let (id, _) = one
            .create_room(&ann, &format!("Room {i}"), json!({}), 10)
            .await?;
        if let Some(owner) = voiceflow_node::cluster::owner_among(&[1, 2, 3], id.parse()?) {
            rooms[usize::from(owner) - 1].get_or_insert(id);
        }
        if rooms.iter().all(Option::is_some) {
            break;
        }
    }
    let rooms: Vec<String> = rooms.into_iter().map(Option::unwrap_or_default).collect();
    ensure!(
        rooms.iter().all(|r| !r.is_empty()),
        "no room on every node: {rooms:?}"
    );
    let mut messages = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        messages.push(say(one, &ann, room, &format!("needle from node {}", i + 1)).await?);
    }
    for id in 1..=3 {
        finds_all(cluster.node(id), &ann, "needle", &messages).await?;
    }

    // Node 3 dies: until its rooms move, node 1 answers with what it has, marked partial.
    cluster.kill9(3);
    let body = search(cluster.node(1), &ann, "needle").await?;
    ensure!(body["partial"] == true, "{body}");
    // Every room of node 3 is listed (the loop above may have made more than one there), and
    // only those.
    let unavailable: Vec<String> = body["unavailableRooms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ensure!(unavailable.contains(&rooms[2]), "{body}");
    for room in &unavailable {
        let owner = voiceflow_node::cluster::owner_among(&[1, 2, 3], room.parse()?);
        ensure!(
            owner == Some(3),
            "room {room} of node {owner:?} unavailable: {body}"
        );
    }
    let mut found = messages[..2].to_vec();
    found.sort();
    ensure!(
        ids(&body) == found,
        "the live nodes' rooms are there: {body}"
    );

    // Moved: the new owner reads the room's log and finds it, and what is posted there now.
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(20))
        .await?;
    finds_all(cluster.node(1), &ann, "needle", &messages).await?;
    messages.push(say(cluster.node(2), &ann, &rooms[2], "needle after the move").await?);
    for id in 1..=2 {
        finds_all(cluster.node(id), &ann, "needle", &messages).await?;
    }
    finds_all(cluster.node(1), &ann, "after move", &messages[3..]).await?;
    Ok(())
}

/// Deletes message `id` through a WebSocket to `node`, retrying while the room moves.
async fn delete(node: &TestNode, user: &User, room: &str, id: &str) -> Result<()> {
    let mut ws = node.ws(user).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ack = ws
            .request("message:delete", json!({"roomId": room, "messageId": id}))
            .await?;
        if ack["ok"] == true {
            return Ok(());
        }
        if ack["error"]["code"] != "UNAVAILABLE" || Instant::now() > deadline {
            bail!("delete: {ack}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A room that moves to a node that joins and back when it leaves (A→B→A, A up all along) is
/// searched at A as B left it — the message deleted on B is not found, the one posted there
/// is — although the room never started at A again: the placement change made A read the
/// room's log again before trusting its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_moves_away_and_back_is_caught_up_before_it_is_searched() -> Result<()> {
    let extra = "\n[search]\ncommit_interval_ms = 100\n";
    let Some(mut cluster) = TestCluster::start_with(2, "cluster_search_back", extra).await? else {
        return Ok(());
    };
    let one = cluster.node(1);
    let ann = one.register("ann").await?;
    // A room that node 3 owns once it joins.
    let mut room = None;
    for i in 0..60 {
        let (id, _) = one
            .create_room(&ann, &format!("Room {i}"), json!({}), 10)
            .await?;
        if voiceflow_node::cluster::owner_among(&[1, 2, 3], id.parse()?) == Some(3) {
            room = Some(id);
            break;
        }
    }
    let Some(room) = room else {
        bail!("no room for node 3 among 60");
    };
    let home = voiceflow_node::cluster::owner_among(&[1, 2], room.parse()?)
        .map(usize::from)
        .unwrap_or(1);
    let first = say(one, &ann, &room, "needle first").await?;
    finds_all(
        cluster.node(home),
        &ann,
        "needle",
        std::slice::from_ref(&first),
    )
    .await?;

    let three = cluster.add().await?;
    cluster
        .wait_owners(&[1, 2, three], &[1, 2, three], Duration::from_secs(20))
        .await?;
    let second = say(cluster.node(three), &ann, &room, "needle second").await?;
    delete(cluster.node(three), &ann, &room, &first).await?;
    finds_all(
        cluster.node(three),
        &ann,
        "needle",
        std::slice::from_ref(&second),
    )
    .await?;

    cluster.drain(three)?;
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(20))
        .await?;
    finds_all(cluster.node(home), &ann, "needle", &[second]).await?;
    Ok(())
}
