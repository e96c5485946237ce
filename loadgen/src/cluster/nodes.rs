//! The nodes the generator talks to, room setup, WebSocket connects (with retry over the
//! nodes), reading and parsing frames, and the join / kill shell commands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::{self, Message};

use super::timeout;
use crate::ws::{Conn, Signal, WsTarget};
use crate::{Args, Ctx, rest};

/// The nodes the generator may connect to (the `--urls`, then `--join-url`).
pub(super) struct Nodes {
    pub(super) urls: Vec<String>,
    pub(super) targets: Vec<WsTarget>,
    pub(super) alive: Vec<AtomicBool>,
}

impl Nodes {
    pub(super) fn len(&self) -> usize {
        self.urls.len()
    }

    /// The next node after `after` believed alive (or simply the next one).
    pub(super) fn next_alive(&self, after: usize) -> usize {
        let n = self.len();
        (1..=n)
            .map(|step| (after + step) % n)
            .find(|&i| self.alive[i].load(Ordering::Relaxed))
            .unwrap_or((after + 1) % n)
    }
}

pub(super) async fn setup_nodes(args: &Args) -> Result<Nodes> {
    let ca = &args.cluster;
    if ca.urls.is_empty() {
        bail!("cluster: --urls is required (comma-separated node base URLs)");
    }
    let timeout = timeout(args);
    let mut urls: Vec<String> = ca
        .urls
        .iter()
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .collect();
    let joined = ca
        .join_url
        .as_ref()
        .map(|u| u.trim_end_matches('/').to_owned());
    if let Some(u) = &joined {
        urls.push(u.clone());
    }
    let mut targets = Vec::new();
    for url in &urls {
        targets.push(
            WsTarget::resolve(url, timeout)
                .await
                .with_context(|| format!("resolving {url}"))?
                .with_read_buffer(4 * 1024),
        );
    }
    let alive = (0..urls.len())
        .map(|i| AtomicBool::new(i < ca.urls.len()))
        .collect();
    Ok(Nodes {
        urls,
        targets,
        alive,
    })
}

/// Registers `users_n` users through the first node and creates `rooms_n` rooms named
/// `<run id> <label> <r>`, room r owned by user `r % users_n`.
pub(super) async fn setup_rooms(
    args: &Args,
    ctx: &Ctx,
    nodes: &Nodes,
    users_n: usize,
    rooms_n: usize,
    label: &str,
) -> Result<(Vec<rest::User>, Vec<rest::Room>)> {
    let api = rest::Api::new(&nodes.urls[0], timeout(args))?;
    let users = rest::register_many(&api, &ctx.run_id, users_n, args.register_concurrency).await?;
    let specs = (0..rooms_n)
        .map(|r| {
            (
                users[r % users_n].token.clone(),
                format!("{} {label} {r}", ctx.run_id),
                10,
            )
        })
        .collect();
    let created = rest::create_rooms(&api, specs, args.rest_concurrency).await?;
    Ok((users, created))
}

/// Connects (hello), optionally sends `room:join` with `join` as data and waits for its
/// ack; frames received before the ack (a replay) are appended to `frames`.
pub(super) async fn open_conn(
    target: &WsTarget,
    token: &str,
    join: Option<&Value>,
    frames: &mut Vec<Value>,
) -> Result<Conn> {
    let mut conn = target.connect(token).await?;
    let Some(data) = join else {
        return Ok(conn);
    };
    let id = conn.next_id();
    let frame = json!({ "type": "room:join", "id": id, "data": data }).to_string();
    conn.ws
        .send(Message::text(frame))
        .await
        .context("WebSocket send")?;
    let deadline = tokio::time::Instant::now() + target.timeout();
    loop {
        let msg = tokio::time::timeout_at(deadline, conn.ws.next())
            .await
            .map_err(|_| anyhow!("no ack for room:join within {:?}", target.timeout()))?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v["type"] == "ack" && v["id"].as_u64() == Some(id) {
                    if v["ok"] == true {
                        return Ok(conn);
                    }
                    bail!("room:join refused: {}", v["error"]);
                }
                frames.push(v);
            }
            Some(Ok(Message::Close(frame))) => bail!("closed during room:join: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("WebSocket read"),
            None => bail!("WebSocket ended during room:join"),
        }
    }
}

/// Like [`open_conn`], trying node `first` and then the next live ones every 100 ms
/// until it succeeds or `stop` is set.
pub(super) async fn connect_retry(
    nodes: &Nodes,
    first: usize,
    token: &str,
    join: Option<&Value>,
    frames: &mut Vec<Value>,
    stop: &Signal,
) -> Option<(usize, Conn)> {
    let mut i = first % nodes.len();
    let mut failures = 0u32;
    loop {
        if stop.is_set() {
            return None;
        }
        frames.clear();
        match open_conn(&nodes.targets[i], token, join, frames).await {
            Ok(conn) => return Some((i, conn)),
            Err(e) => {
                failures += 1;
                if failures == 20 {
                    eprintln!("warning: 20 failed (re)connects in a row; last: {e:#}");
                }
            }
        }
        i = nodes.next_alive(i);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one read from a WebSocket gave.
pub(super) enum Incoming {
    Text(Utf8Bytes),
    /// A binary, ping or pong frame.
    Other,
    /// Closed, failed or ended.
    Ended,
}

pub(super) fn incoming(msg: Option<Result<Message, tungstenite::Error>>) -> Incoming {
    match msg {
        Some(Ok(Message::Text(t))) => Incoming::Text(t),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Incoming::Ended,
        Some(Ok(_)) => Incoming::Other,
    }
}

/// `(id, roomId, content)` of a `message:received` frame.
fn received_of(v: &Value) -> Option<(u64, &str, &str)> {
    if v.get("type")? != "message:received" {
        return None;
    }
    let data = v.get("data")?;
    let id = data.get("id")?.as_str()?.parse().ok()?;
    Some((
        id,
        data.get("roomId")?.as_str()?,
        data.get("content")?.as_str()?,
    ))
}

/// `(t, k)` from a `t=<ns> k=<seq>` content.
fn parse_content(content: &str) -> Option<(u64, u64)> {
    let rest = content.strip_prefix("t=")?;
    let (t, k) = rest.split_once(" k=")?;
    Some((t.parse().ok()?, k.trim().parse().ok()?))
}

/// `(id, t, k)` of a `message:received` frame in room `room_id` whose content is
/// `t=<ns> k=<seq>`.
pub(super) fn probe_of(v: &Value, room_id: &str) -> Option<(u64, u64, u64)> {
    let (id, room, content) = received_of(v)?;
    if room != room_id {
        return None;
    }
    let (t, k) = parse_content(content)?;
    Some((id, t, k))
}

/// Runs `sh -c <command>` with its stdout sent to our stderr; returns when it exits.
pub(super) async fn run_command(command: &str) -> Result<()> {
    eprintln!("cluster: running `{command}`");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} 1>&2"))
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("running `{command}`"))?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trip() {
        assert_eq!(parse_content("t=123 k=7"), Some((123, 7)));
        assert_eq!(parse_content("t=123"), None);
        let v: Value = serde_json::from_str(
            r#"{"type":"message:received","data":{"id":"42","roomId":"9","content":"t=1 k=2"}}"#,
        )
        .expect("json");
        assert_eq!(received_of(&v), Some((42, "9", "t=1 k=2")));
        assert_eq!(probe_of(&v, "9"), Some((42, 1, 2)));
        assert_eq!(probe_of(&v, "8"), None);
    }
}
