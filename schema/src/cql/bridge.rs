//! A CQL native-protocol v4 ↔ v3 frame bridge (test support).
//!
//! The `scylla` driver speaks protocol v4 only; the Apache Cassandra 2.1 used by the test
//! suite and the benchmarks on machines where ScyllaDB cannot be installed speaks v3 only. The
//! two versions share the frame layout (9-byte header with a 2-byte stream id) and almost every
//! body; this TCP proxy rewrites the three places where they differ:
//!
//! - the version byte of every frame: requests `0x04` → `0x03`, responses `0x83` → `0x84`;
//! - `STARTUP`: the `CQL_VERSION` option becomes `3.0.0` (2.1 refuses the driver's `4.0.0`);
//! - `RESULT`/`Prepared`: v4 metadata carries the partition-key indexes after the column count;
//!   the bridge inserts a count of 0 (the driver then routes without token awareness).
//!
//! Everything else is copied through unchanged, one whole frame at a time. Frames arriving
//! from the network are never trusted: lengths are bounded by [`MAX_BODY`], every read inside a
//! body is bounds-checked, and a malformed frame closes that connection (only) with an
//! `InvalidData` error. Production talks to ScyllaDB with protocol v4 directly; the bridge is
//! only for the 2.1 test server.
//!
//! [`hold`] adds fault injection for tests: a bridge that delivers one client's write frames
//! late (`cql-bridge --hold-file`, or in process with [`hold::run_holding`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest frame body accepted (the protocol's own limit is 256 MiB).
pub const MAX_BODY: usize = 256 * 1024 * 1024;
/// Length of a v3/v4 frame header.
pub const HEADER_LEN: usize = 9;

/// `STARTUP` opcode.
const OP_STARTUP: u8 = 0x01;
/// `RESULT` opcode.
const OP_RESULT: u8 = 0x08;
/// `RESULT` kind `Prepared`.
const RESULT_PREPARED: i32 = 0x0004;
/// Frame flag: the body is compressed (never negotiated through the bridge).
const FLAG_COMPRESSION: u8 = 0x01;
/// Frame flag: a response body starts with a 16-byte tracing id.
const FLAG_TRACING: u8 = 0x02;
/// How long a new client connection waits for the upstream server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One frame: the raw header and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// version, flags, stream (2), opcode, length (4); `length` is kept equal to `body.len()`.
    pub header: [u8; HEADER_LEN],
    /// The body.
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame with the given header fields (the length is filled in from `body`).
    pub fn new(version: u8, flags: u8, stream: i16, opcode: u8, body: Vec<u8>) -> Frame {
        let mut header = [0u8; HEADER_LEN];
        header[0] = version;
        header[1] = flags;
        header[2..4].copy_from_slice(&stream.to_be_bytes());
        header[4] = opcode;
        let mut frame = Frame { header, body };
        frame.sync_length();
        frame
    }

    /// The protocol version byte (direction bit included).
    pub fn version(&self) -> u8 {
        self.header[0]
    }

    /// The frame flags.
    pub fn flags(&self) -> u8 {
        self.header[1]
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.header[4]
    }

    /// Writes `body.len()` into the header.
    fn sync_length(&mut self) {
        // Bodies are bounded by MAX_BODY (< u32::MAX) when read; a larger one cannot occur.
        let len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        self.header[5..9].copy_from_slice(&len.to_be_bytes());
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.body);
        out
    }
}

/// An `InvalidData` error for a malformed frame.
fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed CQL frame: {what}"),
    )
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    let len = usize::try_from(len).map_err(|_| malformed("length"))?;
    if len > MAX_BODY {
        return Err(malformed(&format!(
            "body of {len} bytes exceeds {MAX_BODY}"
        )));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(Some(Frame { header, body }))
}

/// Rewrites a client (v4) request for a v3 server.
pub fn rewrite_request(mut frame: Frame) -> io::Result<Frame> {
    if frame.version() == 0x04 {
        frame.header[0] = 0x03;
    }
    if frame.opcode() == OP_STARTUP {
        if frame.flags() & FLAG_COMPRESSION != 0 {
            return Err(malformed("compressed STARTUP"));
        }
        frame.body = rewrite_startup(&frame.body)?;
        frame.sync_length();
    }
    Ok(frame)
}

/// Rewrites a server (v3) response for a v4 client.
pub fn rewrite_response(mut frame: Frame) -> io::Result<Frame> {
    if frame.version() == 0x83 {
        frame.header[0] = 0x84;
    }
    if frame.opcode() == OP_RESULT && frame.flags() & FLAG_COMPRESSION == 0 {
        let skip = if frame.flags() & FLAG_TRACING != 0 {
            16
        } else {
            0
        };
        if let Some(body) = rewrite_prepared(&frame.body, skip)? {
            frame.body = body;
            frame.sync_length();
        }
    }
    Ok(frame)
}

/// A bounds-checked reader over a body.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> io::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| malformed(what))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| malformed(what))?;
        self.pos = end;
        Ok(slice)
    }

    fn short(&mut self, what: &str) -> io::Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn int(&mut self, what: &str) -> io::Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> io::Result<&'a str> {
        let len = usize::from(self.short(what)?);
        std::str::from_utf8(self.take(len, what)?).map_err(|_| malformed(what))
    }
}

/// Appends a protocol `[string]`.
fn put_string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    let len = u16::try_from(s.len()).map_err(|_| malformed("string too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// `STARTUP` body (a `[string map]`) with `CQL_VERSION` set to `3.0.0`.
fn rewrite_startup(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut cur = Cursor {
        bytes: body,
        pos: 0,
    };
    let n = cur.short("startup map size")?;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        let key = cur.string("startup key")?;
        let value = cur.string("startup value")?;
        put_string(&mut out, key)?;
        put_string(&mut out, if key == "CQL_VERSION" { "3.0.0" } else { value })?;
    }
    if cur.pos != body.len() {
        return Err(malformed("trailing bytes after STARTUP options"));
    }
    Ok(out)
}

/// For a `RESULT` body of kind `Prepared`, the body with a partition-key count of 0 inserted
/// after the column count of the bound-variables metadata; `None` for other result kinds.
/// `skip` bytes (a tracing id) precede the result.
fn rewrite_prepared(body: &[u8], skip: usize) -> io::Result<Option<Vec<u8>>> {
    let mut cur = Cursor {
        bytes: body,
        pos: 0,
    };
    cur.take(skip, "tracing id")?;
    if cur.int("result kind")? != RESULT_PREPARED {
        return Ok(None);
    }
    let id_len = usize::from(cur.short("prepared id")?);
    cur.take(id_len, "prepared id")?;
    cur.int("metadata flags")?;
    let columns = cur.int("column count")?;
    if columns < 0 {
        return Err(malformed("negative column count"));
    }
    let at = cur.pos;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&body[at..]);
    Ok(Some(out))
}

/// Copies frames from `from` to `to`, rewriting each with `rewrite`, until either side ends.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    rewrite: fn(Frame) -> io::Result<Frame>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = read_frame(&mut from).await? {
        let frame = rewrite(frame)?;
        to.write_all(&frame.to_bytes()).await?;
    }
    to.shutdown().await
}

/// Serves one client connection: connects upstream, then pumps both ways until one side
/// closes or sends a malformed frame, and closes both.
pub async fn serve_connection(client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let server = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect {upstream}")))??;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let requests = pump(client_read, server_write, rewrite_request);
    let responses = pump(server_read, client_write, rewrite_response);
    // Whichever direction finishes first ends the connection; dropping the other half closes
    // its sockets.
    tokio::select! {
        r = requests => r,
        r = responses => r,
    }
}

/// Accepts connections on `listener` forever, bridging each to `upstream`.
pub async fn run(listener: TcpListener, upstream: SocketAddr) -> io::Result<()> {
    loop {
        let (client, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve_connection(client, upstream).await {
                tracing::debug!(%peer, error = %e, "bridge connection ended");
            }
        });
    }
}

pub mod hold;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
