//! More than one media thread (`[voice] media_threads` > 1): channels are sharded across the
//! loops (a channel's participants all live on one loop, so forwarding never crosses threads),
//! the one socket is shared. One receiving thread reads the socket in batches and hands each
//! datagram to the loop owning its participant, found in a [`Router`] the loops keep up to
//! date (server ufrag and learnt source addresses → loop): one channel message per loop per
//! batch, not per datagram. Each loop sends on the socket itself.
//! With one thread none of this runs: the loop reads the socket itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::RwLock;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::demux::{self, Kind};
use crate::{DropReason, PlaneStats};

/// Which loop a datagram belongs to.
#[derive(Default)]
pub(super) struct Router {
    routes: RwLock<Routes>,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, usize>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl Router {
    pub(super) fn add_ufrag(&self, ufrag: &str, shard: usize) {
        self.routes.write().by_ufrag.insert(ufrag.to_owned(), shard);
    }

    pub(super) fn has_ufrag(&self, ufrag: &str) -> bool {
        self.routes.read().by_ufrag.contains_key(ufrag)
    }

    pub(super) fn remove_ufrag(&self, ufrag: &str) {
        self.routes.write().by_ufrag.remove(ufrag);
    }

    pub(super) fn add_addr(&self, addr: SocketAddr, shard: usize) {
        self.routes.write().by_addr.insert(addr, shard);
    }

    /// Forgets `addr` if `shard` still owns it (it may have moved to another loop's
    /// participant since).
    pub(super) fn remove_addr(&self, addr: SocketAddr, shard: usize) {
        let mut routes = self.routes.write();
        if routes.by_addr.get(&addr) == Some(&shard) {
            routes.by_addr.remove(&addr);
        }
    }

    /// The loop a datagram of `kind` from `from` goes to, or why it goes nowhere.
    fn route(&self, kind: Kind, data: &[u8], from: SocketAddr) -> Result<usize, DropReason> {
        let routes = self.routes.read();
        match kind {
            Kind::Garbage => Err(DropReason::Garbage),
            Kind::Stun => demux::local_ufrag(data)
                .and_then(|u| routes.by_ufrag.get(u))
                .or_else(|| routes.by_addr.get(&from))
                .copied()
                .ok_or(DropReason::UnknownUfrag),
            Kind::Dtls | Kind::Rtp => routes
                .by_addr
                .get(&from)
                .copied()
                .ok_or(DropReason::UnknownSource),
        }
    }
}

/// A loop's source addresses → participants, mirrored (address → this loop) in the
/// [`Router`] when there are several loops.
pub(super) struct Addrs {
    map: HashMap<SocketAddr, u64>,
    shared: Option<(Arc<Router>, usize)>,
}

impl Addrs {
    pub(super) fn new(shared: Option<(Arc<Router>, usize)>) -> Addrs {
        Addrs {
            map: HashMap::new(),
            shared,
        }
    }

    pub(super) fn get(&self, addr: &SocketAddr) -> Option<&u64> {
        self.map.get(addr)
    }

    pub(super) fn insert(&mut self, addr: SocketAddr, key: u64) {
        self.map.insert(addr, key);
        if let Some((router, shard)) = &self.shared {
            router.add_addr(addr, *shard);
        }
    }

    /// Forgets `addr` if it is still `key`'s.
    pub(super) fn remove_if(&mut self, addr: &SocketAddr, key: u64) {
        if self.map.get(addr) == Some(&key) {
            self.map.remove(addr);
            if let Some((router, shard)) = &self.shared {
                router.remove_addr(*addr, *shard);
            }
        }
    }

    /// The router and this loop's number in it, when sharded.
    pub(super) fn shared(&self) -> Option<&(Arc<Router>, usize)> {
        self.shared.as_ref()
    }
}

/// Datagrams for one loop, in one buffer.
#[derive(Default)]
pub(super) struct Batch {
    data: Vec<u8>,
    items: Vec<(usize, usize, SocketAddr)>,
}

impl Batch {
    fn push(&mut self, datagram: &[u8], from: SocketAddr) {
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        self.items.push((start, self.data.len(), from));
    }

    /// Each datagram and its source.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.items
            .iter()
            .map(|&(start, end, from)| (&self.data[start..end], from))
    }
}

/// Counts a datagram as received (and as RTP if it is).
pub(super) fn count_received(stats: &PlaneStats, kind: Kind, data: &[u8]) {
    stats.received.fetch_add(1, Ordering::Relaxed);
    // RTCP packet types are 192–223 (RFC 5761); the rest of this class is RTP.
    if kind == Kind::Rtp && data.get(1).is_some_and(|b| !(192..=223).contains(b)) {
        stats.rtp_received.fetch_add(1, Ordering::Relaxed);
    }
}

/// Batches queued for one loop at most (each up to `recv_batch` datagrams).
pub(super) const QUEUED_BATCHES: usize = 256;

/// The receiving thread's loop: read up to `batch` datagrams, route them, hand each loop its
/// share; until every loop is gone.
pub(super) async fn receive(
    socket: UdpSocket,
    router: Arc<Router>,
    loops: Vec<mpsc::Sender<Batch>>,
    stats: Arc<PlaneStats>,
    batch: usize,
) {
    let mut buf = vec![0u8; 2048];
    let mut pending: Vec<Batch> = loops.iter().map(|_| Batch::default()).collect();
    let route = |data: &[u8], from: SocketAddr, pending: &mut Vec<Batch>| {
        let kind = demux::classify(data);
        count_received(&stats, kind, data);
        match router.route(kind, data, from) {
            Ok(shard) => {
                if let Some(b) = pending.get_mut(shard) {
                    b.push(data, from);
                }
            }
            Err(reason) => stats.count_drop(reason),
        }
    };
    let Some(first) = loops.first().cloned() else {
        return;
    };
    loop {
        // The plane drops every loop's command sender at once: when the first loop is gone,
        // so are the others, and the socket this thread holds is let go.
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    route(&buf[..n], from, &mut pending);
                }
            }
            () = first.closed() => return,
        }
        for _ in 1..batch.max(1) {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => route(&buf[..n], from, &mut pending),
                Err(_) => break,
            }
        }
        for (shard, b) in pending.iter_mut().enumerate() {
            if b.items.is_empty() {
                continue;
            }
            if let Some(tx) = loops.get(shard) {
                match tx.try_send(std::mem::take(b)) {
                    Ok(()) => {}
                    // That loop is far behind: shed its datagrams here, counted, rather than
                    // queue them without bound (the others are not held up).
                    Err(mpsc::error::TrySendError::Full(lost))
                    | Err(mpsc::error::TrySendError::Closed(lost)) => {
                        for _ in &lost.items {
                            stats.count_drop(DropReason::Overloaded);
                        }
                    }
                }
            }
        }
        if loops.iter().all(|tx| tx.is_closed()) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_go_to_the_loop_owning_their_ufrag_or_address() {
        let router = Router::default();
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2000".parse().expect("addr");
        router.add_addr(a, 1);
        assert_eq!(router.route(Kind::Rtp, &[0x80; 20], a), Ok(1));
        assert_eq!(
            router.route(Kind::Dtls, &[22; 20], b),
            Err(DropReason::UnknownSource)
        );
        assert_eq!(
            router.route(Kind::Garbage, &[9], a),
            Err(DropReason::Garbage)
        );
        // Another loop's participant took the address over: the old owner cannot drop it.
        router.add_addr(a, 0);
        router.remove_addr(a, 1);
        assert_eq!(router.route(Kind::Rtp, &[0x80; 20], a), Ok(0));
        router.remove_addr(a, 0);
        assert_eq!(
            router.route(Kind::Rtp, &[0x80; 20], a),
            Err(DropReason::UnknownSource)
        );
        router.add_ufrag("abc", 1);
        router.remove_ufrag("abc");
        assert_eq!(
            router.route(Kind::Stun, &[0; 20], a),
            Err(DropReason::UnknownUfrag)
        );
    }

    #[test]
    fn a_batch_gives_back_what_was_pushed() {
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let mut batch = Batch::default();
        batch.push(b"one", a);
        batch.push(b"", a);
        batch.push(b"three", a);
        let got: Vec<&[u8]> = batch.iter().map(|(d, _)| d).collect();
        assert_eq!(got, vec![&b"one"[..], b"", b"three"]);
    }
}
