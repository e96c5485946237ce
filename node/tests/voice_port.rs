//! The node's one media port from the outside: everyone's media goes through it, and what a
//! stranger throws at it is dropped and counted in `voiceflow_voice_dropped_datagrams_total`
//! while the participants keep talking.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::TestNode;
use common::voice::{Participant, pump_all, voice};

/// The ports of the host candidates the server gave a participant.
async fn server_ports(p: &Participant) -> Vec<u16> {
    let sdp = p
        .media
        .pc
        .remote_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:") && l.contains(" typ host"))
        .filter_map(|l| l.split(' ').nth(5)?.parse().ok())
        .collect::<std::collections::BTreeSet<u16>>()
        .into_iter()
        .collect()
}

/// `voiceflow_voice_dropped_datagrams_total{reason="…"}`.
async fn dropped(node: &TestNode, reason: &str) -> Result<f64> {
    let name = format!("voiceflow_voice_dropped_datagrams_total{{reason=\"{reason}\"}}");
    let text = node.metrics_text().await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(&name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_carries_everyone_and_strangers_are_dropped_and_counted() -> Result<()> {
    let node = TestNode::start_with(&voice(0)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let channel = node.create_voice_room(&alice, "Lounge", "voice").await?;
    let mut a = Participant::join(&node, &alice, &channel).await?;
    let mut b = Participant::join(&node, &bob, &channel).await?;
    let mut c = Participant::join(&node, &carol, &channel).await?;
    let (sa, sb, sc) = (a.session, b.session, c.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.media.from(sb) < 10 || b.media.from(sc) < 10 || c.media.from(sa) < 10 {
        pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(500)).await?;
        if Instant::now() > deadline {
            bail!("the three do not hear each other");
        }
    }
    let port = server_ports(&a).await;
    assert_eq!(port.len(), 1, "{port:?}");
    assert_eq!(server_ports(&b).await, port);
    assert_eq!(server_ports(&c).await, port);
    assert_eq!(node.metric("voiceflow_voice_ports_in_use").await?, 1.0);

    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port[0]));
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for _ in 0..20 {
        stranger.send_to(&[0xee; 64], server).await?;
        stranger.send_to(&[0x80; 64], server).await?;
    }
    let mut stun = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[3; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
    stun.extend_from_slice(b"nobody:me\0\0\0");
    stranger.send_to(&stun, server).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (garbage, source, ufrag) = (
            dropped(&node, "garbage").await?,
            dropped(&node, "unknown_source").await?,
            dropped(&node, "unknown_ufrag").await?,
        );
        if garbage >= 20.0 && source >= 20.0 && ufrag >= 1.0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("dropped: garbage {garbage} unknown_source {source} unknown_ufrag {ufrag}");
        }
        pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(200)).await?;
    }
    // Nobody noticed.
    let before = (a.media.from(sb), b.media.from(sc), c.media.from(sa));
    pump_all(&mut [&mut a, &mut b, &mut c], Duration::from_millis(800)).await?;
    assert!(a.media.from(sb) > before.0 + 10);
    assert!(b.media.from(sc) > before.1 + 10);
    assert!(c.media.from(sa) > before.2 + 10);
    for p in [&a, &b, &c] {
        p.media.close().await?;
    }
    Ok(())
}
