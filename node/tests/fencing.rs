//! Storage-level fencing with real node processes on the CQL test server. Node 3 reaches the
//! database through a holding bridge (`voiceflow_schema::cql::bridge::hold`): its write
//! frames are held for longer than failure detection plus takeover, and it is paused with
//! SIGSTOP under load, so its last batches reach the database after nodes 1 and 2 took its
//! rooms over and wrote to them. When it resumes (SIGCONT) it learns from storage that it was
//! fenced and stops; every acknowledged message is delivered exactly once and in order, and
//! none of the stale batches is ever delivered or replayed.
//!
//! Nothing here rests on timing: the test waits until one of node 3's log appends is held
//! before pausing it, releases the held frames only once the new owners wrote to every room,
//! and waits for node 3 to report the fencing.
//!
//! Needs `VOICEFLOW_TEST_CQL`; without it the test skips loudly.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::TestNode;
use common::cluster::TestCluster;
use common::load::{Load, now_ms};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use voiceflow_schema::cql::bridge::hold::{Hold, run_holding};
use voiceflow_schema::cql::testing::contact_points_from_env;

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

/// A holding bridge in this process in front of the test server's address.
async fn holding_bridge() -> Result<Option<(SocketAddr, Hold)>> {
    let Some(points) = contact_points_from_env() else {
        return Ok(None);
    };
    let upstream = tokio::net::lookup_host(points[0].as_str())
        .await?
        .next()
        .context("CQL contact point does not resolve")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hold = Hold::default();
    // Frames pass unchanged: the test server's own bridge does the protocol rewriting.
    tokio::spawn(run_holding(listener, upstream, false, hold.clone()));
    Ok(Some((addr, hold)))
}

/// Waits until `done` holds, polling every 50 ms; fails after `within` with `what`.
async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !done() {
        anyhow::ensure!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether every room of `load` acknowledged a message after `since`.
fn all_acked_since(load: &Load, since: Instant) -> bool {
    load.logs
        .iter()
        .all(|l| l.lock().ack_times.last().is_some_and(|t| *t > since))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_paused_with_its_writes_in_flight_is_fenced_and_nothing_is_lost() -> Result<()> {
    let Some((bridge, hold)) = holding_bridge().await? else {
        voiceflow_schema::cql::testing::announce_skip("fencing");
        return Ok(());
    };
    let Some(mut cluster) = TestCluster::start(2, "fencing").await? else {
        return Ok(());
    };
    cluster.contact_points.insert(3, bridge);
    cluster.add().await?;
    cluster.wait_converged(Duration::from_secs(15)).await?;
    // Clients enter through nodes 1 and 2 (a client of a paused node just waits); node 3
    // owns about a third of the rooms. With 9 rooms it owned none in about 1 run in 40
    // ((2/3)^9) and no append of its could ever be held; with 18, about 1 in 1,500.
    let load = Load::start(&cluster, 18, &[1, 2]).await?;
    let warm = Instant::now();
    until("every room served", Duration::from_secs(30), || {
        all_acked_since(&load, warm)
    })
    .await?;

    // Node 3's writes are held until released: once one of its room-log appends is held, a
    // batch of a room it owns is certainly in flight, never acknowledged, when it stops.
    hold.set(Duration::from_secs(600));
    until(
        "a log append of node 3 held",
        Duration::from_secs(30),
        || hold.held_writes("room_events") >= 1,
    )
    .await?;
    let pid = Pid::from_raw(i32::try_from(cluster.node(3).pid())?);
    eprintln!("pausing node 3 at {}", now_ms());
    kill(pid, Signal::SIGSTOP)?;
    let paused = Instant::now();
    // Nodes 1 and 2 mark it down after the failure timeout and take its rooms over.
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(20))
        .await?;
    let took_over = Instant::now();
    eprintln!("node 3 down after {:?}", paused.elapsed());
    // The new owners wrote to every room (node 3's among them) ...
    until(
        "every room served by the new owners",
        Duration::from_secs(30),
        || all_acked_since(&load, took_over),
    )
    .await?;
    // ... and only then do node 3's held appends reach the database (stale entries of an
    // older ownership epoch, landing after newer ones).
    hold.release();
    until("held writes delivered", Duration::from_secs(10), || {
        hold.held_writes("") == 0
    })
    .await?;
    eprintln!("resuming node 3 at {}", now_ms());
    kill(pid, Signal::SIGCONT)?;
    // It learns from storage that it was fenced (its append's epoch check, or the renewal
    // after a timed-out write) and stops those rooms.
    let started = Instant::now();
    loop {
        let fenced = counter(cluster.node(3), "voiceflow_rooms_fenced_total")
            .await
            .unwrap_or_default();
        if fenced >= 1.0 {
            eprintln!("node 3 learned it was fenced in {fenced} rooms");
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "node 3 had a log append in flight and must have learned it was fenced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It rejoins; its rooms move back (hand-offs) while the load goes on, and serve again.
    cluster
        .wait_owners(&[1, 2, 3], &[1, 2, 3], Duration::from_secs(30))
        .await?;
    let back = Instant::now();
    until(
        "every room served after node 3 came back",
        Duration::from_secs(30),
        || all_acked_since(&load, back),
    )
    .await?;
    let (rooms, authors, logs) = (load.rooms.clone(), load.authors.clone(), load.logs.clone());
    let (total, gap, reconnects) = load.finish().await?;
    eprintln!("{total} acknowledged messages, longest gap {gap:?}, {reconnects} reconnects");
    assert!(total > 50, "the load ran: {total}");
    // What storage serves (history pages) holds every acknowledged message once, in order,
    // and none of the stale appends.
    let (lost, duplicated, reordered) =
        common::load::check_histories(&cluster, &rooms, &authors, &logs).await?;
    anyhow::ensure!(
        lost == 0 && duplicated == 0 && reordered == 0,
        "stored: lost {lost}, duplicated {duplicated}, reordered {reordered}"
    );
    Ok(())
}
