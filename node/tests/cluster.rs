//! A cluster of real node processes over QUIC (mutual TLS) on loopback, sharing the CQL test
//! server: clients on different nodes share rooms in one order; under steady load a node is
//! added, another killed with SIGKILL and a third drained, and every acknowledged message is
//! delivered exactly once, in order, to the other member of its room; a node with a
//! certificate from another CA cannot join.
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it these tests skip loudly.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::cluster::{TestCluster, make_certs};
use common::{TestNode, User, WsClient};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Cluster tests start several nodes each; one at a time keeps the 2-core machine sane.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn message_of(frame: &Value, room: &str) -> Option<(u64, String)> {
    // System messages (joins) are logged too; these tests follow what users sent.
    if frame["type"] != "message:received"
        || frame["data"]["roomId"] != room
        || frame["data"]["type"] == "system"
    {
        return None;
    }
    let id = frame["data"]["id"].as_str()?.parse().ok()?;
    Some((id, frame["data"]["content"].as_str()?.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_nodes_share_a_room_in_one_order() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let Some(cluster) = TestCluster::start(3, "clients_on_three_nodes_share_a_room").await? else {
        return Ok(());
    };
    let status = cluster.status(2).await?;
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(status["quorum"], true);

    let ann = cluster.node(1).register("ann").await?;
    let (room, _) = cluster
        .node(1)
        .create_room(&ann, "general", json!({"isPublic": true}), 50)
        .await?;
    let bob = cluster.node(2).register("bob").await?;
    let cat = cluster.node(3).register("cat").await?;
    let mut clients = Vec::new();
    for (i, user) in [&ann, &bob, &cat].into_iter().enumerate() {
        let mut ws = cluster.node(i + 1).ws(user).await?;
        let ack = ws.request("room:join", json!({"roomId": room})).await?;
        assert_eq!(ack["ok"], true, "join through node {}: {ack}", i + 1);
        clients.push(ws);
    }
    // Everyone sends at once, through three different nodes.
    for round in 0..10 {
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(
                "message:send",
                json!({"roomId": room, "content": format!("{i}-{round}"), "nonce": format!("n{i}-{round}")}),
            )
            .await?;
        }
    }
    let mut orders = Vec::new();
    for ws in &mut clients {
        let mut seen = Vec::new();
        while seen.len() < 30 {
            let frame = ws.wait_for(|v| v["type"] == "message:received").await?;
            if let Some(m) = message_of(&frame, &room) {
                seen.push(m);
            }
        }
        orders.push(seen);
    }
    for order in &orders {
        assert!(order.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
        for sender in 0..3 {
            let mine: Vec<&String> = order
                .iter()
                .map(|(_, c)| c)
                .filter(|c| c.starts_with(&format!("{sender}-")))
                .collect();
            let expected: Vec<String> = (0..10).map(|r| format!("{sender}-{r}")).collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "per-sender order"
            );
        }
    }
    assert_eq!(orders[0], orders[1], "same order on node 1 and node 2");
    assert_eq!(orders[0], orders[2], "same order on node 1 and node 3");

    // Typing and member lists cross nodes too.
    clients[1]
        .request("typing:start", json!({"roomId": room}))
        .await?;
    let typing = clients[2].wait_for(|v| v["type"] == "user:typing").await?;
    assert_eq!(typing["data"]["userId"], bob.id.as_str());
    let (code, members) = cluster
        .node(3)
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&cat.token))
        .await?;
    assert_eq!(code, 200, "{members}");
    assert_eq!(members["data"].as_array().map(Vec::len), Some(3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let Some(mut cluster) =
        TestCluster::start(2, "a_node_with_a_certificate_from_another_ca").await?
    else {
        return Ok(());
    };
    let foreign = cluster.tmp.path().join("foreign-certs");
    make_certs(&foreign, &[3])?;
    cluster
        .quic
        .push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
    let seeds = vec![cluster.quic[0], cluster.quic[1]];
    let config = cluster.config(3, &foreign, &seeds)?;
    let dir = cluster.tmp.path().join("node-foreign");
    std::fs::create_dir_all(&dir)?;
    let intruder = TestNode::start_in(&dir, &config).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in 1..=2 {
        let status = cluster.status(id).await?;
        let members = status["members"].as_array().cloned().unwrap_or_default();
        assert_eq!(members.len(), 2, "node {id} let the intruder in: {status}");
    }
    let (_, own_view) = intruder.get("/cluster", None).await?;
    assert_eq!(
        own_view["members"].as_array().map(Vec::len),
        Some(1),
        "the intruder met nobody: {own_view}"
    );
    // The real members still work together.
    cluster.wait_converged(Duration::from_secs(5)).await?;
    cluster.nodes.push(None);
    Ok(())
}

/// When a snowflake id was made (Unix ms), to line failures up with the test's events.
fn unix_ms(id: u64) -> u64 {
    (id >> 22) + 1_704_067_200_000
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What one room's sender and receiver saw.
#[derive(Default)]
struct RoomLog {
    /// Content → id, for every acknowledged message.
    acked: HashMap<String, u64>,
    /// (id, content) in the order the receiver got them.
    received: Vec<(u64, String)>,
    /// Longest time between two acks (a room moving or recovering).
    longest_gap: Duration,
    reconnects: u32,
    /// Times a receiver's open connection went silent for 10 s (its room stopped reaching it).
    stalls: u32,
}

struct Load {
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    logs: Vec<Arc<Mutex<RoomLog>>>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

async fn connect_any(addrs: &Mutex<Vec<SocketAddr>>, start: usize, user: &User) -> WsClient {
    let mut i = start;
    loop {
        let addr = {
            let a = addrs.lock();
            a[i % a.len()]
        };
        if let Ok(ws) = WsClient::connect(addr, &user.token).await {
            return ws;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `room:<k>` messages one after another (each with its nonce), retrying the same nonce
/// through any live node until acknowledged.
async fn sender(
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<RoomLog>>,
    user: User,
    room: String,
    home: usize,
) -> Result<()> {
    let mut ws = connect_any(&addrs, home, &user).await;
    let mut node = home;
    let mut last_ack = Instant::now();
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let content = format!("{room}:{k}");
        loop {
            // A client gives up on an ack after a few seconds and retries (same nonce).
            let sent = tokio::time::timeout(
                Duration::from_secs(3),
                ws.request(
                    "message:send",
                    json!({"roomId": room, "content": content, "nonce": content}),
                ),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no ack within 3 s")));
            match sent {
                Ok(ack) if ack["ok"] == true => {
                    let id: u64 = ack["data"]["message"]["id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_default();
                    let mut log = log.lock();
                    log.acked.insert(content.clone(), id);
                    log.longest_gap = log.longest_gap.max(last_ack.elapsed());
                    last_ack = Instant::now();
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => {
                    node += 1;
                    log.lock().reconnects += 1;
                    ws = connect_any(&addrs, node, &user).await;
                }
            }
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(())
}

/// Follows the room from any live node, re-joining from the last id it got.
async fn receiver(
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<RoomLog>>,
    user: User,
    room: String,
    home: usize,
) -> Result<()> {
    let mut node = home;
    let mut last: Option<u64> = None;
    // Where a re-join resumes: the room-log seq of the last message received.
    let mut last_seq = 0u64;
    let deadline_after_stop = Duration::from_secs(30);
    let mut stopped_at: Option<Instant> = None;
    'connect: loop {
        let mut ws = connect_any(&addrs, node, &user).await;
        let join = match last {
            Some(_) => json!({"roomId": room, "since": last_seq}),
            None => json!({"roomId": room}),
        };
        match ws.request("room:join", join).await {
            Ok(ack) if ack["ok"] == true => {}
            _ => {
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        // Replayed messages may have arrived before the ack.
        let mut pending: std::collections::VecDeque<Value> = ws.backlog.drain(..).collect();
        loop {
            if stop.load(Ordering::Relaxed) {
                let at = *stopped_at.get_or_insert_with(Instant::now);
                let log = log.lock();
                let got: HashSet<&String> = log.received.iter().map(|(_, c)| c).collect();
                if log.acked.keys().all(|c| got.contains(c)) || at.elapsed() > deadline_after_stop {
                    return Ok(());
                }
            }
            let frame = match pending.pop_front() {
                Some(f) => Ok(Some(f)),
                None => {
                    // Once the senders stopped, silence is expected: look again at what is
                    // still missing every second.
                    let stopped = stop.load(Ordering::Relaxed);
                    let wait = Duration::from_secs(if stopped { 1 } else { 10 });
                    match tokio::time::timeout(wait, ws.next_frame()).await {
                        Ok(frame) => frame,
                        Err(_) if stop.load(Ordering::Relaxed) => continue,
                        Err(_) => {
                            let entry = {
                                let a = addrs.lock();
                                a.get(node % a.len().max(1)).copied()
                            };
                            eprintln!(
                                "receiver of {room} (entered at {entry:?}) went silent until {}; \
                                 last message made at {:?}",
                                now_ms(),
                                last.map(unix_ms)
                            );
                            log.lock().stalls += 1;
                            Ok(None)
                        }
                    }
                }
            };
            match frame {
                Ok(Some(f)) => {
                    if let Some((id, content)) = message_of(&f, &room) {
                        last = Some(id);
                        last_seq = f["data"]["seq"].as_u64().unwrap_or(last_seq);
                        log.lock().received.push((id, content));
                    }
                }
                Ok(None) | Err(_) => {
                    node += 1;
                    log.lock().reconnects += 1;
                    continue 'connect;
                }
            }
        }
    }
}

impl Load {
    /// `rooms` rooms, each with a sender and a receiver entering through different nodes of
    /// `entries` (1-based node ids).
    async fn start(cluster: &TestCluster, rooms: usize, entries: &[usize]) -> Result<Load> {
        let addrs = Arc::new(Mutex::new(
            entries.iter().map(|id| cluster.node(*id).addr).collect(),
        ));
        let n = entries.len();
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load {
            addrs: addrs.clone(),
            stop: stop.clone(),
            logs: Vec::new(),
            tasks: Vec::new(),
        };
        for i in 0..rooms {
            let home = i % n;
            let away = (i + 1) % n;
            let author = cluster
                .node(entries[home])
                .register(&format!("sender{i}"))
                .await?;
            let reader = cluster
                .node(entries[away])
                .register(&format!("reader{i}"))
                .await?;
            let (room, _) = cluster
                .node(entries[home])
                .create_room(&author, &format!("load-{i}"), json!({"isPublic": true}), 10)
                .await?;
            let log = Arc::new(Mutex::new(RoomLog::default()));
            load.logs.push(log.clone());
            load.tasks.push(tokio::spawn(receiver(
                addrs.clone(),
                stop.clone(),
                log.clone(),
                reader,
                room.clone(),
                away,
            )));
            load.tasks.push(tokio::spawn(sender(
                addrs.clone(),
                stop.clone(),
                log,
                author,
                room,
                home,
            )));
        }
        Ok(load)
    }

    /// Stops sending, waits for the receivers, and checks every room.
    async fn finish(self) -> Result<(usize, Duration, u32)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(60), task).await???;
        }
        let (mut total, mut gap, mut reconnects) = (0, Duration::ZERO, 0);
        for (i, log) in self.logs.iter().enumerate() {
            let log = log.lock();
            let ids: Vec<u64> = log.received.iter().map(|(id, _)| *id).collect();
            if !ids.windows(2).all(|w| w[0] < w[1]) {
                bail!(
                    "room {i}: duplicated or reordered delivery: {:?}",
                    log.received
                );
            }
            let seq = |c: &str| c.rsplit(':').next().and_then(|k| k.parse::<u64>().ok());
            let ks: Vec<Option<u64>> = log.received.iter().map(|(_, c)| seq(c)).collect();
            if !ks.windows(2).all(|w| w[0] < w[1]) {
                bail!("room {i}: sender order not kept: {ks:?}");
            }
            let got: HashMap<&String, u64> = log.received.iter().map(|(id, c)| (c, *id)).collect();
            for (content, id) in &log.acked {
                match got.get(content) {
                    Some(got_id) if got_id == id => {}
                    Some(other) => bail!("room {i}: {content} acked as {id}, delivered as {other}"),
                    None => {
                        let near: Vec<String> = log
                            .received
                            .iter()
                            .filter(|(r, _)| r.abs_diff(*id) < (3000 << 22))
                            .map(|(r, c)| format!("{c}@{}", unix_ms(*r)))
                            .collect();
                        bail!(
                            "room {i}: acknowledged {content} ({id}, made at {}) never \
                             delivered; received around it: {near:?}",
                            unix_ms(*id)
                        )
                    }
                }
            }
            if log.stalls > 0 {
                bail!(
                    "room {i}: the receiver's connection went silent {} times",
                    log.stalls
                );
            }
            total += log.acked.len();
            gap = gap.max(log.longest_gap);
            reconnects += log.reconnects;
        }
        Ok((total, gap, reconnects))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_killing_and_draining_nodes_under_load_loses_nothing() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let Some(mut cluster) = TestCluster::start(3, "adding_killing_and_draining_nodes").await?
    else {
        return Ok(());
    };
    let load = Load::start(&cluster, 12, &[1, 2, 3]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A fourth node joins live: rooms that now hash to it move there.
    let added = Instant::now();
    eprintln!("adding node 4 at {}", now_ms());
    cluster.add().await?;
    load.addrs.lock().push(cluster.node(4).addr);
    let converged = cluster.wait_converged(Duration::from_secs(15)).await?;
    eprintln!(
        "node 4 joined: all nodes agreed {:?} after it started ({:?} in all)",
        converged,
        added.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // kill -9 node 2: its rooms restart elsewhere from storage, its clients reconnect.
    let killed_addr = cluster.node(2).addr;
    let killed = Instant::now();
    eprintln!("killing node 2 at {}", now_ms());
    cluster.kill9(2);
    load.addrs.lock().retain(|a| *a != killed_addr);
    cluster.wait_converged(Duration::from_secs(15)).await?;
    eprintln!(
        "node 2 killed: marked down everywhere after {:?}",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Drain node 3: it hands its rooms off and sends its clients elsewhere.
    let drained_addr = cluster.node(3).addr;
    load.addrs.lock().retain(|a| *a != drained_addr);
    eprintln!("draining node 3 at {}", now_ms());
    let code = cluster.drain(3)?;
    eprintln!("node 3 exited at {}", now_ms());
    assert_eq!(code, Some(0), "a drained node exits cleanly");
    cluster.wait_converged(Duration::from_secs(15)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (acked, gap, reconnects) = load.finish().await?;
    eprintln!(
        "{acked} acknowledged messages, all delivered once and in order; longest pause of a \
         room: {gap:?}; client reconnects: {reconnects}"
    );
    assert!(acked > 100, "the load ran ({acked} messages)");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_minority_stops_serving_and_the_majority_loses_nothing() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let Some(cluster) =
        TestCluster::start_with(3, "a_partitioned_minority", "fault_injection = true").await?
    else {
        return Ok(());
    };
    // A client of node 3, which will end up on the minority side.
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

    // Cut node 3 off from nodes 1 and 2, both ways.
    let cut = Instant::now();
    cluster.block(3, &[1, 2]).await?;
    cluster.block(1, &[3]).await?;
    cluster.block(2, &[3]).await?;
    let fenced = loop {
        let status = cluster.status(3).await?;
        if status["quorum"] == false && status["owners"].as_array().is_some_and(Vec::is_empty) {
            break cut.elapsed();
        }
        if cut.elapsed() > Duration::from_secs(10) {
            bail!("node 3 kept serving without a majority: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cluster
        .wait_owners(&[1, 2], &[1, 2], Duration::from_secs(10))
        .await?;
    let dropped = cut.elapsed();
    eprintln!(
        "partition: node 3 fenced itself after {fenced:?}; nodes 1 and 2 dropped it after \
         {dropped:?}"
    );
    assert!(
        fenced < dropped,
        "the minority stops before the majority takes over"
    );

    // The minority's clients are told to retry; nothing of theirs is acknowledged.
    let refused = minority
        .request(
            "message:send",
            json!({"roomId": zroom, "content": "from the minority", "nonce": "z-1"}),
        )
        .await?;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "INTERNAL_ERROR", "{refused}");
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Heal: node 3 comes back, rooms that hash to it move back to it.
    cluster.block(1, &[]).await?;
    cluster.block(2, &[]).await?;
    cluster.block(3, &[]).await?;
    cluster.wait_converged(Duration::from_secs(10)).await?;
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
    eprintln!(
        "partition: {acked} acknowledged messages on the majority side, all delivered once and \
         in order; longest pause of a room: {gap:?}"
    );
    assert!(acked > 50, "the load ran ({acked} messages)");
    Ok(())
}
