//! Who may open a connection, and how long a connection may sit without sending a request.
//!
//! - [`Gate`] counts open connections: in total (against the process's descriptor limit minus
//!   a reserve, so storage never fails for lack of descriptors), per client IP, and those not
//!   yet authenticated. [`Gate::admit`] refuses a connection over any cap before any byte of
//!   it is read.
//! - [`Conn`] is one admitted connection's shared state: its phase (reading a request head,
//!   serving a request, idle between requests, upgraded to a WebSocket) and whether a request
//!   on it has authenticated. Dropping the [`Ticket`] gives its places back.
//! - [`GuardedStream`] wraps the TCP stream (beneath TLS) and enforces the header-read and
//!   keep-alive idle deadlines of the phase: when one passes, its next read fails and hyper
//!   closes the connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::HttpConfig;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `[http] max_connections_per_ip` connections from this address are open.
    #[error("too many connections from this address")]
    PerIp,
    /// `[http] max_unauthenticated_connections` connections have not authenticated yet.
    #[error("too many unauthenticated connections")]
    Unauthenticated,
    /// Open connections reached the descriptor limit minus `[http] fd_reserve`.
    #[error("too many open connections")]
    Descriptors,
}

impl Refusal {
    /// The label of `voiceflow_http_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Descriptors => "descriptors",
        }
    }
}

/// The connection counts and their caps.
pub struct Gate {
    max_total: usize,
    max_per_ip: usize,
    max_unauthenticated: usize,
    /// Peers exempt from the per-IP cap: reverse proxies carry many clients' connections.
    exempt: Vec<IpAddr>,
    total: AtomicUsize,
    unauthenticated: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pub(super) timing: Timing,
}

/// The deadlines [`GuardedStream`] enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub header_read: Duration,
    pub keep_alive_idle: Duration,
}

impl Gate {
    /// Caps from `[http]`; `max_total` from the descriptor limit.
    pub fn new(http: &HttpConfig, trusted_proxies: &[IpAddr], max_total: usize) -> Gate {
        Gate {
            max_total,
            // One address never holds more than half of what the descriptors allow, so a
            // single client cannot lock everyone else out under a small limit.
            max_per_ip: http.max_connections_per_ip.min((max_total / 2).max(1)),
            max_unauthenticated: http.max_unauthenticated_connections,
            exempt: trusted_proxies.to_vec(),
            total: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            timing: Timing {
                header_read: http.header_read_timeout(),
                keep_alive_idle: http.keep_alive_idle(),
            },
        }
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Takes the places of a new connection from `peer`, or says which cap is full.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr, tls: bool) -> Result<Ticket, Refusal> {
        let ip = canonical(peer.ip());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refusal::Descriptors);
        }
        if self.unauthenticated.load(Ordering::Relaxed) >= self.max_unauthenticated {
            return Err(Refusal::Unauthenticated);
        }
        let counted_ip = if self.exempt.contains(&ip) {
            None
        } else {
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            Some(ip)
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("voiceflow_http_connections").increment(1.0);
        Ok(Ticket(Arc::new(Conn {
            gate: self.clone(),
            counted_ip,
            peer,
            tls,
            authenticated: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Head as u8),
            epoch: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            reader: AtomicWaker::new(),
        })))
    }

    fn release(&self, conn: &Conn) {
        if let Some(ip) = conn.counted_ip {
            let mut per_ip = self.per_ip.lock();
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        if !conn.authenticated.load(Ordering::Relaxed) {
            self.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("voiceflow_http_connections").decrement(1.0);
    }
}

/// IPv4-mapped IPv6 peers (dual-stack listeners) count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Where a connection is in its life; decides which deadline applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Reading a request head (or the TLS handshake before the first one).
    Head = 0,
    /// A request is being served: no deadline here (bodies have their own timeouts).
    Busy = 1,
    /// Between requests of a keep-alive connection.
    Idle = 2,
    /// Switched to a WebSocket, which has its own ping and idle timeout.
    Upgraded = 3,
}

/// One admitted connection, shared by its stream and its request handler.
pub struct Conn {
    gate: Arc<Gate>,
    counted_ip: Option<IpAddr>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Whether the connection speaks TLS.
    pub tls: bool,
    authenticated: AtomicBool,
    phase: AtomicU8,
    /// Bumped on every phase change, so the stream notices one it did not make.
    epoch: AtomicU64,
    in_flight: AtomicUsize,
    /// The reader waiting on the stream: a phase change made by the handler must wake it so
    /// it arms the new deadline (nothing else would: the socket stays silent).
    reader: AtomicWaker,
}

impl Conn {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Head,
            1 => Phase::Busy,
            2 => Phase::Idle,
            _ => Phase::Upgraded,
        }
    }

    fn set_phase(&self, phase: Phase) {
        // Upgraded is final.
        if self.phase() != Phase::Upgraded {
            self.phase.store(phase as u8, Ordering::Release);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.reader.wake();
        }
    }

    /// A request head has been read: its handling has no header deadline.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set_phase(Phase::Busy);
    }

    /// A response has been sent in full (its body dropped).
    pub fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set_phase(Phase::Idle);
        }
    }

    /// The connection switched protocols (WebSocket): no HTTP deadlines from now on.
    pub fn upgraded(&self) {
        self.set_phase(Phase::Upgraded);
    }

    /// A request on this connection carried a valid credential: it no longer counts against
    /// `max_unauthenticated_connections`.
    pub fn authenticated(&self) {
        if !self.authenticated.swap(true, Ordering::AcqRel) {
            self.gate.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Holds a connection's places in the [`Gate`] until dropped (with the socket).
pub struct Ticket(Arc<Conn>);

impl Ticket {
    /// The connection's shared state.
    pub fn conn(&self) -> Arc<Conn> {
        self.0.clone()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.gate.release(&self.0);
    }
}

/// A connection's byte stream with the deadlines of its phase (see the module docs).
pub struct GuardedStream<S> {
    inner: S,
    ticket: Ticket,
    timer: Pin<Box<Sleep>>,
    armed: bool,
    seen_epoch: u64,
}

impl<S> GuardedStream<S> {
    /// Wraps a newly admitted connection; its first request head is due within the header
    /// read timeout.
    pub fn new(inner: S, ticket: Ticket) -> Self {
        let deadline = Instant::now() + ticket.0.gate.timing.header_read;
        GuardedStream {
            inner,
            ticket,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            armed: true,
            seen_epoch: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn arm(&mut self, after: Duration) {
        self.timer.as_mut().reset(Instant::now() + after);
        self.armed = true;
    }

    /// Follows a phase change made by the request handler.
    fn follow_phase(&mut self) -> Phase {
        let conn = &self.ticket.0;
        let epoch = conn.epoch.load(Ordering::Acquire);
        let phase = conn.phase();
        if epoch != self.seen_epoch {
            self.seen_epoch = epoch;
            match phase {
                Phase::Idle => self.arm(conn.gate.timing.keep_alive_idle),
                Phase::Busy | Phase::Upgraded => self.armed = false,
                Phase::Head => {}
            }
        }
        phase
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Registered before reading the phase, so a change made after this is not missed.
        this.ticket.0.reader.register(cx.waker());
        let phase = this.follow_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if phase == Phase::Idle && buf.filled().len() > before {
                    // The next request has begun: its head is due within the header timeout.
                    let conn = this.ticket.0.clone();
                    conn.set_phase(Phase::Head);
                    this.seen_epoch = conn.epoch.load(Ordering::Acquire);
                    let header_read = conn.gate.timing.header_read;
                    this.arm(header_read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.armed && this.timer.as_mut().poll(cx).is_ready() {
                    this.armed = false;
                    let what = if phase == Phase::Idle {
                        "keep_alive_idle"
                    } else {
                        "header_read"
                    };
                    metrics::counter!("voiceflow_http_connections_timed_out_total", "timeout" => what)
                        .increment(1);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{what} timeout"),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises the soft descriptor limit to the hard one (when allowed) and returns how many
/// connections fit under it with `reserve` descriptors kept free for everything else.
pub fn connection_budget(reserve: u64) -> usize {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return usize::MAX;
        };
        let mut limit = soft;
        if hard > soft {
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => limit = hard,
                Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise RLIMIT_NOFILE"),
            }
        }
        // A small limit keeps at least half of it for storage and the rest of the process.
        let reserve = reserve.min(limit / 2);
        let budget = limit.saturating_sub(reserve);
        tracing::info!(
            descriptors = limit,
            connections = budget,
            "open descriptor limit"
        );
        usize::try_from(budget).unwrap_or(usize::MAX).max(1)
    }
    #[cfg(not(unix))]
    {
        let _ = reserve;
        usize::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_ip: usize, unauthenticated: usize, total: usize) -> Arc<Gate> {
        let http = HttpConfig {
            max_connections_per_ip: per_ip,
            max_unauthenticated_connections: unauthenticated,
            ..HttpConfig::default()
        };
        Arc::new(Gate::new(&http, &["10.0.0.9".parse().expect("ip")], total))
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 1000)
    }

    #[test]
    fn caps_count_per_ip_unauthenticated_and_total() {
        let g = gate(2, 3, 4);
        assert_eq!(
            gate(100, 100, 10).max_per_ip,
            5,
            "at most half the budget per address"
        );
        let a = g.admit(peer("10.0.0.1"), false).expect("first");
        let _b = g.admit(peer("10.0.0.1"), false).expect("second");
        assert_eq!(g.admit(peer("10.0.0.1"), false).err(), Some(Refusal::PerIp));
        let c = g.admit(peer("10.0.0.2"), false).expect("other address");
        assert_eq!(
            g.admit(peer("10.0.0.3"), false).err(),
            Some(Refusal::Unauthenticated)
        );
        c.conn().authenticated();
        c.conn().authenticated();
        let _d = g
            .admit(peer("10.0.0.3"), false)
            .expect("an authenticated one left room");
        assert_eq!(
            g.admit(peer("10.0.0.4"), false).err(),
            Some(Refusal::Descriptors)
        );
        drop(a);
        assert_eq!(g.open(), 3);
        let _e = g.admit(peer("10.0.0.1"), false).expect("a place came back");
    }

    #[test]
    fn trusted_proxies_are_exempt_from_the_per_ip_cap() {
        let g = gate(1, 10, 10);
        let _a = g.admit(peer("10.0.0.9"), false).expect("proxy");
        let _b = g.admit(peer("10.0.0.9"), false).expect("proxy again");
        let _c = g
            .admit(peer("::ffff:10.0.0.9"), false)
            .expect("the mapped form too");
    }
}
