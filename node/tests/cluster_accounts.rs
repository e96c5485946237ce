//! Account changes reach every node of a real three-node cluster: a rename reaches the room
//! (wherever it runs) and sockets on other nodes; a logout on one node closes the sign-in's
//! sockets on the others with 4003.
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it the test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::cluster::TestCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_logouts_reach_sockets_on_other_nodes() -> Result<()> {
    let Some(cluster) =
        TestCluster::start(3, "cluster_accounts::renames_and_logouts_reach_other_nodes").await?
    else {
        return Ok(());
    };
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let alice = n1.register("alice").await?;
    let bob = n2.register("bob").await?;
    let (room, code) = n1.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(n2.join_code(&bob, &code).await?.0, 200);
    let mut a2 = n2.ws(&alice).await?;
    let mut a3 = n3.ws(&alice).await?;
    let mut b3 = n3.ws(&bob).await?;
    for ws in [&mut a2, &mut a3, &mut b3] {
        let joined = ws.request("room:join", json!({"roomId": room})).await?;
        assert_eq!(joined["ok"], true, "{joined}");
    }

    let (status, me) = n1
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&alice.token),
            Some(json!({"username": "alicia"})),
        )
        .await?;
    assert_eq!(status, 200, "{me}");
    // The room (on whichever node owns it) has the new name once its member list shows it.
    let started = Instant::now();
    loop {
        let (_, members) = n3
            .get(&format!("/api/v1/rooms/{room}/members"), Some(&bob.token))
            .await?;
        let renamed = members["data"]
            .as_array()
            .is_some_and(|m| m.iter().any(|p| p["username"] == "alicia"));
        if renamed {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the rename never reached the room: {members}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = a3
        .request(
            "message:send",
            json!({"roomId": room, "content": "from node 3"}),
        )
        .await?;
    assert_eq!(sent["data"]["message"]["username"], "alicia", "{sent}");
    let seen = b3
        .wait_for(|v| v["type"] == "message:received" && v["data"]["content"] == "from node 3")
        .await?;
    assert_eq!(seen["data"]["username"], "alicia", "{seen}");

    // Logging out through node 1 closes the sign-in's sockets on nodes 2 and 3.
    let (status, _) = n1
        .post(
            "/api/v1/auth/logout",
            Some(&alice.token),
            json!({"refreshToken": alice.refresh}),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(a2.closed().await?, Some(4003));
    assert_eq!(a3.closed().await?, Some(4003));
    let pong = b3.request("ping", json!({})).await?;
    assert_eq!(pong["ok"], true, "bob's socket stays");
    Ok(())
}
