//! A node behind 1:1 NAT: its media sockets bind one address, clients are only told another
//! (`announced_ip`), and a userspace NAT on loopback maps announced:port ↔ bound:port, as a
//! cloud provider's does for a VM's public IP. Real WebRTC peers connect and hear each other.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::net::UdpSocket;
use voiceflow_media::testing::Harness;
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

const BOUND: [u8; 4] = [127, 0, 0, 1];
const PUBLIC: [u8; 4] = [127, 0, 0, 2];

/// Datagrams the NAT carried in, and back out.
#[derive(Default)]
struct NatCounters {
    inbound: AtomicU64,
    outbound: AtomicU64,
}

/// Maps `PUBLIC:port` to `BOUND:port` for each port: every outside peer gets its own inside
/// socket, and what the server sends to that socket goes back to the peer from the public
/// address.
async fn nat(ports: &[u16]) -> Result<Arc<NatCounters>> {
    let counters = Arc::new(NatCounters::default());
    for &port in ports {
        let outside = Arc::new(UdpSocket::bind((IpAddr::from(PUBLIC), port)).await?);
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut inside: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 2048];
            while let Ok((n, peer)) = outside.recv_from(&mut buf).await {
                let socket = match inside.get(&peer) {
                    Some(s) => s.clone(),
                    None => {
                        let Ok(s) = UdpSocket::bind((IpAddr::from(BOUND), 0)).await else {
                            continue;
                        };
                        if s.connect((IpAddr::from(BOUND), port)).await.is_err() {
                            continue;
                        }
                        let s = Arc::new(s);
                        let (back, out, counters) = (s.clone(), outside.clone(), counters.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 2048];
                            while let Ok(n) = back.recv(&mut buf).await {
                                counters.outbound.fetch_add(1, Ordering::Relaxed);
                                let _ = out.send_to(&buf[..n], peer).await;
                            }
                        });
                        inside.insert(peer, s.clone());
                        s
                    }
                };
                counters.inbound.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send(&buf[..n]).await;
            }
        });
    }
    Ok(counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_node_behind_one_to_one_nat_through_its_announced_address() -> Result<()> {
    // The node's one media port (this test's own).
    let ports = [46300];
    let counters = nat(&ports).await?;
    let config = MediaConfig {
        bind_ip: IpAddr::from(BOUND),
        announced_ip: Some(IpAddr::from(PUBLIC)),
        udp_port: ports[0],
        ..MediaConfig::default()
    };
    let plane = MediaPlane::new(config);
    let h = Harness::start(&plane);
    let (a, b) = (
        h.join(1, Rights::default()).await?,
        h.join(2, Rights::default()).await?,
    );
    a.speak();
    b.speak();
    let mut heard = false;
    for _ in 0..200 {
        if a.from(2) > 10 && b.from(1) > 10 {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(heard, "a<-b {} b<-a {}", a.from(2), b.from(1));
    let answer =
        a.pc.remote_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
    assert!(
        !answer.contains("127.0.0.1 4630"),
        "the bound address is never announced: {answer}"
    );
    // The clients could only know the announced address: their checks went through the NAT.
    let (inbound, outbound) = (
        counters.inbound.load(Ordering::Relaxed),
        counters.outbound.load(Ordering::Relaxed),
    );
    assert!(inbound > 0 && outbound > 0, "in {inbound} out {outbound}");
    Ok(())
}
