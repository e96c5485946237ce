//! The per-room client tasks: the latency part's open-loop sender and its receiver, and
//! the churn part's probing sender and its re-joining receiver (with their reconnects).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::churn::{ChurnRoom, ChurnShared, Probe, Side};
use super::latency::{LatRoom, LatShared};
use super::lock;
use super::nodes::{Incoming, Nodes, connect_retry, incoming, probe_of};
use crate::stats::{Recorder, elapsed_ns};
use crate::ws::Conn;

pub(super) async fn lat_sender(
    mut conn: Conn,
    room: Arc<LatRoom>,
    shared: Arc<LatShared>,
    period: Duration,
    duration: Duration,
    origin: Instant,
) {
    let mut ack_rec = Recorder::new(shared.ack_latency[room.cat].clone());
    let mut inflight: HashMap<u64, (u64, u64)> = HashMap::new();
    shared.start.wait().await;
    let Some(&start_at) = shared.start_at.get() else {
        return;
    };
    let end = start_at + duration;
    let room_json = json!(room.id).to_string();
    let mut k = 0u64;
    let due = |k: u64| start_at + room.offset + period.mul_f64(k as f64);
    let mut sending = due(0) < end;
    let wake = tokio::time::sleep_until(due(0).into());
    tokio::pin!(wake);
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            text = shared.next_text(&mut conn.ws) => {
                let Some(text) = text else { return };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if v["type"] != "ack" {
                    continue;
                }
                let Some((seq, t0)) = v["id"].as_u64().and_then(|id| inflight.remove(&id)) else {
                    continue;
                };
                if v["ok"] == true {
                    shared.acked[room.cat].fetch_add(1, Ordering::Relaxed);
                    ack_rec.record(elapsed_ns(origin).saturating_sub(t0));
                    lock(&room.log).0.insert(seq);
                } else {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    let mut first = lock(&shared.first_error);
                    if first.is_none() {
                        *first = Some(v["error"].to_string());
                    }
                }
            }
            () = &mut wake, if sending => {
                let id = conn.next_id();
                let t = elapsed_ns(origin);
                let frame = format!(
                    r#"{{"type":"message:send","id":{id},"data":{{"roomId":{room_json},"content":"t={t} k={k}"}}}}"#
                );
                if conn.ws.send(Message::text(frame)).await.is_err() {
                    shared.disconnects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                inflight.insert(id, (k, t));
                shared.sent.fetch_add(1, Ordering::Relaxed);
                k += 1;
                if due(k) >= end {
                    sending = false;
                } else {
                    wake.as_mut().reset(due(k).into());
                }
            }
            () = &mut stop => return,
        }
    }
}

pub(super) async fn lat_receiver(
    mut conn: Conn,
    room: Arc<LatRoom>,
    shared: Arc<LatShared>,
    origin: Instant,
) {
    let mut rec = Recorder::new(shared.latency[room.cat].clone());
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    loop {
        let text = tokio::select! {
            biased;
            text = shared.next_text(&mut conn.ws) => text,
            () = &mut stop => None,
        };
        let Some(text) = text else { return };
        let now = elapsed_ns(origin);
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some((_, t, k)) = probe_of(&v, &room.id) else {
            continue;
        };
        rec.record(now.saturating_sub(t));
        shared.delivered[room.cat].fetch_add(1, Ordering::Relaxed);
        *lock(&room.log).1.entry(k).or_default() += 1;
    }
}

/// One client of a churn room, for its (re)connects.
struct Client<'a> {
    nodes: &'a Nodes,
    room: &'a ChurnRoom,
    shared: &'a ChurnShared,
    side: Side,
}

impl Client<'_> {
    /// The first connect (under `sem`), retrying from node `first_node` on; then the
    /// client counts as ready.
    async fn first_connect(
        &self,
        sem: Arc<Semaphore>,
        first_node: usize,
        join: Option<&Value>,
        frames: &mut Vec<Value>,
    ) -> Option<(usize, Conn)> {
        let opened = {
            let _permit = sem.acquire_owned().await;
            let token = self.room.token(self.side);
            connect_retry(
                self.nodes,
                first_node,
                token,
                join,
                frames,
                &self.shared.hard_stop,
            )
            .await
        };
        let (node, conn) = opened?;
        lock(&self.room.log).connected(self.side, node, false);
        self.shared.ready.fetch_add(1, Ordering::Relaxed);
        Some((node, conn))
    }

    /// A reconnect after the connection to node `node` broke, trying the next live ones.
    async fn reconnect(
        &self,
        node: usize,
        join: Option<&Value>,
        frames: &mut Vec<Value>,
    ) -> Option<(usize, Conn)> {
        let next = self.nodes.next_alive(node);
        let token = self.room.token(self.side);
        let (i, conn) = connect_retry(
            self.nodes,
            next,
            token,
            join,
            frames,
            &self.shared.hard_stop,
        )
        .await?;
        lock(&self.room.log).connected(self.side, i, true);
        Some((i, conn))
    }
}

enum Attempt {
    /// The message id, and when the attempt that got this ack was sent.
    Acked(u64, Instant),
    Refused(String),
    Timeout,
    Broken,
}

/// Sends one `message:send` and waits (until `deadline`) for an ack to any of `ids`
/// (earlier attempts of the same probe included).
async fn attempt(
    conn: &mut Conn,
    room_id: &str,
    content: &str,
    nonce: &str,
    ids: &mut Vec<(u64, Instant)>,
    deadline: Instant,
) -> Attempt {
    let id = conn.next_id();
    let frame = json!({
        "type": "message:send",
        "id": id,
        "data": { "roomId": room_id, "content": content, "nonce": nonce },
    })
    .to_string();
    if conn.ws.send(Message::text(frame)).await.is_err() {
        return Attempt::Broken;
    }
    ids.push((id, Instant::now()));
    loop {
        let msg = match tokio::time::timeout_at(deadline.into(), conn.ws.next()).await {
            Err(_) => return Attempt::Timeout,
            Ok(msg) => msg,
        };
        let text = match incoming(msg) {
            Incoming::Text(t) => t,
            Incoming::Ended => return Attempt::Broken,
            Incoming::Other => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(&(_, sent)) = ids.iter().find(|(i, _)| v["id"].as_u64() == Some(*i)) else {
            continue;
        };
        if v["type"] != "ack" {
            continue;
        }
        if v["ok"] == true {
            let mid = v["data"]["message"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Attempt::Acked(mid, sent);
        }
        return Attempt::Refused(v["error"].to_string());
    }
}

/// A churn room's `side` client, connecting first to node `first_node`.
pub(super) async fn churn_client(
    nodes: Arc<Nodes>,
    room: Arc<ChurnRoom>,
    shared: Arc<ChurnShared>,
    sem: Arc<Semaphore>,
    side: Side,
    first_node: usize,
) {
    let client = Client {
        nodes: &nodes,
        room: &room,
        shared: &shared,
        side,
    };
    match side {
        Side::Sender => churn_sender(&client, sem, first_node).await,
        Side::Receiver => churn_receiver(&client, sem, first_node).await,
    }
}

async fn churn_sender(client: &Client<'_>, sem: Arc<Semaphore>, first_node: usize) {
    let (room, shared) = (client.room, client.shared);
    let mut frames = Vec::new();
    let opened = client
        .first_connect(sem, first_node, None, &mut frames)
        .await;
    let Some((mut node, c)) = opened else { return };
    let mut conn = Some(c);
    tokio::select! {
        () = shared.start.wait() => {}
        () = shared.hard_stop.wait() => return,
    }
    let Some(&start_at) = shared.start_at.get() else {
        return;
    };
    let base = start_at + room.offset;
    let mut slot: u32 = 0;
    let mut k: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until((base + shared.interval * slot).into()) => {}
            () = shared.stop_sending.wait() => return,
        }
        if shared.stop_sending.is_set() {
            return;
        }
        let t_ns = elapsed_ns(shared.origin);
        let content = format!("t={t_ns} k={k}");
        let nonce = format!("{}-{}-{k}", shared.run_id, room.index);
        lock(&room.log).sends.push(Probe {
            first_sent: Instant::now(),
            acked: None,
        });
        let mut ids = Vec::new();
        let mut tries = 0u32;
        loop {
            if shared.hard_stop.is_set() {
                return;
            }
            if conn.is_none() {
                ids.clear();
                let Some((i, c)) = client.reconnect(node, None, &mut frames).await else {
                    return;
                };
                node = i;
                conn = Some(c);
            }
            let Some(c) = conn.as_mut() else { continue };
            if tries > 0 {
                lock(&room.log).resends.push(Instant::now());
            }
            tries += 1;
            let deadline = Instant::now() + shared.resend;
            match attempt(c, &room.id, &content, &nonce, &mut ids, deadline).await {
                Attempt::Acked(mid, sent) => {
                    let now = Instant::now();
                    let mut log = lock(&room.log);
                    if let Some(p) = log.sends.get_mut(k as usize) {
                        p.acked = Some((now, mid));
                    }
                    log.acks.push(now);
                    log.served.push((sent, now));
                    break;
                }
                Attempt::Refused(e) => {
                    {
                        let mut log = lock(&room.log);
                        log.refusals += 1;
                        if log.first_refusal.is_none() {
                            log.first_refusal = Some(e);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Attempt::Timeout => {}
                Attempt::Broken => conn = None,
            }
        }
        k += 1;
        // Next slot in the future (a late ack skips the slots it overran).
        let behind = Instant::now().saturating_duration_since(base);
        let min_slot = (behind.as_nanos() / shared.interval.as_nanos()) as u32 + 1;
        slot = (slot + 1).max(min_slot);
    }
}

async fn churn_receiver(client: &Client<'_>, sem: Arc<Semaphore>, first_node: usize) {
    let (room, shared) = (client.room, client.shared);
    let mut rec = Recorder::new(shared.latency.clone());
    let mut frames = Vec::new();
    // The room-log seq of the newest event received: where a re-join resumes.
    let mut last_id: Option<u64> = None;
    let join = json!({ "roomId": room.id });
    let opened = client
        .first_connect(sem, first_node, Some(&join), &mut frames)
        .await;
    let Some((mut node, c)) = opened else { return };
    let mut conn = Some(c);
    let mut handle = |v: &Value, last_id: &mut Option<u64>| {
        let Some((id, t, k)) = probe_of(v, &room.id) else {
            return;
        };
        rec.record(elapsed_ns(shared.origin).saturating_sub(t));
        *last_id = v["data"]["seq"].as_u64().or(*last_id);
        lock(&room.log).recv.push((k, id, Instant::now()));
    };
    loop {
        let Some(c) = conn.as_mut() else {
            let join = match last_id {
                Some(seq) => json!({ "roomId": room.id, "since": seq }),
                None => json!({ "roomId": room.id }),
            };
            let Some((i, c)) = client.reconnect(node, Some(&join), &mut frames).await else {
                return;
            };
            node = i;
            for v in frames.drain(..) {
                handle(&v, &mut last_id);
            }
            conn = Some(c);
            continue;
        };
        tokio::select! {
            biased;
            msg = c.ws.next() => match incoming(msg) {
                Incoming::Text(text) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        handle(&v, &mut last_id);
                    }
                }
                Incoming::Ended => conn = None,
                Incoming::Other => {}
            },
            () = shared.hard_stop.wait() => return,
        }
    }
}
