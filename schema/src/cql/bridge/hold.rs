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
#[derive(Debug, Clone, Default)]
pub struct Hold {
    ms: Arc<AtomicU64>,
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
}

/// Which statements of one connection are writes.
#[derive(Default)]
struct Statements {
    /// Stream id of a `PREPARE` in flight → whether its text is a write.
    preparing: HashMap<[u8; 2], bool>,
    /// Prepared ids that are writes.
    writes: std::collections::HashSet<Vec<u8>>,
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

impl Statements {
    /// Whether a request is a write; remembers `PREPARE`s.
    fn request(&mut self, frame: &Frame) -> bool {
        if frame.flags() & FLAG_COMPRESSION != 0 {
            return false;
        }
        let stream = [frame.header[2], frame.header[3]];
        match frame.opcode() {
            OP_BATCH => true,
            OP_QUERY => long_string(&frame.body).is_some_and(is_write_text),
            OP_PREPARE => {
                let write = long_string(&frame.body).is_some_and(is_write_text);
                self.preparing.insert(stream, write);
                false
            }
            OP_EXECUTE => short_bytes(&frame.body).is_some_and(|id| self.writes.contains(id)),
            _ => false,
        }
    }

    /// Learns prepared ids from `RESULT`/`Prepared` answers.
    fn response(&mut self, frame: &Frame) {
        if frame.opcode() != OP_RESULT || frame.flags() & FLAG_COMPRESSION != 0 {
            return;
        }
        let stream = [frame.header[2], frame.header[3]];
        let Some(write) = self.preparing.remove(&stream) else {
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
            && write
            && let Some(id) = body.get(4..).and_then(short_bytes)
        {
            self.writes.insert(id.to_vec());
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
        let write = statements.lock().request(&frame);
        let frame = if rewrite {
            rewrite_request(frame)?
        } else {
            frame
        };
        let delay = hold.get();
        if write && !delay.is_zero() {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(frame.to_bytes());
            });
        } else if tx.send(frame.to_bytes()).is_err() {
            break;
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
}
