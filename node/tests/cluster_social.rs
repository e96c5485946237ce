//! Presence, rich messages, read receipts and resume-by-seq with users on different nodes of a
//! real three-node cluster (QUIC between processes, the CQL test server for storage).
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it the test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::cluster::TestCluster;
use common::proxy::FreezableProxy;
use common::{User, WsClient};
use serde_json::{Value, json};

/// Short presence timings so a dead node's sessions expire quickly.
const PRESENCE: &str = "\n[presence]\nheartbeat_secs = 2\nsession_ttl_secs = 6\n";

async fn presence(ws: &mut WsClient, user: &User, status: &str) -> Result<Value> {
    // `wait_for` gives up after 15 s; a dead node's sessions may take longer to expire.
    for _ in 0..3 {
        let (u, s) = (user.id.clone(), status.to_owned());
        let found = ws
            .wait_for(move |v| {
                v["type"] == "user:presence_changed"
                    && v["data"]["userId"] == u.as_str()
                    && v["data"]["status"] == s.as_str()
            })
            .await;
        if let Ok(frame) = found {
            return Ok(frame);
        }
    }
    anyhow::bail!("no presence {status} for {} within 45 s", user.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_edits_receipts_and_resume_work_across_nodes() -> Result<()> {
    let Some(mut cluster) = TestCluster::start_with(
        3,
        "cluster_social::presence_edits_receipts_and_resume",
        PRESENCE,
    )
    .await?
    else {
        return Ok(());
    };
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let alice = n1.register("alice").await?;
    let bob = n2.register("bob").await?;
    let (room, code) = n1.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(n2.join_code(&bob, &code).await?.0, 200);

    // Alice on node 1 watches the room; Bob comes online on node 2, then also on node 3.
    let mut a = n1.ws(&alice).await?;
    let joined = a.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(joined["ok"], true, "{joined}");
    let on_two = n2.ws(&bob).await?;
    presence(&mut a, &bob, "online").await?;
    let mut on_three = n3.ws(&bob).await?;
    let dnd = on_three
        .request("presence:update", json!({"status": "dnd"}))
        .await?;
    assert_eq!(dnd["ok"], true, "{dnd}");
    presence(&mut a, &bob, "dnd").await?;
    let (_, members) = n3
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&bob.token))
        .await?;
    let listed = members["data"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["userId"] == bob.id.as_str()).cloned())
        .unwrap_or_default();
    assert_eq!(listed["status"], "dnd", "{members}");

    // Edits, reactions and receipts from node 3 reach node 1, in log order.
    on_three
        .request("room:join", json!({"roomId": room}))
        .await?;
    let sent = a
        .request("message:send", json!({"roomId": room, "content": "hi bob"}))
        .await?;
    let id = sent["data"]["message"]["id"].clone();
    let seq = sent["data"]["message"]["seq"].as_u64().unwrap_or(0);
    let reacted = on_three
        .request("reaction:add", json!({"messageId": id, "emoji": "👋"}))
        .await?;
    assert_eq!(reacted["data"]["seq"], seq + 1, "{reacted}");
    let read = on_three
        .request("message:read", json!({"roomId": room, "messageId": id}))
        .await?;
    assert_eq!(read["data"]["messageId"], id, "{read}");
    let update = a.next_event("reaction:updated").await?;
    assert_eq!(update["data"]["count"], 1);
    let receipt = a.next_event("message:read_receipt").await?;
    assert_eq!(receipt["data"]["userId"], bob.id.as_str());

    // Alice misses 20 messages and resumes from her seq on another node.
    drop(a);
    for i in 0..20 {
        let ack = on_three
            .request(
                "message:send",
                json!({"roomId": room, "content": format!("m{i}")}),
            )
            .await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let mut a = n2.ws(&alice).await?;
    let back = a
        .request(
            "room:join",
            json!({"roomId": room, "since": seq + 1, "epoch": joined["data"]["epoch"]}),
        )
        .await?;
    assert_eq!(back["data"]["replayed"], 20, "{back}");
    let contents: Vec<Value> = a
        .backlog
        .drain(..)
        .filter(|f| f["type"] == "message:received")
        .map(|f| f["data"]["content"].clone())
        .collect();
    assert_eq!(
        contents,
        (0..20).map(|i| json!(format!("m{i}"))).collect::<Vec<_>>()
    );

    // Bob's session on node 2 ends: still dnd (node 3). Then node 3 dies with his other
    // session: he goes offline once that session's heartbeats are missed.
    drop(on_two);
    assert!(
        !a.sees_within(Duration::from_secs(3), |v| v["type"]
            == "user:presence_changed"
            && v["data"]["status"] == "offline")
            .await,
        "Bob still has a session"
    );
    let killed = Instant::now();
    cluster.kill9(3);
    drop(on_three);
    let offline = presence(&mut a, &bob, "offline").await?;
    let took = killed.elapsed();
    eprintln!("presence: offline seen {took:?} after the node with the last session died");
    // Who reported it depends on placement: Bob's own presence actor (it saw his session go
    // quiet: `lastSeen` set), or, if it lived on the killed node, its successor (which never
    // saw him: no `lastSeen`).
    assert_eq!(offline["data"]["status"], "offline", "{offline}");
    Ok(())
}

/// The default timings (sessions beat every 15 s, a WebSocket silent for 30 s is
/// gone): a phone whose network vanishes without closing its connection shows offline to a
/// member on another node within 30 s, and not before its silence could be told from a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connection_goes_silent_is_offline_within_30_s() -> Result<()> {
    let Some(cluster) = TestCluster::start(2, "cluster_social::silent_client").await? else {
        return Ok(());
    };
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let alice = n1.register("alice").await?;
    let carol = n2.register("carol").await?;
    let (room, code) = n1.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(n2.join_code(&carol, &code).await?.0, 200);
    let mut watcher = n1.ws(&alice).await?;
    let joined = watcher
        .request("room:join", json!({"roomId": room}))
        .await?;
    assert_eq!(joined["ok"], true, "{joined}");

    // Carol's phone reaches node 2 through a relay; it answers the server's pings until the
    // relay freezes (no FIN, no RST: both sockets stay open).
    let relay = FreezableProxy::start(n2.addr).await?;
    let phone = WsClient::connect(relay.addr, &carol.token).await?;
    let phone = tokio::spawn(phone.keep_reading());
    presence(&mut watcher, &carol, "online").await?;
    // Let at least one ping/pong round pass, so the silence starts at the freeze.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let frozen = Instant::now();
    relay.freeze();
    let offline = presence(&mut watcher, &carol, "offline").await?;
    let took = frozen.elapsed();
    eprintln!("presence: offline seen {took:?} after the client's connection went silent");
    assert!(
        took <= Duration::from_secs(31),
        "offline {took:?} after the freeze (30 s idle timeout, ~1 s for delivery)"
    );
    // The last pong came at most one 10 s ping interval before the freeze.
    assert!(
        took >= Duration::from_secs(19),
        "offline after {took:?}: dropped before 30 s of silence"
    );
    assert!(offline["data"]["lastSeen"].as_u64().is_some(), "{offline}");
    phone.abort();
    Ok(())
}

/// Bob chose dnd on his session on node 2; his presence actor lives on node 3, which dies.
/// The actor that takes over on a survivor learns the choice from his next heartbeats: the
/// room never shows him online meanwhile, and shows dnd after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_status_survives_the_presence_actor_moving() -> Result<()> {
    let Some(mut cluster) =
        TestCluster::start_with(3, "cluster_social::chosen_status_moves", PRESENCE).await?
    else {
        return Ok(());
    };
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let alice = n1.register("alice").await?;
    // A user whose presence actor is placed on node 3 (ids are random; a third of them are).
    let mut bob = None;
    for i in 0..30 {
        let user = n2.register(&format!("bob{i}")).await?;
        let id: u64 = user.id.parse()?;
        if voiceflow_node::cluster::owner_among(&[1, 2, 3], id) == Some(3) {
            bob = Some(user);
            break;
        }
    }
    let bob = bob.ok_or_else(|| anyhow::anyhow!("no user placed on node 3 in 30 tries"))?;
    let (room, code) = n1.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(n2.join_code(&bob, &code).await?.0, 200);
    let mut a = n1.ws(&alice).await?;
    let joined = a.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(joined["ok"], true, "{joined}");
    let mut b = n2.ws(&bob).await?;
    presence(&mut a, &bob, "online").await?;
    let dnd = b
        .request("presence:update", json!({"status": "dnd"}))
        .await?;
    assert_eq!(dnd["ok"], true, "{dnd}");
    presence(&mut a, &bob, "dnd").await?;
    let bob_keeps_beating = tokio::spawn(b.keep_reading());

    cluster.kill9(3);
    // Failure detection (3 s), the successor's warm-up (one heartbeat and a bit), a few beats.
    let bob_id = bob.id.clone();
    let shown_online = a
        .sees_within(Duration::from_secs(15), move |v| {
            v["type"] == "user:presence_changed"
                && v["data"]["userId"] == bob_id.as_str()
                && v["data"]["status"] != "dnd"
        })
        .await;
    assert!(!shown_online, "Bob was shown as something else than dnd");
    let (status, members) = cluster
        .node(1)
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&alice.token))
        .await?;
    assert_eq!(status, 200, "{members}");
    let listed = members["data"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["userId"] == bob.id.as_str()).cloned())
        .unwrap_or_default();
    assert_eq!(listed["status"], "dnd", "{members}");
    bob_keeps_beating.abort();
    Ok(())
}
