//! WebSocket client: connect + hello, request/ack, cheap frame classification, and a
//! broadcast start/stop signal.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use crate::JoinMembers;

/// A plain (non-TLS) WebSocket over TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Prefix of a `message:received` frame when `type` is serialised first.
const RECEIVED_PREFIX: &[u8] = br#"{"type":"message:received""#;
/// The type member anywhere in the frame (a JSON string value cannot contain these
/// unescaped quotes, so message contents cannot fake it).
const RECEIVED_MEMBER: &[u8] = br#""type":"message:received""#;
/// Marker of a loadgen timestamp inside a received frame.
const T_MARKER: &[u8] = br#""content":"t="#;

static RECEIVED_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(RECEIVED_MEMBER));
static T_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(T_MARKER));

/// Where to connect, resolved once.
#[derive(Clone, Debug)]
pub struct WsTarget {
    addr: SocketAddr,
    authority: String,
    timeout: Duration,
    read_buffer: usize,
    /// Local addresses to connect from, in turn (IPv4 loopback targets only; empty = let the
    /// kernel choose). Real clients come from many addresses; the node caps one address at
    /// half its descriptors, which a single-address generator would hit before its count.
    sources: Arc<[IpAddr]>,
    next_source: Arc<AtomicUsize>,
    join_members: JoinMembers,
}

impl WsTarget {
    /// Resolves `url` (`http://host:port`) and refuses anything but loopback.
    pub async fn resolve(url: &str, timeout: Duration) -> Result<Self> {
        let parsed = reqwest::Url::parse(url)?;
        if parsed.scheme() != "http" {
            bail!("only http:// URLs are supported");
        }
        let host = parsed.host_str().context("URL has no host")?;
        let port = parsed.port_or_known_default().context("URL has no port")?;
        let authority = format!("{host}:{port}");
        let addr = tokio::net::lookup_host(authority.as_str())
            .await?
            .next()
            .ok_or_else(|| anyhow!("{authority} resolves to no address"))?;
        if !addr.ip().is_loopback() {
            bail!("{authority} resolves to {addr}, which is not a loopback address");
        }
        Ok(Self {
            addr,
            authority,
            timeout,
            read_buffer: 16 * 1024,
            sources: Arc::from(Vec::new()),
            next_source: Arc::new(AtomicUsize::new(0)),
            join_members: JoinMembers::All,
        })
    }

    /// Same target, asking for member lists in `room:join` acks as `which` says.
    pub fn with_join_members(mut self, which: JoinMembers) -> Self {
        self.join_members = which;
        self
    }

    /// Same target, connecting from `count` loopback addresses (127.0.0.1, .2, …) in turn.
    /// Only for an IPv4 loopback target (all of 127.0.0.0/8 is local on Linux).
    pub fn with_source_addrs(mut self, count: usize) -> Self {
        if count > 1 && self.addr.ip().is_loopback() && self.addr.is_ipv4() {
            let count = count.min(250) as u8;
            self.sources = (1..=count)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect();
        }
        self
    }

    async fn tcp_connect(&self) -> std::io::Result<TcpStream> {
        if self.sources.is_empty() {
            return TcpStream::connect(self.addr).await;
        }
        let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.sources[i], 0))?;
        socket.connect(self.addr).await
    }

    /// Same target with another tungstenite read buffer size. Tungstenite zero-fills
    /// the buffer's free capacity before each read, so it stays small.
    pub fn with_read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes.max(1024);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// TCP connect, WebSocket handshake with `?token=`, then waits for `hello`.
    pub async fn connect(&self, token: &str) -> Result<Conn> {
        let work = async {
            let tcp = self
                .tcp_connect()
                .await
                .with_context(|| format!("TCP connect to {}", self.addr))?;
            tcp.set_nodelay(true)?;
            let url = format!("ws://{}/ws?token={token}", self.authority);
            let config = WebSocketConfig::default()
                .read_buffer_size(self.read_buffer)
                .write_buffer_size(0);
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
                    .await
                    .context("WebSocket handshake on /ws")?;
            let mut conn = Conn {
                ws,
                next_id: 1,
                timeout: self.timeout,
            };
            conn.expect_hello().await?;
            Ok(conn)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| anyhow!("connect + hello timed out after {:?}", self.timeout))?
    }

    /// Connects and sends `room:join` for every room, waiting for each ack.
    pub async fn connect_and_join(&self, token: &str, rooms: &[String]) -> Result<Conn> {
        let mut conn = self.connect(token).await?;
        for (i, room) in rooms.iter().enumerate() {
            let members = match self.join_members {
                JoinMembers::First => i == 0,
                JoinMembers::All => true,
                JoinMembers::None => false,
            };
            conn.request("room:join", json!({ "roomId": room, "members": members }))
                .await
                .with_context(|| format!("room:join {room}"))?;
        }
        Ok(conn)
    }
}

/// One established session.
pub struct Conn {
    pub ws: Ws,
    next_id: u64,
    timeout: Duration,
}

impl Conn {
    /// Allocates the next client event id.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Next text frame; pings are answered by tungstenite while reading.
    async fn next_text(&mut self) -> Result<Utf8Bytes> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(frame))) => bail!("server closed the WebSocket: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("WebSocket read"),
                None => bail!("WebSocket ended"),
            }
        }
    }

    async fn expect_hello(&mut self) -> Result<()> {
        let text = self.next_text().await?;
        match classify(text.as_bytes()) {
            Frame::Event(kind) if kind == "hello" => Ok(()),
            _ => bail!(
                "expected a hello frame first, got: {}",
                text.chars().take(200).collect::<String>()
            ),
        }
    }

    /// Sends `{type, id, data}` and waits (bounded) for the matching ack, skipping
    /// any other frame. Returns the ack's `data`, or an error from `error`.
    pub async fn request(&mut self, event: &str, data: Value) -> Result<Value> {
        let id = self.next_id();
        let frame = json!({ "type": event, "id": id, "data": data }).to_string();
        let timeout = self.timeout;
        let work = async {
            self.ws
                .send(Message::text(frame))
                .await
                .context("WebSocket send")?;
            loop {
                let text = self.next_text().await?;
                if let Frame::Ack(ack) = classify(text.as_bytes()) {
                    if ack.id != id {
                        continue;
                    }
                    return match ack.error {
                        None if ack.ok => Ok(ack.data),
                        err => Err(anyhow!(
                            "{event} refused: {}",
                            err.unwrap_or_else(|| "ok:false".into())
                        )),
                    };
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| anyhow!("no ack for {event} within {timeout:?}"))?
    }
}

/// An `ack` frame.
#[derive(Debug)]
pub struct Ack {
    pub id: u64,
    pub ok: bool,
    pub data: Value,
    /// `code: message` when the ack carries an error.
    pub error: Option<String>,
}

/// What a server frame is, as far as the generator cares.
#[derive(Debug)]
pub enum Frame {
    /// `message:received`, with the embedded send timestamp if it is ours.
    Received(Option<u64>),
    Ack(Ack),
    /// Any other event, by type.
    Event(String),
    /// Not a JSON object with a string `type`.
    Invalid,
}

#[derive(Deserialize)]
struct Loose {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Value,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    error: Value,
}

/// Hot-path check, without JSON parsing: is this a `message:received` frame?
#[inline]
pub fn is_received(frame: &[u8]) -> bool {
    frame.starts_with(RECEIVED_PREFIX) || RECEIVED_FINDER.find(frame).is_some()
}

/// Hot-path extraction of the `t=<nanos>` timestamp from a `message:received` frame;
/// falls back to JSON parsing when the marker is not found verbatim.
#[inline]
pub fn received_t(frame: &[u8]) -> Option<u64> {
    match T_FINDER.find(frame) {
        Some(at) => parse_digits(&frame[at + T_MARKER.len()..]),
        None => match classify_slow(frame) {
            Frame::Received(t) => t,
            _ => None,
        },
    }
}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in bytes.iter().take(20) {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// Classifies any server frame (fast path for `message:received`).
pub fn classify(frame: &[u8]) -> Frame {
    if is_received(frame) {
        return Frame::Received(received_t(frame));
    }
    classify_slow(frame)
}

fn classify_slow(frame: &[u8]) -> Frame {
    let Ok(loose) = serde_json::from_slice::<Loose>(frame) else {
        return Frame::Invalid;
    };
    match loose.kind.as_str() {
        "message:received" => {
            let t = loose
                .data
                .get("content")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix("t="))
                .and_then(|rest| parse_digits(rest.as_bytes()));
            Frame::Received(t)
        }
        "ack" => {
            let id = match &loose.id {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            let error = (!loose.error.is_null()).then(|| {
                let code = loose.error.get("code").and_then(Value::as_str);
                let message = loose.error.get("message").and_then(Value::as_str);
                format!("{}: {}", code.unwrap_or("?"), message.unwrap_or(""))
            });
            Frame::Ack(Ack {
                id: id.unwrap_or(u64::MAX),
                ok: loose.ok.unwrap_or(false),
                data: loose.data,
                error,
            })
        }
        _ => Frame::Event(loose.kind),
    }
}

/// Builds a `message:send` frame; `room_json` is the room id already JSON-quoted.
pub fn send_frame(id: u64, room_json: &str, t_ns: u64, pad_to: usize) -> String {
    let mut content = format!("t={t_ns}");
    if content.len() < pad_to {
        content.push(' ');
        while content.len() < pad_to {
            content.push('x');
        }
    }
    format!(
        r#"{{"type":"message:send","id":{id},"data":{{"roomId":{room_json},"content":"{content}"}}}}"#
    )
}

/// A one-shot broadcast flag (start / stop) that tasks can poll or await.
#[derive(Default)]
pub struct Signal {
    flag: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Completes once [`Signal::set`] has been called.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.flag.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_reads_timestamp() {
        let f = br#"{"type":"message:received","data":{"id":"1","roomId":"2","userId":"3","username":"u","content":"t=123456 xx","type":"text","nonce":null,"createdAt":"x"}}"#;
        assert!(is_received(f));
        assert_eq!(received_t(f), Some(123_456));
    }

    #[test]
    fn slow_path_handles_other_orders() {
        let f = br#"{"data":{"content":"t=42"},"type":"message:received"}"#;
        assert!(is_received(f));
        assert!(matches!(classify(f), Frame::Received(Some(42))));
        let f = br#"{"data":{"content":"x \"type\":\"message:received\""},"type":"presence"}"#;
        assert!(!is_received(f));
        assert!(matches!(classify(f), Frame::Event(k) if k == "presence"));
        let a = br#"{"type":"ack","ok":false,"id":7,"error":{"code":"FORBIDDEN","message":"no"}}"#;
        match classify(a) {
            Frame::Ack(ack) => {
                assert_eq!(ack.id, 7);
                assert!(!ack.ok);
                assert_eq!(ack.error.as_deref(), Some("FORBIDDEN: no"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            matches!(classify(br#"{"type":"hello","data":{}}"#), Frame::Event(k) if k == "hello")
        );
        assert!(matches!(classify(b"nope"), Frame::Invalid));
    }

    #[test]
    fn send_frame_is_json_and_padded() {
        let s = send_frame(5, "\"9\"", 77, 16);
        let v: Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["id"], 5);
        assert_eq!(v["data"]["roomId"], "9");
        let content = v["data"]["content"].as_str().expect("content");
        assert!(content.starts_with("t=77 "));
        assert_eq!(content.len(), 16);
    }
}
