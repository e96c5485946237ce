//! A UDP relay on loopback for tests, standing between clients and a node's media port as a
//! 1:1 NAT does: every outside peer gets an inside socket of its own, connected to the
//! server, and what the server sends to that socket goes back to the peer from the relay's
//! address. Datagrams are counted each way, and a test may lose the ones it picks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;

/// Which way a datagram crosses the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From a client to the server.
    In,
    /// From the server back to a client.
    Out,
}

/// A running relay.
pub struct Relay {
    /// The address clients send to.
    pub address: SocketAddr,
    /// Datagrams carried to the server.
    pub inbound: Arc<AtomicU64>,
    /// Datagrams carried back to clients.
    pub outbound: Arc<AtomicU64>,
}

/// Relays datagrams sent to `listen` on to `server` from sockets bound on `inside_ip`, and
/// the server's answers back; a datagram for which `lose` says true is dropped instead.
pub async fn relay<F>(
    listen: SocketAddr,
    inside_ip: IpAddr,
    server: SocketAddr,
    lose: F,
) -> std::io::Result<Relay>
where
    F: Fn(Way, &[u8]) -> bool + Send + Sync + 'static,
{
    let outside = Arc::new(UdpSocket::bind(listen).await?);
    let relay = Relay {
        address: outside.local_addr()?,
        inbound: Arc::new(AtomicU64::new(0)),
        outbound: Arc::new(AtomicU64::new(0)),
    };
    let (inbound, outbound, lose) = (
        relay.inbound.clone(),
        relay.outbound.clone(),
        Arc::new(lose),
    );
    tokio::spawn(async move {
        let mut inside: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = outside.recv_from(&mut buf).await {
            let socket = match inside.get(&peer) {
                Some(s) => s.clone(),
                None => {
                    let Ok(s) = UdpSocket::bind((inside_ip, 0)).await else {
                        continue;
                    };
                    if s.connect(server).await.is_err() {
                        continue;
                    }
                    let s = Arc::new(s);
                    let (back, out) = (s.clone(), outside.clone());
                    let (outbound, lose) = (outbound.clone(), lose.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 2048];
                        while let Ok(n) = back.recv(&mut buf).await {
                            if lose(Way::Out, &buf[..n]) {
                                continue;
                            }
                            outbound.fetch_add(1, Ordering::Relaxed);
                            let _ = out.send_to(&buf[..n], peer).await;
                        }
                    });
                    inside.insert(peer, s.clone());
                    s
                }
            };
            if lose(Way::In, &buf[..n]) {
                continue;
            }
            inbound.fetch_add(1, Ordering::Relaxed);
            let _ = socket.send(&buf[..n]).await;
        }
    });
    Ok(relay)
}
