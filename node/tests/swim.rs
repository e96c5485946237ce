//! Real node processes running the SWIM membership (`cluster.membership = "swim"`) over QUIC
//! on loopback, sharing the CQL test server: nodes introduced to a seed find each other and
//! serve; a node added under load takes its rooms; a node killed with SIGKILL is declared
//! down everywhere and its rooms serve elsewhere, with every acknowledged message delivered
//! and stored exactly once and in order; a drained node hands off and leaves; a partitioned
//! minority stops serving before the majority takes over, and rejoins after the heal.
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it these tests skip loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::cluster::TestCluster;
use common::load::{Load, check_histories, now_ms};
use serde_json::{Value, json};

/// Cluster tests start several nodes each; one at a time keeps the 2-core machine sane.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SWIM: &str = "membership = \"swim\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swim_cluster_forms_takes_a_joiner_and_a_kill_and_loses_nothing() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    // `start_with` returns once every node sees all three up (as owners).
    let Some(mut cluster) = TestCluster::start_with(3, "swim_kill", SWIM).await? else {
        return Ok(());
    };
    let status = cluster.status(1).await?;
    let members = status["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{status}");
    assert!(members.iter().all(|m| m["state"] == "up"), "{status}");
    let load = Load::start(&cluster, 12, &[1, 2, 3]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A fourth node joins live (introduced to the seeds, announced by them).
    let added = Instant::now();
    cluster.add().await?;
    load.addrs.lock().push(cluster.node(4).addr);
    cluster.wait_converged(Duration::from_secs(15)).await?;
    eprintln!(
        "swim: node 4 joined, all agreed after {:?}",
        added.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // kill -9 node 2: probes fail, it is suspected, then declared down everywhere.
    let killed_addr = cluster.node(2).addr;
    let killed = Instant::now();
    eprintln!("swim: killing node 2 at {}", now_ms());
    cluster.kill9(2);
    load.addrs.lock().retain(|a| *a != killed_addr);
    cluster.wait_converged(Duration::from_secs(20)).await?;
    eprintln!(
        "swim: node 2 declared down everywhere after {:?}",
        killed.elapsed()
    );
    for id in [1, 3, 4] {
        let status = cluster.status(id).await?;
        let two = status["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["nodeId"] == 2).cloned())
            .unwrap_or(Value::Null);
        assert_eq!(two["state"], "down", "node {id}: {status}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Drain node 3: it hands its rooms off, leaves, and the others mark it left at once.
    let drained_addr = cluster.node(3).addr;
    load.addrs.lock().retain(|a| *a != drained_addr);
    let code = cluster.drain(3)?;
    assert_eq!(code, Some(0), "a drained node exits cleanly");
    cluster.wait_converged(Duration::from_secs(15)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (rooms, authors, logs) = (load.rooms.clone(), load.authors.clone(), load.logs.clone());
    let (acked, gap, reconnects) = load.finish().await?;
    eprintln!(
        "swim: {acked} acknowledged messages, all delivered once and in order; longest pause \
         of a room: {gap:?}; client reconnects: {reconnects}"
    );
    assert!(acked > 100, "the load ran ({acked} messages)");
    let (lost, duplicated, reordered) = check_histories(&cluster, &rooms, &authors, &logs).await?;
    anyhow::ensure!(
        lost == 0 && duplicated == 0 && reordered == 0,
        "stored: lost {lost}, duplicated {duplicated}, reordered {reordered}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_swim_minority_stops_serving_and_rejoins() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let extra = format!("{SWIM}\nfault_injection = true");
    let Some(cluster) = TestCluster::start_with(3, "swim_partition", &extra).await? else {
        return Ok(());
    };
    let zed = cluster.node(3).register("zed").await?;
    let (zroom, _) = cluster
        .node(3)
        .create_room(&zed, "minority", json!({"isPublic": true}), 10)
        .await?;
    let mut minority = cluster.node(3).ws(&zed).await?;
    let join = minority
        .request("room:join", json!({"roomId": zroom}))
        .await?;
    assert_eq!(join["ok"], true, "{join}");
    let load = Load::start(&cluster, 8, &[1, 2]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cut = Instant::now();
    cluster.block(3, &[1, 2]).await?;
    cluster.block(1, &[3]).await?;
    cluster.block(2, &[3]).await?;
    let fenced = loop {
        let status = cluster.status(3).await?;
        if status["quorum"] == false && status["owners"].as_array().is_some_and(Vec::is_empty) {
            break cut.elapsed();
        }
        if cut.elapsed() > Duration::from_secs(15) {
            bail!("node 3 kept serving without a majority: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(15))
        .await?;
    let dropped = cut.elapsed();
    eprintln!(
        "swim partition: node 3 fenced after {fenced:?}; the majority dropped it after {dropped:?}"
    );
    assert!(
        fenced < dropped,
        "the minority stops before the majority takes over"
    );

    let refused = minority
        .request(
            "message:send",
            json!({"roomId": zroom, "content": "from the minority", "nonce": "z-1"}),
        )
        .await?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "UNAVAILABLE", "{refused}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Heal: the sides re-announce to the members they declared down and meet again.
    let healed = Instant::now();
    cluster.block(1, &[]).await?;
    cluster.block(2, &[]).await?;
    cluster.block(3, &[]).await?;
    cluster.wait_converged(Duration::from_secs(20)).await?;
    eprintln!(
        "swim partition: converged {:?} after the heal",
        healed.elapsed()
    );
    let mut accepted = Value::Null;
    for _ in 0..50 {
        accepted = minority
            .request(
                "message:send",
                json!({"roomId": zroom, "content": "from the minority", "nonce": "z-1"}),
            )
            .await?;
        if accepted["ok"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        accepted["ok"], true,
        "served again after the heal: {accepted}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, gap, _) = load.finish().await?;
    eprintln!("swim partition: {acked} acknowledged messages, longest pause {gap:?}");
    assert!(acked > 50, "the load ran ({acked} messages)");
    Ok(())
}
