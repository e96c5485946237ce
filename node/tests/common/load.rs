//! Steady load on a cluster for fault tests: rooms, each with a sender that posts
//! `room:<k>` messages with nonces (resending the same nonce through any live node until
//! acknowledged) and a receiver that follows the room from any live node (re-joining with
//! `since`); [`Load::finish`] checks that every acknowledged message was delivered exactly
//! once and in order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::cluster::TestCluster;
use super::{User, WsClient};

pub fn message_of(frame: &Value, room: &str) -> Option<(u64, String)> {
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

pub fn unix_ms(id: u64) -> u64 {
    (id >> 22) + 1_704_067_200_000
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What one room's sender and receiver saw.
#[derive(Default)]
pub struct RoomLog {
    /// Content → id, for every acknowledged message.
    pub acked: HashMap<String, u64>,
    /// (id, content) in the order the receiver got them.
    received: Vec<(u64, String)>,
    /// Longest time between two acks (a room moving or recovering).
    longest_gap: Duration,
    /// When each acknowledgement arrived.
    pub ack_times: Vec<Instant>,
    reconnects: u32,
    /// Times a receiver's open connection went silent for 10 s (its room stopped reaching it).
    stalls: u32,
    /// The room's sender stopped: every message it sent was acknowledged.
    sender_done: bool,
    /// What the clients saw that a client would show as an error: failed acks, error events,
    /// connections closed with another code than 4009 (reconnect elsewhere) or with none.
    pub errors: Vec<String>,
}

pub struct Load {
    pub addrs: Arc<Mutex<Vec<SocketAddr>>>,
    pub stop: Arc<AtomicBool>,
    pub logs: Vec<Arc<Mutex<RoomLog>>>,
    /// Room ids, in the order of `logs`.
    pub rooms: Vec<String>,
    /// Each room's sender, in the order of `logs`.
    pub authors: Vec<User>,
    /// Whether a receiver's connection going silent for 10 s fails [`Load::finish`] (not
    /// when faults stop every write for longer, like a CQL server restart).
    pub check_stalls: bool,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
    receivers: Vec<tokio::task::JoinHandle<Result<()>>>,
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
                    log.ack_times.push(Instant::now());
                    log.longest_gap = log.longest_gap.max(last_ack.elapsed());
                    last_ack = Instant::now();
                    break;
                }
                Ok(ack) => {
                    trace(|| format!("sender of {room}: {content} refused: {}", ack["error"]));
                    log.lock().errors.push(format!(
                        "{room}: send failed at {}: {}",
                        now_ms(),
                        ack["error"]
                    ));
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => {
                    // A close with 4009 is the reconnect a draining node asks for; a missing
                    // ack is a delay (the client resends), not an error it shows.
                    let e = e.to_string();
                    trace(|| format!("sender of {room}: {content}: {e}; reconnecting"));
                    if !e.contains("4009") && !e.contains("no ack within") {
                        log.lock().errors.push(format!("{room}: sender: {e}"));
                    }
                    node += 1;
                    log.lock().reconnects += 1;
                    ws = connect_any(&addrs, node, &user).await;
                }
            }
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    trace(|| format!("sender of {room}: done after {k} messages"));
    log.lock().sender_done = true;
    Ok(())
}

/// How long a receiver's open connection may hear nothing before that counts as a stall.
const STALL: Duration = Duration::from_secs(10);
/// How long a receiver waits for what is missing once its sender stopped (then `finish`
/// reports what never came).
const LAST_WAIT: Duration = Duration::from_secs(30);

/// What a receiver does next, given its room's log, how long its connection has been silent
/// and how long ago its sender stopped (if it did).
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep reading.
    Read,
    /// Everything acknowledged arrived after the sender stopped (or the last wait ran out).
    Done,
    /// Silent for [`STALL`] while the sender still sent, or while acknowledged messages were
    /// still missing: the room stopped reaching this connection.
    Stalled,
}

/// Decided from the receiver's own room only, and again after every wait: a receiver that
/// chose how long to wait before its sender finished, or whose room went quiet because its
/// sender stopped while another room's sender still waited for an ack, has nothing to report.
/// (Both were counted as stalls: once the connection had heard nothing for 10 s, it was one,
/// even with every acknowledged message received.)
pub fn next_step(
    sender_done: bool,
    missing: usize,
    silent: Duration,
    since_done: Duration,
) -> Next {
    match (sender_done, missing) {
        (true, 0) => Next::Done,
        (true, _) if since_done > LAST_WAIT => Next::Done,
        _ if silent >= STALL => Next::Stalled,
        _ => Next::Read,
    }
}

impl RoomLog {
    /// Acknowledged messages the receiver has not got.
    fn missing(&self) -> usize {
        let got: HashSet<&String> = self.received.iter().map(|(_, c)| c).collect();
        self.acked.keys().filter(|c| !got.contains(c)).count()
    }
}

/// A line on stderr for following a run, with `LOAD_TRACE` set (the time ends it).
fn trace(line: impl FnOnce() -> String) {
    if std::env::var_os("LOAD_TRACE").is_some() {
        eprintln!("{} ({})", line(), now_ms());
    }
}

/// Follows the room from any live node, re-joining from the last id it got.
async fn receiver(
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    log: Arc<Mutex<RoomLog>>,
    user: User,
    room: String,
    home: usize,
) -> Result<()> {
    let mut node = home;
    let mut last: Option<u64> = None;
    // Where a re-join resumes: the room-log seq of the last message received.
    let mut last_seq = 0u64;
    let mut stopped_at: Option<Instant> = None;
    'connect: loop {
        let mut ws = connect_any(&addrs, node, &user).await;
        if std::env::var_os("LOAD_TRACE").is_some() {
            eprintln!(
                "receiver of {room}: joins at node index {node} since {last_seq} ({})",
                now_ms()
            );
        }
        let join = match last {
            Some(_) => json!({"roomId": room, "since": last_seq}),
            None => json!({"roomId": room}),
        };
        match ws.request("room:join", join).await {
            Ok(ack) if ack["ok"] == true => {}
            other => {
                if std::env::var_os("LOAD_TRACE").is_some() {
                    eprintln!("receiver of {room}: join refused: {other:?}");
                }
                match &other {
                    Ok(ack) => log
                        .lock()
                        .errors
                        .push(format!("{room}: join failed: {ack}")),
                    Err(e) if !e.to_string().contains("4009") => {
                        log.lock().errors.push(format!("{room}: join: {e}"))
                    }
                    Err(_) => {}
                }
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        // Replayed messages may have arrived before the ack.
        let mut pending: std::collections::VecDeque<Value> = ws.backlog.drain(..).collect();
        let mut heard = Instant::now();
        loop {
            let step = {
                let log = log.lock();
                // What is missing matters only once the sender stopped (counting it on every
                // frame would cost a long soak dearly).
                let (missing, since_done) = match log.sender_done {
                    true => (
                        log.missing(),
                        stopped_at.get_or_insert_with(Instant::now).elapsed(),
                    ),
                    false => (0, Duration::ZERO),
                };
                next_step(log.sender_done, missing, heard.elapsed(), since_done)
            };
            let frame = match (step, pending.pop_front()) {
                (Next::Done, _) => return Ok(()),
                (_, Some(f)) => Ok(Some(f)),
                (Next::Read, None) => {
                    // A second at a time: the verdict is taken again after every wait.
                    match tokio::time::timeout(Duration::from_secs(1), ws.next_frame()).await {
                        Ok(frame) => {
                            heard = Instant::now();
                            frame
                        }
                        Err(_) => continue,
                    }
                }
                (Next::Stalled, None) => {
                    let missing = log.lock().missing();
                    let entry = {
                        let a = addrs.lock();
                        a.get(node % a.len().max(1)).copied()
                    };
                    eprintln!(
                        "receiver of {room} (entered at {entry:?}) went silent until {}; last \
                         message made at {:?}; {missing} acknowledged messages not received",
                        now_ms(),
                        last.map(unix_ms)
                    );
                    log.lock().stalls += 1;
                    Ok(None)
                }
            };
            match frame {
                Ok(Some(f)) => {
                    if f["type"] == "error" {
                        log.lock().errors.push(format!("{room}: error event: {f}"));
                    }
                    // Every logged event of the room has a seq (the reader's own "joined"
                    // system message too), so a jump is an event this receiver missed: say
                    // when and where, for the logs.
                    if f["type"] == "message:received" && f["data"]["roomId"] == room.as_str() {
                        let seq = f["data"]["seq"].as_u64().unwrap_or(last_seq);
                        if last_seq > 0 && seq > last_seq + 1 {
                            eprintln!(
                                "receiver of {room}: seq jumped {last_seq} -> {seq} at {} on node index {node}",
                                now_ms()
                            );
                        }
                        last_seq = seq;
                    }
                    if let Some((id, content)) = message_of(&f, &room) {
                        last = Some(id);
                        log.lock().received.push((id, content));
                    }
                }
                Ok(None) | Err(_) => {
                    if let Err(code) = frame
                        && code != Some(4009)
                    {
                        log.lock()
                            .errors
                            .push(format!("{room}: closed with {code:?}"));
                    }
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
    pub async fn start(cluster: &TestCluster, rooms: usize, entries: &[usize]) -> Result<Load> {
        let addrs = Arc::new(Mutex::new(
            entries.iter().map(|id| cluster.node(*id).addr).collect(),
        ));
        let n = entries.len();
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load {
            addrs: addrs.clone(),
            stop: stop.clone(),
            logs: Vec::new(),
            rooms: Vec::new(),
            authors: Vec::new(),
            check_stalls: true,
            tasks: Vec::new(),
            receivers: Vec::new(),
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
            load.rooms.push(room.clone());
            load.authors.push(author.clone());
            load.receivers.push(tokio::spawn(receiver(
                addrs.clone(),
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
    pub async fn finish(self) -> Result<(usize, Duration, u32)> {
        self.stop.store(true, Ordering::Relaxed);
        trace(|| "senders told to stop".into());
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(60), task).await???;
        }
        trace(|| "every sender stopped".into());
        for task in self.receivers {
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
                        let tail: Vec<String> = log
                            .received
                            .iter()
                            .rev()
                            .take(3)
                            .map(|(r, c)| format!("{c}@{}", unix_ms(*r)))
                            .collect();
                        bail!(
                            "room {i}: acknowledged {content} ({id}, made at {}) never \
                             delivered; received around it: {near:?}; the last received: \
                             {tail:?} of {}",
                            unix_ms(*id),
                            log.received.len()
                        )
                    }
                }
            }
            if self.check_stalls && log.stalls > 0 {
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

/// Every user message of a room through the REST history pages, oldest first: (id, content).
pub async fn history(
    node: &super::TestNode,
    token: &str,
    room: &str,
) -> Result<Vec<(String, String)>> {
    Ok(node
        .history(token, room, 100)
        .await?
        .iter()
        .filter(|m| m["type"] != "system")
        .filter_map(|m| {
            Some((
                m["id"].as_str()?.to_owned(),
                m["content"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Every room's stored history (REST pages through the first live node) against what its
/// sender had acknowledged: (lost, duplicated, reordered).
pub async fn check_histories(
    cluster: &TestCluster,
    rooms: &[String],
    authors: &[User],
    logs: &[Arc<Mutex<RoomLog>>],
) -> Result<(usize, usize, usize)> {
    let node = cluster
        .nodes
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no live node"))?;
    let (mut lost, mut duplicated, mut reordered) = (0usize, 0usize, 0usize);
    for (i, room) in rooms.iter().enumerate() {
        let stored = history(node, &authors[i].token, room).await?;
        let acked = logs[i].lock().acked.clone();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let mut last_k: Option<u64> = None;
        for (id, content) in &stored {
            if seen.insert(content, id).is_some() {
                eprintln!("room {i}: {content} stored twice");
                duplicated += 1;
            }
            let k = content
                .rsplit(':')
                .next()
                .and_then(|k| k.parse::<u64>().ok());
            if k.is_some() && last_k.is_some() && k <= last_k {
                eprintln!("room {i}: {content} stored out of order");
                reordered += 1;
            }
            last_k = k.or(last_k);
        }
        for (content, id) in &acked {
            match seen.get(content.as_str()) {
                Some(got) if got.parse::<u64>().ok() == Some(*id) => {}
                _ => {
                    eprintln!("room {i}: acknowledged {content} ({id}) not stored as acknowledged");
                    lost += 1;
                }
            }
        }
    }
    Ok((lost, duplicated, reordered))
}
