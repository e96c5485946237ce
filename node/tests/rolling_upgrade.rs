//! A rolling upgrade of the cluster protocol under load: three real nodes start as the
//! previous release speaks (`cluster.protocol_max = 7`: only the version 7 ALPN, version 7
//! frames), clients post with nonces and follow their rooms, and each node in turn is drained
//! and restarted with this release's default (it speaks 7 to the nodes not yet upgraded, and
//! 8 to those that are). Every acknowledged message is delivered once and in order, the
//! stored histories match what was acknowledged, and the only thing clients saw was the 4009
//! close of a draining node: no error answer at all (a request that reaches a node still
//! catching up on the members after its restart is held until it owns its rooms, not
//! refused with UNAVAILABLE).
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it this test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::cluster::TestCluster;
use common::load::{Load, check_histories, now_ms};
use serde_json::Value;
use voiceflow_wire::cluster::PROTOCOL_VERSION;

/// The link versions node `id` reports for its peers (by node id), and its own range.
async fn versions(cluster: &TestCluster, id: usize) -> Result<(Vec<(u64, u64)>, Value)> {
    let status = cluster.status(id).await?;
    let links = status["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .filter(|m| m["nodeId"].as_u64() != Some(id as u64))
                .map(|m| {
                    let node = m["nodeId"].as_u64().unwrap_or_default();
                    (node, m["linkVersion"].as_u64().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((links, status["protocols"].clone()))
}

/// Waits until every running node's links speak what `expected(from, to)` says.
async fn wait_links(cluster: &TestCluster, expected: impl Fn(u64, u64) -> u64) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        let mut agreed = true;
        for id in 1..=cluster.nodes.len() {
            if cluster.nodes[id - 1].is_none() {
                continue;
            }
            let (links, _) = versions(cluster, id).await?;
            agreed &=
                !links.is_empty() && links.iter().all(|(to, v)| *v == expected(id as u64, *to));
            seen.push((id, links));
        }
        if agreed {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            bail!("links did not settle on the expected versions: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_upgraded_one_node_at_a_time_under_load_loses_nothing() -> Result<()> {
    let started = Instant::now();
    let Some(mut cluster) =
        TestCluster::start_with(3, "rolling_upgrade", "protocol_max = 7").await?
    else {
        return Ok(());
    };
    // The previous release: everyone speaks 7.
    wait_links(&cluster, |_, _| 7).await?;
    assert_eq!(versions(&cluster, 1).await?.1, serde_json::json!([7, 7]));

    let load = Load::start(&cluster, 6, &[1, 2, 3]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Nodes started from now on run this release with its default configuration.
    cluster.cluster_extra = String::new();
    let new = PROTOCOL_VERSION as u64;
    for id in 1..=3usize {
        let old_addr = cluster.node(id).addr;
        load.addrs.lock().retain(|a| *a != old_addr);
        eprintln!("draining node {id} at {}", now_ms());
        assert_eq!(cluster.drain(id)?, Some(0), "a drained node exits cleanly");
        cluster.wait_converged(Duration::from_secs(15)).await?;
        eprintln!("restarting node {id} upgraded at {}", now_ms());
        cluster.restart(id).await?;
        cluster.wait_converged(Duration::from_secs(15)).await?;
        load.addrs.lock().push(cluster.node(id).addr);
        // Upgraded nodes (1..=id) speak the new version among themselves, 7 with the rest.
        let upgraded = id as u64;
        wait_links(&cluster, |from, to| {
            if from <= upgraded && to <= upgraded {
                new
            } else {
                7
            }
        })
        .await?;
        assert_eq!(
            versions(&cluster, id).await?.1,
            serde_json::json!([7, new]),
            "an upgraded node speaks both versions"
        );
        eprintln!("node {id} upgraded and rejoined at {}", now_ms());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_links(&cluster, |_, _| new).await?;

    let (rooms, authors, logs) = (load.rooms.clone(), load.authors.clone(), load.logs.clone());
    let (acked, gap, reconnects) = load.finish().await?;
    let errors: Vec<String> = logs.iter().flat_map(|l| l.lock().errors.clone()).collect();
    assert!(errors.is_empty(), "clients saw errors: {errors:#?}");
    let (lost, duplicated, reordered) = check_histories(&cluster, &rooms, &authors, &logs).await?;
    assert_eq!(
        (lost, duplicated, reordered),
        (0, 0, 0),
        "stored histories: (lost, duplicated, reordered)"
    );
    eprintln!(
        "{acked} acknowledged messages delivered once and in order across the upgrade; \
         longest pause of a room: {gap:?}; client reconnects: {reconnects}; {:?} in all",
        started.elapsed()
    );
    assert!(acked > 50, "the load ran ({acked} messages)");
    Ok(())
}
