//! A lost DTLS flight is retransmitted and the connection still comes up.
//!
//! The clients reach the node's media port only through a relay on loopback (the node
//! announces the relay's address, as behind 1:1 NAT), which drops one handshake datagram the
//! first time it sees one of the chosen kind. DTLS over UDP recovers from that by
//! retransmission (RFC 6347 4.2.4); `rtc-dtls` 0.21.1 did not when the peer repeated its own
//! flight first: any handshake record that did not complete the awaited flight cancelled the
//! retransmission timer for good, so the server (the DTLS client here) never sent its lost
//! flight 5 again and the join hung until the connect timeout. The vendored copy in
//! `media/vendor/rtc-dtls` keeps the timer running until the awaited flight is complete.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use voiceflow_media::testing::Harness;
use voiceflow_media::testing::relay::{Way, relay};
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

const BOUND: [u8; 4] = [127, 0, 0, 1];
const RELAY: [u8; 4] = [127, 0, 0, 3];

/// Which handshake datagram the relay loses, once.
#[derive(Clone, Copy, PartialEq)]
enum Lose {
    /// The server's flight 5 (its certificate, key exchange and Finished: the DTLS client's
    /// second flight), on its way to the client.
    ServerFlight5,
    /// The client's flight 4 (ServerHello, certificate, ...), on its way to the server.
    ClientFlight4,
}

/// A DTLS handshake datagram (content type 22) too big for a ClientHello or a
/// HelloVerifyRequest: a flight with a certificate in it.
fn certificate_flight(data: &[u8]) -> bool {
    data.first() == Some(&22) && data.len() > 300
}

/// Two participants join through the relay, which loses one flight of the first handshake;
/// both connect and hear each other well within the time a retransmission takes (1 s).
async fn join_despite(lose: Lose) -> Result<()> {
    // The node binds a free port; the relay takes the same port on its own address, which
    // the node announces (as behind 1:1 NAT).
    let config = MediaConfig {
        bind_ip: IpAddr::from(BOUND),
        announced_ip: Some(IpAddr::from(RELAY)),
        udp_port: 0,
        ..MediaConfig::default()
    };
    let plane = MediaPlane::new(config);
    let server = plane.start()?;
    let port = server.port();
    // The first certificate-bearing flight going the chosen way is lost, once.
    let lost = Arc::new(AtomicU64::new(0));
    let counter = lost.clone();
    let way = match lose {
        Lose::ServerFlight5 => Way::Out,
        Lose::ClientFlight4 => Way::In,
    };
    let _relay = relay(
        SocketAddr::from((RELAY, port)),
        IpAddr::from(BOUND),
        server,
        move |w, data| {
            w == way
                && certificate_flight(data)
                && counter
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
        },
    )
    .await?;
    let h = Harness::start(&plane);
    let started = Instant::now();
    let a = h.join(1, Rights::default()).await?;
    let b = h.join(2, Rights::default()).await?;
    a.speak();
    b.speak();
    let deadline = started + Duration::from_secs(15);
    while !(a.from(2) > 10 && b.from(1) > 10) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lost.load(Ordering::SeqCst),
        1,
        "the relay lost the flight it was told to"
    );
    assert!(
        a.from(2) > 10 && b.from(1) > 10,
        "both connected and heard each other (a<-b {} b<-a {}, a up {}, b up {}) within 15 s",
        a.from(2),
        b.from(1),
        a.connected.load(Ordering::SeqCst),
        b.connected.load(Ordering::SeqCst),
    );
    assert!(
        h.failed.lock().is_empty(),
        "nobody reported failed: {:?}",
        h.failed.lock()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_flight_is_sent_again_when_the_client_repeats_its_own() -> Result<()> {
    join_despite(Lose::ServerFlight5).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_client_flight_is_sent_again_when_the_server_repeats_its_own() -> Result<()> {
    join_despite(Lose::ClientFlight4).await
}
