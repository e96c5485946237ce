//! Holding write frames (test fault injection): a [`Hold`] makes a bridge deliver one
//! client's write requests to the server late, so a write reaches the database after the
//! writer's peers moved on (after a room was taken over, say), while its reads and every
//! response pass at once.
//!
//! A write is a `BATCH`, a `QUERY` whose text starts with `INSERT`, `UPDATE` or `DELETE`, or
//! an `EXECUTE` of a statement prepared on the same connection with such a text (the bridge
//! remembers which prepared ids are writes from the `PREPARE` requests and their answers).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{
    CONNECT_TIMEOUT, FLAG_COMPRESSION, FLAG_TRACING, Frame, OP_RESULT, RESULT_PREPARED, read_frame,
    rewrite_request, rewrite_response,
};

/// `QUERY` opcode.
const OP_QUERY: u8 = 0x07;
/// `PREPARE` opcode.
const OP_PREPARE: u8 = 0x09;
/// `EXECUTE` opcode.
const OP_EXECUTE: u8 = 0x0A;
/// `BATCH` opcode.
const OP_BATCH: u8 = 0x0D;

/// How long write frames are held (shared by every connection of a bridge; zero: not held).
/// A test can also see which writes are held right now and let them all go at once, so it
/// waits on "a log append is held" instead of guessing that one is in flight.
#[derive(Debug, Clone)]
pub struct Hold {
    ms: Arc<AtomicU64>,
    /// Held write → its statement text (a batch: its first statement's), lowercase.
    held: Arc<Mutex<HashMap<u64, String>>>,
    next: Arc<AtomicU64>,
    /// Bumped by [`Hold::release`]: every held frame goes now.
    release: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            ms: Arc::default(),
            held: Arc::default(),
            next: Arc::default(),
            release: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl Hold {
    /// Holds every write frame arriving from now on for `delay` (zero stops holding; frames
    /// already held keep their delay).
    pub fn set(&self, delay: Duration) {
        self.ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The current delay.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }

    /// Write frames held now whose statement text contains `needle` (case-insensitive).
    pub fn held_writes(&self, needle: &str) -> usize {
        let needle = needle.to_lowercase();
        self.held
            .lock()
            .values()
            .filter(|t| t.contains(&needle))
            .count()
    }

    /// Stops holding and sends every held frame now (writes of one room are one at a time, so
    /// their order across frames does not matter).
    pub fn release(&self) {
        self.set(Duration::ZERO);
        self.release.send_modify(|g| *g += 1);
    }

    /// Holds `frame` for the current delay (or until [`Hold::release`]), then sends it.
    fn hold(&self, text: String, frame: Vec<u8>, tx: mpsc::UnboundedSender<Vec<u8>>) {
        let delay = self.get();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.held.lock().insert(id, text);
        let mut released = self.release.subscribe();
        let held = self.held.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = released.changed() => {}
            }
            let _ = tx.send(frame);
            held.lock().remove(&id);
        });
    }
}

/// Which statements of one connection are writes.
#[derive(Default)]
struct Statements {
    /// Stream id of a `PREPARE` in flight → its text, if it is a write.
    preparing: HashMap<[u8; 2], Option<String>>,
    /// Prepared ids that are writes → their text.
    writes: HashMap<Vec<u8>, String>,
}

/// Whether CQL text is a write.
fn is_write_text(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let word = text.split_whitespace().next().unwrap_or("");
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// The `[long string]` at the start of a body (a `QUERY` or `PREPARE`).
fn long_string(body: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    body.get(4..4 + usize::try_from(len).ok()?)
}

/// The `[short bytes]` at the start of `body`.
fn short_bytes(body: &[u8]) -> Option<&[u8]> {
    let len = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    body.get(2..2 + usize::from(len))
}

/// Lowercase text of CQL that is a write.
fn write_text(text: &[u8]) -> Option<String> {
    is_write_text(text).then(|| String::from_utf8_lossy(text).to_lowercase())
}

impl Statements {
    /// Whether a request is a write; remembers `PREPARE`s.
    #[cfg(test)]
    fn request(&mut self, frame: &Frame) -> bool {
        self.write_of(frame).is_some()
    }

    /// The statement text of a write request (a batch: its first statement's, or "batch" if
    /// that is not known), `None` for anything else; remembers `PREPARE`s.
    fn write_of(&mut self, frame: &Frame) -> Option<String> {
        if frame.flags() & FLAG_COMPRESSION != 0 {
            return None;
        }
        let stream = [frame.header[2], frame.header[3]];
        match frame.opcode() {
            OP_BATCH => {
                // <type: byte><n: short><kind: byte><query string | prepared id>...
                let first = frame.body.get(3..).and_then(|b| match b.first() {
                    Some(0) => {
                        long_string(&b[1..]).map(|t| String::from_utf8_lossy(t).to_lowercase())
                    }
                    Some(1) => short_bytes(&b[1..]).and_then(|id| self.writes.get(id).cloned()),
                    _ => None,
                });
                Some(first.unwrap_or_else(|| "batch".into()))
            }
            OP_QUERY => long_string(&frame.body).and_then(write_text),
            OP_PREPARE => {
                let write = long_string(&frame.body).and_then(write_text);
                self.preparing.insert(stream, write);
                None
            }
            OP_EXECUTE => short_bytes(&frame.body).and_then(|id| self.writes.get(id).cloned()),
            _ => None,
        }
    }

    /// Learns prepared ids from `RESULT`/`Prepared` answers.
    fn response(&mut self, frame: &Frame) {
        if frame.opcode() != OP_RESULT || frame.flags() & FLAG_COMPRESSION != 0 {
            return;
        }
        let stream = [frame.header[2], frame.header[3]];
        let Some(write) = self.preparing.remove(&stream).flatten() else {
            return;
        };
        let skip = if frame.flags() & FLAG_TRACING != 0 {
            16
        } else {
            0
        };
        let Some(body) = frame.body.get(skip..) else {
            return;
        };
        let kind = body
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes);
        if kind == Some(RESULT_PREPARED)
            && let Some(id) = body.get(4..).and_then(short_bytes)
        {
            self.writes.insert(id.to_vec(), write);
        }
    }
}

/// Forwards frames from the writer channel to the socket, in the order they are sent.
async fn deliver<W: AsyncWrite + Unpin>(mut to: W, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Client → server: write frames are held for the current [`Hold`] delay.
async fn requests<R: AsyncRead + Unpin>(
    mut from: R,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    rewrite: bool,
    statements: Arc<Mutex<Statements>>,
    hold: Hold,
) -> io::Result<()> {
    while let Some(frame) = read_frame(&mut from).await? {
        let write = statements.lock().write_of(&frame);
        let frame = if rewrite {
            rewrite_request(frame)?
        } else {
            frame
        };
        match write {
            Some(text) if !hold.get().is_zero() => hold.hold(text, frame.to_bytes(), tx.clone()),
            _ => {
                if tx.send(frame.to_bytes()).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Server → client, unchanged in time.
async fn responses<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    rewrite: bool,
    statements: Arc<Mutex<Statements>>,
) -> io::Result<()> {
    while let Some(frame) = read_frame(&mut from).await? {
        statements.lock().response(&frame);
        let frame = if rewrite {
            rewrite_response(frame)?
        } else {
            frame
        };
        to.write_all(&frame.to_bytes()).await?;
    }
    to.shutdown().await
}

/// Serves one client connection like [`super::serve_connection`] (with `rewrite`; without,
/// frames pass unchanged, for a hold in front of another bridge or a v4 server), holding its
/// write frames as `hold` says.
pub async fn serve_holding(
    client: TcpStream,
    upstream: SocketAddr,
    rewrite: bool,
    hold: Hold,
) -> io::Result<()> {
    let server = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect {upstream}")))??;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let statements = Arc::new(Mutex::new(Statements::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(deliver(server_write, rx));
    let result = tokio::select! {
        r = requests(client_read, tx, rewrite, statements.clone(), hold) => r,
        r = responses(server_read, client_write, rewrite, statements) => r,
    };
    writer.abort();
    result
}

/// Accepts connections on `listener` forever, serving each with [`serve_holding`].
pub async fn run_holding(
    listener: TcpListener,
    upstream: SocketAddr,
    rewrite: bool,
    hold: Hold,
) -> io::Result<()> {
    loop {
        let (client, peer) = listener.accept().await?;
        let hold = hold.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_holding(client, upstream, rewrite, hold).await {
                tracing::debug!(%peer, error = %e, "bridge connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, stream: i16, body: Vec<u8>) -> Frame {
        Frame::new(0x04, 0, stream, opcode, body)
    }

    fn long(text: &str) -> Vec<u8> {
        let mut out = (text.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out
    }

    #[test]
    fn writes_are_recognised_by_text_batch_and_prepared_id() {
        let mut st = Statements::default();
        assert!(st.request(&frame(OP_BATCH, 1, vec![0])));
        assert!(st.request(&frame(OP_QUERY, 1, long(" insert into t (a) values (1)"))));
        assert!(!st.request(&frame(OP_QUERY, 1, long("SELECT a FROM t"))));
        assert!(!st.request(&frame(
            OP_PREPARE,
            7,
            long("UPDATE t SET a = ? WHERE k = ?")
        )));
        assert!(!st.request(&frame(OP_PREPARE, 8, long("SELECT a FROM t WHERE k = ?"))));
        let prepared = |id: u8| {
            let mut body = RESULT_PREPARED.to_be_bytes().to_vec();
            body.extend_from_slice(&[0, 1, id, 0, 0]);
            body
        };
        st.response(&Frame::new(0x84, 0, 7, OP_RESULT, prepared(0xaa)));
        st.response(&Frame::new(0x84, 0, 8, OP_RESULT, prepared(0xbb)));
        assert!(st.request(&frame(OP_EXECUTE, 2, vec![0, 1, 0xaa, 0, 0])));
        assert!(!st.request(&frame(OP_EXECUTE, 2, vec![0, 1, 0xbb, 0, 0])));
        // Garbage never panics and is not a write.
        assert!(!st.request(&frame(OP_EXECUTE, 2, vec![0xff])));
        assert!(!st.request(&frame(OP_QUERY, 2, vec![0, 0, 0, 9, b'I'])));
    }

    #[test]
    fn a_batch_is_known_by_its_first_statement() {
        let mut st = Statements::default();
        assert!(!st.request(&frame(
            OP_PREPARE,
            3,
            long("INSERT INTO room_events (room) VALUES (?)")
        )));
        let mut body = RESULT_PREPARED.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 1, 0xcc, 0, 0]);
        st.response(&Frame::new(0x84, 0, 3, OP_RESULT, body));
        // Unlogged batch of one prepared statement.
        let batch = frame(OP_BATCH, 4, vec![1, 0, 1, 1, 0, 1, 0xcc, 0, 0]);
        assert_eq!(
            st.write_of(&batch).as_deref(),
            Some("insert into room_events (room) values (?)")
        );
        let unknown = frame(OP_BATCH, 4, vec![1, 0, 1, 1, 0, 1, 0xdd, 0, 0]);
        assert_eq!(st.write_of(&unknown).as_deref(), Some("batch"));
    }

    #[tokio::test]
    async fn held_writes_are_counted_and_released_at_once() {
        let hold = Hold::default();
        hold.set(Duration::from_secs(600));
        let (tx, mut rx) = mpsc::unbounded_channel();
        hold.hold("insert into room_events".into(), vec![1], tx.clone());
        hold.hold("update room_owner".into(), vec![2], tx);
        assert_eq!(hold.held_writes("ROOM_EVENTS"), 1);
        assert_eq!(hold.held_writes("room_"), 2);
        hold.release();
        let mut got = vec![rx.recv().await, rx.recv().await];
        got.sort();
        assert_eq!(got, vec![Some(vec![1]), Some(vec![2])]);
        // Removed right after sending.
        while hold.held_writes("") > 0 {
            tokio::task::yield_now().await;
        }
        assert!(hold.get().is_zero());
    }
}
