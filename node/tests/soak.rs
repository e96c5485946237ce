//! Soak: WebSocket sessions join and leave rooms in a loop on a real node, and what they used
//! is given back. Two leaks lived here: every session that joined a room stayed referenced by
//! that room's actor after it closed (about 5 KB each, for as long as the room ran), and room
//! actors never stopped once started (their own idle check counted as activity).
//!
//! One anchor session stays in the rooms for the whole loop, as in a busy room that never
//! goes idle; cycles of short-lived sessions join the rooms and close. The node's RSS after the
//! last cycles must be within a bound of its RSS after the first ones (a per-session leak grows
//! linearly, allocator caching does not), and once the anchor leaves too, every room actor
//! stops after the (short) idle timeout.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::{FAST_CONFIG, TestNode, User, WsClient};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

/// Sessions opened (and closed) per cycle.
const SESSIONS_PER_CYCLE: usize = 500;
/// Cycles run before measuring, for pools, caches and maps to reach their working size.
const WARM_UP_CYCLES: usize = 3;
/// Measured cycles (after the warm-up ones): four windows of `WINDOW`.
const CYCLES: usize = 4 * WINDOW;
/// Rooms each session joins.
const ROOMS_PER_SESSION: usize = 3;
/// Connects in flight at once.
const CONCURRENCY: usize = 32;
/// Cycles in each of the four windows whose medians are compared.
const WINDOW: usize = 3;
/// Allowed RSS growth from a window to the next one (three cycles later), in both halves of
/// the run. A session left behind cost ~5 KB, so the old leak grew ~2.5 MB a cycle here,
/// ~7.5 MB from window to window (debug build); without it the figures wander within ~4 MB.
const RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;

/// A figure of `/proc/<pid>/status` (`VmRSS` in KiB, `Threads`).
fn status_figure(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key} in /proc/<pid>/status"))
}

/// Polls `metric` until it equals `want` (within `within`).
async fn metric_reaches(node: &TestNode, metric: &str, want: f64, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = node.metric(metric).await?;
        if now == want {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{metric} is {now}, expected {want} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens `SESSIONS_PER_CYCLE` sessions spread over `users`, each joining
/// `ROOMS_PER_SESSION` of `rooms`, then closes them all and waits until the node has only
/// `remaining` sessions again.
async fn cycle(
    node: &TestNode,
    users: &[User],
    rooms: &[String],
    cycle_no: usize,
    remaining: f64,
) -> Result<()> {
    let clients: Vec<WsClient> = futures_util::stream::iter(0..SESSIONS_PER_CYCLE)
        .map(|i| {
            let user = &users[i % users.len()];
            let addr = node.addr;
            async move {
                let mut ws = WsClient::connect(addr, &user.token).await?;
                for k in 0..ROOMS_PER_SESSION {
                    let room = &rooms[(i + k + cycle_no) % rooms.len()];
                    let ack = ws.request("room:join", json!({"roomId": room})).await?;
                    if ack["ok"] != true {
                        bail!("join refused: {ack}");
                    }
                }
                Ok::<_, anyhow::Error>(ws)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    drop(clients);
    metric_reaches(
        node,
        "voiceflow_sessions",
        remaining,
        Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
async fn sessions_joining_and_leaving_in_a_loop_give_their_memory_back_and_rooms_stop() -> Result<()>
{
    // mimalloc returns freed pages to the OS after a delay (10 ms) and only when it next runs
    // in that thread; with no delay, RSS follows live memory closely (cycle-to-cycle noise
    // ~1.5 MB instead of ~5 MB), so the bound can be tight without being flaky.
    let dir = tempfile::tempdir()?;
    let node = TestNode::start_in_with_env(
        dir.path(),
        &format!(
            "{FAST_CONFIG}room_idle_timeout_secs = 2\n[http]\nmax_connections_per_ip = 4096\n"
        ),
        &[("MIMALLOC_PURGE_DELAY", "0")],
    )
    .await?;
    let mut users = Vec::new();
    for n in 0..20 {
        users.push(node.register(&format!("soak{n}")).await?);
    }
    let mut rooms = Vec::new();
    for n in 0..6 {
        let (room, code) = node
            .create_room(&users[0], &format!("soak-{n}"), json!({}), 100)
            .await?;
        for user in &users[1..] {
            node.join_code(user, &code).await?;
        }
        rooms.push(room);
    }

    // The anchor keeps every room busy (running) for the whole loop.
    let mut anchor = node.ws(&users[0]).await?;
    for room in &rooms {
        let ack = anchor.request("room:join", json!({"roomId": room})).await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let anchor_reader = tokio::spawn(anchor.keep_reading());

    // Warm-up: pools, caches and maps reach their working size.
    for n in 0..WARM_UP_CYCLES {
        cycle(&node, &users, &rooms, n, 1.0).await?;
    }
    let (mut rss, mut threads) = (Vec::new(), Vec::new());
    for n in WARM_UP_CYCLES..WARM_UP_CYCLES + CYCLES {
        cycle(&node, &users, &rooms, n, 1.0).await?;
        rss.push(status_figure(node.pid(), "VmRSS")?);
        threads.push(status_figure(node.pid(), "Threads")?);
    }
    eprintln!(
        "RSS after each cycle of {SESSIONS_PER_CYCLE} sessions: {rss:?} KiB; threads {threads:?}"
    );
    // A leak lifts every stretch of the run; a one-off step of the heap's working size does
    // not. Steps happen here: RSS rose ~6 MB after the first measured cycle on CI once, and
    // ~9 MB between two cycles in the middle of runs on a loaded host, then stayed flat for
    // the rest (no more threads; a table that grew to a new high-water mark of sessions
    // open at once, which the next cycles reuse). So the run is cut into four windows of
    // cycles, and it is a leak only if both the first half (window 1 to 2) and the second
    // half (window 3 to 4) grew: a single step lifts one of them at most. The medians keep
    // single noisy figures out.
    let median = |window: &[u64]| {
        let mut sorted = window.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    };
    let windows: Vec<u64> = rss.chunks(WINDOW).map(median).collect();
    let first_half = windows[1].saturating_sub(windows[0]);
    let second_half = windows[3].saturating_sub(windows[2]);
    let growth = first_half.min(second_half);
    assert!(
        growth <= RSS_GROWTH_BOUND_KIB,
        "RSS grew by {first_half} KiB in the first half and {second_half} KiB in the second over \
         {CYCLES} cycles of {SESSIONS_PER_CYCLE} sessions (after each cycle: {rss:?} KiB); \
         sessions that closed are still held"
    );
    assert_eq!(
        node.metric("voiceflow_rooms_running").await?,
        rooms.len() as f64
    );

    // The last session leaves: every room stops once idle for 2 s.
    anchor_reader.abort();
    let _ = anchor_reader.await;
    metric_reaches(&node, "voiceflow_sessions", 0.0, Duration::from_secs(10)).await?;
    metric_reaches(
        &node,
        "voiceflow_rooms_running",
        0.0,
        Duration::from_secs(15),
    )
    .await
    .context("rooms nobody uses must stop after room_idle_timeout_secs")?;
    Ok(())
}

#[tokio::test]
async fn rooms_nobody_uses_stop_after_the_idle_timeout() -> Result<()> {
    let node = TestNode::start_with(&format!("{FAST_CONFIG}room_idle_timeout_secs = 1\n")).await?;
    let alice = node.register("alice").await?;
    let mut rooms = Vec::new();
    for n in 0..10 {
        rooms.push(
            node.create_room(&alice, &format!("room-{n}"), json!({}), 10)
                .await?
                .0,
        );
    }
    let mut ws = node.ws(&alice).await?;
    for room in &rooms {
        assert_eq!(
            ws.request("room:join", json!({"roomId": room})).await?["ok"],
            true
        );
    }
    assert_eq!(node.metric("voiceflow_rooms_running").await?, 10.0);
    // Left explicitly or by closing the connection: either way the rooms go idle.
    for room in &rooms[..5] {
        assert_eq!(
            ws.request("room:leave", json!({"roomId": room})).await?["ok"],
            true
        );
    }
    drop(ws);
    metric_reaches(
        &node,
        "voiceflow_rooms_running",
        0.0,
        Duration::from_secs(10),
    )
    .await?;
    // A room that stopped starts again on next use.
    let mut ws = node.ws(&alice).await?;
    assert_eq!(
        ws.request("room:join", json!({"roomId": rooms[0]})).await?["ok"],
        true
    );
    assert_eq!(node.metric("voiceflow_rooms_running").await?, 1.0);
    Ok(())
}
