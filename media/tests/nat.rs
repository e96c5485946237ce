//! A node behind 1:1 NAT: its media sockets bind one address, clients are only told another
//! (`announced_ip`), and a userspace NAT on loopback maps announced:port ↔ bound:port, as a
//! cloud provider's does for a VM's public IP. Real WebRTC peers connect and hear each other.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use voiceflow_media::testing::Harness;
use voiceflow_media::testing::relay::relay;
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

const BOUND: [u8; 4] = [127, 0, 0, 1];
const PUBLIC: [u8; 4] = [127, 0, 0, 2];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_node_behind_one_to_one_nat_through_its_announced_address() -> Result<()> {
    // The node binds a free port; the NAT maps the same port of the public address to it.
    let config = MediaConfig {
        bind_ip: IpAddr::from(BOUND),
        announced_ip: Some(IpAddr::from(PUBLIC)),
        udp_port: 0,
        ..MediaConfig::default()
    };
    let plane = MediaPlane::new(config);
    let server = plane.start()?;
    let nat = relay(
        SocketAddr::from((PUBLIC, server.port())),
        IpAddr::from(BOUND),
        server,
        |_, _| false,
    )
    .await?;
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
        nat.inbound.load(Ordering::Relaxed),
        nat.outbound.load(Ordering::Relaxed),
    );
    assert!(inbound > 0 && outbound > 0, "in {inbound} out {outbound}");
    Ok(())
}
