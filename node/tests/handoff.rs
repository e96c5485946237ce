//! Bounded hand-off (`cluster.handoff_batch`) with real node processes on the CQL test
//! server: a node joins a cluster running about two hundred rooms (busy ones under load, and
//! quiet ones nobody is in); the rooms that now hash to it are retired by their old owners a
//! few at a time and started by it as each is handed over (busy ones are often pulled first
//! by their clients' requests, quiet ones only by the notice). Every room serves again, every
//! quiet room that moved runs on the new node without any request, no room ever has two
//! writers (no node learns from storage that it was fenced in a room), and every acknowledged
//! message is delivered and stored exactly once, in order.
//!
//! Needs `VOICEFLOW_TEST_CQL`; without it the test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::TestNode;
use common::cluster::TestCluster;
use common::load::{Load, check_histories};
use serde_json::json;

/// The sum of a counter in a node's `/metrics`.
async fn counter(node: &TestNode, name: &str) -> Result<f64> {
    Ok(node
        .metrics_text()
        .await?
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum())
}

/// Waits until `done` holds, polling every 100 ms; fails after `within` with `what`.
async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !done() {
        anyhow::ensure!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn all_acked_since(load: &Load, since: Instant) -> bool {
    load.logs
        .iter()
        .all(|l| l.lock().ack_times.last().is_some_and(|t| *t > since))
}

/// Busy rooms: a sender and a receiver each, messages all along.
const BUSY: usize = 30;
/// Quiet rooms: started once (a join), then nobody in them: only the hand-off's notice can
/// start them on their new owner.
const QUIET: usize = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_takes_its_rooms_a_few_at_a_time_and_nothing_is_lost() -> Result<()> {
    // A small bound, so the rooms moving really queue.
    let Some(mut cluster) = TestCluster::start_with(3, "handoff", "handoff_batch = 4").await?
    else {
        return Ok(());
    };
    let load = Load::start(&cluster, BUSY, &[1, 2, 3]).await?;

    // Quiet rooms, each started on its owner by a join, then left without a follower.
    let quiet_user = cluster.node(1).register("quiet").await?;
    let mut quiet = Vec::new();
    {
        let mut ws = cluster.node(1).ws(&quiet_user).await?;
        for i in 0..QUIET {
            let (room, _) = cluster
                .node(1)
                .create_room(
                    &quiet_user,
                    &format!("quiet-{i}"),
                    json!({"isPublic": true}),
                    10,
                )
                .await?;
            let join = ws.request("room:join", json!({"roomId": room})).await?;
            anyhow::ensure!(join["ok"] == true, "join quiet-{i}: {join}");
            quiet.push(room.parse::<u64>()?);
        }
    }
    let mut running = 0;
    for id in 1..=3 {
        running += cluster.status(id).await?["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["nodeId"] == id as u64))
            .and_then(|m| m["rooms"].as_u64())
            .unwrap_or(0);
    }
    eprintln!("handoff: {running} rooms running on nodes 1-3 before the join");
    let warm = Instant::now();
    until("every busy room served", Duration::from_secs(60), || {
        all_acked_since(&load, warm)
    })
    .await?;

    // The quiet rooms that will hash to node 4: each must be started there by its notice.
    let moving = quiet
        .iter()
        .filter(|r| voiceflow_node::cluster::owner_among(&[1, 2, 3, 4], **r) == Some(4))
        .count();
    let added = Instant::now();
    cluster.add().await?;
    load.addrs.lock().push(cluster.node(4).addr);
    cluster.wait_converged(Duration::from_secs(15)).await?;
    until(
        "every busy room served after the join",
        Duration::from_secs(60),
        || all_acked_since(&load, added),
    )
    .await?;
    let busy_back = added.elapsed();
    let started = Instant::now();
    loop {
        let taken = counter(cluster.node(4), "voiceflow_rooms_taken_over_total").await?;
        if taken >= moving as f64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "node 4 started {taken} of the {moving} quiet rooms handed to it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut handed_off = 0.0;
    for id in 1..=3 {
        handed_off += counter(cluster.node(id), "voiceflow_rooms_handed_off_total").await?;
    }
    eprintln!(
        "handoff: busy rooms all served again {busy_back:?} after node 4 started; its {moving} \
         quiet rooms started on notice after {:?}; {handed_off} rooms handed off",
        added.elapsed()
    );
    assert!(
        handed_off >= moving as f64,
        "every quiet room moved by a hand-off"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (rooms, authors, logs) = (load.rooms.clone(), load.authors.clone(), load.logs.clone());
    let (acked, gap, reconnects) = load.finish().await?;
    eprintln!(
        "handoff: {acked} acknowledged messages, longest pause {gap:?}, {reconnects} reconnects"
    );
    assert!(acked > 50, "the load ran ({acked} messages)");
    // No two writers: a second writer of a room would have been fenced by storage.
    for id in 1..=4 {
        let fenced = counter(cluster.node(id), "voiceflow_rooms_fenced_total").await?;
        assert_eq!(
            fenced, 0.0,
            "node {id} found another writer of a room it ran"
        );
    }
    let (lost, duplicated, reordered) = check_histories(&cluster, &rooms, &authors, &logs).await?;
    anyhow::ensure!(
        lost == 0 && duplicated == 0 && reordered == 0,
        "stored: lost {lost}, duplicated {duplicated}, reordered {reordered}"
    );
    Ok(())
}
