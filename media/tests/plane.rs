//! The one-port media plane with real WebRTC clients (the `webrtc` crate, on loopback): many
//! participants through one UDP port, a participant whose address changes mid-call (a phone
//! moving networks, a NAT rebinding) keeps its session, garbage and strangers are dropped and
//! counted without disturbing anyone, and a client whose DTLS never finishes is given up.
//! Publishers that number their packets transport-wide get congestion control feedback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{Channel, DropReason, MediaConfig, MediaPlane, PeerId, Rights, SfuEvent};

async fn eventually(what: &str, check: impl FnMut() -> bool) -> Result<()> {
    eventually_within(what, Duration::from_secs(15), check).await
}

async fn eventually_within(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<()> {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

/// Packets from `publisher` reaching `client` within 600 ms.
async fn flow(client: &Client, publisher: PeerId) -> u32 {
    let before = client.from(publisher);
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.from(publisher) - before
}

/// The port of every host candidate in `sdp`.
fn candidate_ports(sdp: &str) -> Vec<u16> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:") && l.contains(" typ host"))
        .filter_map(|l| l.split(' ').nth(5)?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_participants_talk_through_one_udp_port() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let port = plane.start()?.port();
    let h = Harness::start(&plane);
    let mut clients = Vec::new();
    for id in 1..=12 {
        // Four speak, eight listen (the listeners still publish silence).
        let client = h.join(id, Rights::default()).await?;
        if id <= 4 {
            client.level.store(30, Ordering::Relaxed);
        }
        client.speak();
        clients.push(client);
    }
    // Unoptimized (debug) DTLS handshakes of twelve clients and the server take a while.
    let heard = eventually_within(
        "everyone hears every other speaker",
        Duration::from_secs(60),
        || {
            clients
                .iter()
                .all(|c| (1..=4u64).filter(|p| *p != c.id).all(|p| c.from(p) > 10))
        },
    )
    .await;
    if let Err(e) = heard {
        let matrix: Vec<Vec<u32>> = clients
            .iter()
            .map(|c| (1..=4u64).map(|p| c.from(p)).collect())
            .collect();
        bail!("{e}: {matrix:?}");
    }
    for c in &clients {
        let answer =
            c.pc.remote_description()
                .await
                .map(|d| d.sdp)
                .unwrap_or_default();
        let ports = candidate_ports(&answer);
        assert!(!ports.is_empty(), "{answer}");
        assert!(ports.iter().all(|p| *p == port), "{ports:?} vs {port}");
    }
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 12);
    // The clients number their packets transport-wide (as browsers do): each gets feedback
    // on its arrivals every 100 ms.
    let feedback = &h.channel.counters().transport_feedback;
    let before = feedback.load(Ordering::Relaxed);
    eventually("transport-wide feedback to the publishers", || {
        feedback.load(Ordering::Relaxed) >= before + 12
    })
    .await?;
    h.channel.close().await;
    for c in &clients {
        c.close().await?;
    }
    Ok(())
}

/// A UDP relay between one client and the server: the client talks to `front`; the relay
/// talks to the server from `back`, a socket it can swap for a new one (a new source
/// 4-tuple), and may swallow DTLS (a handshake that never finishes).
struct Relay {
    front: Arc<UdpSocket>,
    back: Mutex<Arc<UdpSocket>>,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    client: Mutex<Option<SocketAddr>>,
    server: SocketAddr,
    swallow_dtls: AtomicBool,
}

impl Relay {
    async fn start(server: SocketAddr) -> Result<Arc<Relay>> {
        let relay = Arc::new(Relay {
            front: Arc::new(UdpSocket::bind("127.0.0.1:0").await?),
            back: Mutex::new(Arc::new(UdpSocket::bind("127.0.0.1:0").await?)),
            reader: Mutex::new(None),
            client: Mutex::new(None),
            server,
            swallow_dtls: AtomicBool::new(false),
        });
        let me = relay.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = me.front.recv_from(&mut buf).await {
                *me.client.lock() = Some(from);
                let dtls = (20..=63).contains(&buf[0]);
                if dtls && me.swallow_dtls.load(Ordering::Relaxed) {
                    continue;
                }
                let back = me.back.lock().clone();
                let _ = back.send_to(&buf[..n], me.server).await;
            }
        });
        let back = relay.back.lock().clone();
        relay.carry_back(back);
        Ok(relay)
    }

    /// What the server sends to `back` goes to the client (and nothing the server sends to
    /// the previous one any more).
    fn carry_back(self: &Arc<Self>, back: Arc<UdpSocket>) {
        let me = self.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok(n) = back.recv(&mut buf).await {
                let client = *me.client.lock();
                if let Some(client) = client {
                    let _ = me.front.send_to(&buf[..n], client).await;
                }
            }
        });
        if let Some(old) = self.reader.lock().replace(reader) {
            old.abort();
        }
    }

    /// From now on the server sees the client at a new address.
    async fn move_to_new_address(self: &Arc<Self>) -> Result<SocketAddr> {
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = back.local_addr()?;
        self.carry_back(back.clone());
        *self.back.lock() = back;
        Ok(addr)
    }

    fn port(&self) -> u16 {
        self.front.local_addr().map_or(0, |a| a.port())
    }
}

/// A client and the relay it talks through (if any).
type RoutedClient = (Arc<Client>, Option<Arc<Relay>>);

/// A channel whose clients are routed by hand: those with a relay get the relay's port
/// instead of the server's in every description, and no trickled candidates.
struct Routed {
    channel: Channel,
    clients: Mutex<HashMap<PeerId, RoutedClient>>,
    failed: Mutex<Vec<PeerId>>,
    server_port: u16,
}

impl Routed {
    fn start(plane: &MediaPlane) -> Result<Arc<Routed>> {
        let server_port = plane.start()?.port();
        let (channel, mut events) = Channel::new(plane);
        let routed = Arc::new(Routed {
            channel,
            clients: Mutex::new(HashMap::new()),
            failed: Mutex::new(Vec::new()),
            server_port,
        });
        let me = routed.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SfuEvent::Offer { peer, sdp } => {
                        let Some((client, relay)) = me.clients.lock().get(&peer).cloned() else {
                            continue;
                        };
                        let (sdp, channel) =
                            (me.rewrite(sdp, relay.as_deref()), me.channel.clone());
                        tokio::spawn(async move {
                            if let Ok(answer) = client.answer(sdp).await {
                                let _ = channel.apply_answer(peer, answer).await;
                            }
                        });
                    }
                    SfuEvent::Candidate { peer, candidate } => {
                        let entry = me.clients.lock().get(&peer).cloned();
                        if let Some((client, None)) = entry {
                            let _ = client.pc.add_ice_candidate(candidate).await;
                        }
                    }
                    SfuEvent::Failed { peer } => me.failed.lock().push(peer),
                    SfuEvent::Connected { .. } | SfuEvent::Speaking { .. } => {}
                }
            }
        });
        Ok(routed)
    }

    fn rewrite(&self, sdp: String, relay: Option<&Relay>) -> String {
        match relay {
            Some(relay) => sdp.replace(
                &format!(" {} typ host", self.server_port),
                &format!(" {} typ host", relay.port()),
            ),
            None => sdp,
        }
    }

    async fn join(&self, id: PeerId, relay: Option<Arc<Relay>>) -> Result<Arc<Client>> {
        let client = Client::new(id).await?;
        self.clients
            .lock()
            .insert(id, (client.clone(), relay.clone()));
        let answer = self
            .channel
            .join(id, client.offer().await?, Rights::default())
            .await?;
        client
            .accept(self.rewrite(answer, relay.as_deref()))
            .await?;
        self.channel.sync().await;
        Ok(client)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_address_changes_keeps_its_session() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let routed = Routed::start(&plane)?;
    let server = plane
        .local_addr()
        .ok_or_else(|| anyhow::anyhow!("not bound"))?;
    let relay = Relay::start(server).await?;
    let a = routed.join(1, Some(relay.clone())).await?;
    let b = routed.join(2, None).await?;
    a.speak();
    b.speak();
    eventually("both hear each other", || a.from(2) > 10 && b.from(1) > 10).await?;

    // The phone moves: the server now sees it at another address. Its next consent check
    // (a STUN request with its ufrag) proves it is the same participant.
    let new_addr = relay.move_to_new_address().await?;
    // Consent checks come every few seconds: within them, media flows both ways again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (to_a, to_b) = (flow(&a, 2).await, flow(&b, 1).await);
    assert!(
        to_a > 10 && to_b > 10,
        "after the move: a<-b {to_a} b<-a {to_b}"
    );
    assert!(routed.failed.lock().is_empty(), "nobody was dropped");
    assert_eq!(routed.channel.len(), 2, "the same session, no rejoin");
    assert_ne!(new_addr.port(), 0);
    routed.channel.close().await;
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_strangers_are_dropped_counted_and_disturb_nobody() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let server = plane.start()?;
    let h = Harness::start(&plane);
    let (a, b) = (
        h.join(1, Rights::default()).await?,
        h.join(2, Rights::default()).await?,
    );
    a.speak();
    b.speak();
    eventually("both hear each other", || a.from(2) > 10 && b.from(1) > 10).await?;

    let stranger = UdpSocket::bind("127.0.0.1:0").await?;
    let stats = plane.stats();
    let before: Vec<u64> = DropReason::ALL.iter().map(|r| stats.dropped(*r)).collect();
    // Garbage: nothing a first byte makes sense of, and an empty datagram.
    stranger.send_to(&[0xff; 100], server).await?;
    stranger.send_to(&[], server).await?;
    // A STUN binding request naming a ufrag nobody has.
    let mut stun = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
    stun.extend_from_slice(b"nobody:me\0\0\0");
    stranger.send_to(&stun, server).await?;
    // DTLS and RTP from a 4-tuple nobody proved to own.
    stranger.send_to(&[22; 60], server).await?;
    stranger.send_to(&[0x80; 60], server).await?;
    let wanted = [
        (DropReason::Garbage, 2),
        (DropReason::UnknownUfrag, 1),
        (DropReason::UnknownSource, 2),
    ];
    eventually("each dropped for its reason", || {
        wanted
            .iter()
            .all(|(r, n)| stats.dropped(*r) >= before[*r as usize] + n)
    })
    .await?;

    // A flood: 10,000 datagrams in about a second.
    for i in 0..10_000u32 {
        let first = [0x80u8, 22, 0xff][(i % 3) as usize];
        let _ = stranger.send_to(&[first; 80], server).await;
        if i % 1000 == 999 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (to_a, to_b) = (flow(&a, 2).await, flow(&b, 1).await);
    assert!(
        to_a > 10 && to_b > 10,
        "during and after the flood: {to_a} {to_b}"
    );
    let dropped: u64 = DropReason::ALL.iter().map(|r| stats.dropped(*r)).sum();
    let before: u64 = before.iter().sum();
    // UDP on loopback may lose some of a burst; most arrive and every one that does is
    // dropped.
    assert!(dropped - before > 5_000, "{}", dropped - before);
    assert!(h.failed.lock().is_empty());
    h.channel.close().await;
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_dtls_never_finishes_is_given_up() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        connect_timeout: Duration::from_secs(2),
        ..MediaConfig::default()
    });
    let routed = Routed::start(&plane)?;
    let server = plane
        .local_addr()
        .ok_or_else(|| anyhow::anyhow!("not bound"))?;
    let relay = Relay::start(server).await?;
    // ICE goes through, DTLS does not.
    relay.swallow_dtls.store(true, Ordering::Relaxed);
    let client = routed.join(5, Some(relay.clone())).await?;
    eventually("reported as failed", || routed.failed.lock().contains(&5)).await?;
    assert!(!client.connected.load(Ordering::Acquire));
    assert!(routed.channel.leave(5).await);
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 0);
    client.close().await?;
    Ok(())
}
