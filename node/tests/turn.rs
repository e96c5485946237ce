//! The embedded TURN server end to end: a real node with `[voice] turn_enabled`, a webrtc-rs
//! peer allowed only relay candidates (`iceTransportPolicy: relay`) that joins a voice channel
//! through the TURN server and hears the others; TURN over TCP at the protocol level (the
//! webrtc-rs client only speaks TURN over UDP); refused credentials.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::voice::{Participant, pump_all, voice};
use common::{TestNode, User};
use rtc::peer_connection::configuration::RTCIceServer;
use serde_json::{Value, json};
use voiceflow_media::testing::Client;

mod turn_proto;
use turn_proto::{TurnConn, allocate_request, code_of};

const SECRET: &str = "turn-test-secret-0123456789";

fn config(first_port: u16) -> String {
    format!(
        "{}turn_enabled = true\nturn_port = 0\nturn_secret = \"{SECRET}\"\n",
        voice(first_port)
    )
}

/// The node's TURN server entry (URLs with credentials) from `voice:ice_servers`.
async fn turn_entry(node: &TestNode, user: &User, channel: &str) -> Result<Value> {
    let mut ws = node.ws(user).await?;
    let ack = ws
        .request("voice:ice_servers", json!({"channelId": channel}))
        .await?;
    if ack["ok"] != true {
        bail!("voice:ice_servers refused: {ack}");
    }
    ack["data"]["iceServers"]
        .as_array()
        .and_then(|all| {
            all.iter().find(|s| {
                s["urls"][0]
                    .as_str()
                    .is_some_and(|u| u.starts_with("turn:"))
            })
        })
        .cloned()
        .with_context(|| format!("no turn: server in {ack}"))
}

fn url_for(entry: &Value, transport: &str) -> Result<String> {
    entry["urls"]
        .as_array()
        .and_then(|urls| {
            urls.iter()
                .filter_map(Value::as_str)
                .find(|u| u.ends_with(&format!("?transport={transport}")))
        })
        .map(str::to_owned)
        .with_context(|| format!("no {transport} URL in {entry}"))
}

fn addr_of(url: &str) -> Result<SocketAddr> {
    let hostport = url
        .strip_prefix("turn:")
        .and_then(|rest| rest.split('?').next())
        .context("not a turn: URL")?;
    Ok(hostport.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_peer_joins_over_turn_udp_and_hears_the_others() -> Result<()> {
    let node = TestNode::start_with(&config(47400)).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let channel = node
        .create_voice_room(&alice, "Firewalled", "voice")
        .await?;

    let entry = turn_entry(&node, &bob, &channel).await?;
    let username = entry["username"].as_str().unwrap_or_default().to_owned();
    let (expiry, user) = username.split_once(':').context("username expiry:userId")?;
    assert_eq!(user, bob.id, "the credential names its user");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let expiry: u64 = expiry.parse()?;
    assert!(
        expiry > now.as_secs() && expiry <= now.as_secs() + 3600,
        "{username}"
    );
    let turn = RTCIceServer {
        urls: vec![url_for(&entry, "udp")?],
        username,
        credential: entry["credential"].as_str().unwrap_or_default().to_owned(),
    };

    let mut a = Participant::join(&node, &alice, &channel).await?;
    // Bob may only use relay candidates: everything he sends goes through the TURN server.
    let ws = node.ws(&bob).await?;
    let session: u64 = ws.hello["data"]["sessionId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let media = Client::relayed(session, vec![turn]).await?;
    let offer = media.offer_gathered(Duration::from_secs(10)).await?;
    assert!(offer.contains("typ relay"), "a relay candidate: {offer}");
    assert!(!offer.contains("typ host"), "no host candidate: {offer}");
    let mut b = Participant {
        ws,
        media,
        session,
        channel: channel.clone(),
    };
    let ack =
        b.ws.request("voice:join", json!({"channelId": channel, "sdp": offer}))
            .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let servers = ack["data"]["iceServers"].to_string();
    assert!(
        servers.contains("turn:"),
        "the join ack carries the TURN server: {servers}"
    );
    b.media
        .accept(ack["data"]["sdp"].as_str().unwrap_or_default().to_owned())
        .await?;
    b.media.speak();

    let (sa, sb) = (a.session, b.session);
    let deadline = Instant::now() + Duration::from_secs(25);
    while a.media.from(sb) <= 10 || b.media.from(sa) <= 10 {
        if Instant::now() > deadline {
            bail!(
                "no audio over TURN: bob heard {} from alice, alice heard {} from bob",
                b.media.from(sa),
                a.media.from(sb)
            );
        }
        pump_all(&mut [&mut a, &mut b], Duration::from_millis(600)).await?;
    }
    assert!(node.metric("voiceflow_turn_allocations").await? >= 1.0);
    let text = node.metrics_text().await?;
    for direction in ["to_peer", "to_client"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "voiceflow_turn_relayed_bytes_total{{direction=\"{direction}\"}}"
                ))
            })
            .with_context(|| format!("no relayed bytes {direction}"))?;
        let bytes: f64 = line
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(bytes > 1000.0, "{line}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tcp_relays_both_ways_and_refuses_bad_credentials() -> Result<()> {
    let node = TestNode::start_with(&config(47420)).await?;
    let carol = node.register("carol").await?;
    let channel = node.create_voice_room(&carol, "Tcp", "voice").await?;
    let entry = turn_entry(&node, &carol, &channel).await?;
    let username = entry["username"].as_str().unwrap_or_default().to_owned();
    let password = entry["credential"].as_str().unwrap_or_default().to_owned();
    let tcp = addr_of(&url_for(&entry, "tcp")?)?;
    let udp = addr_of(&url_for(&entry, "udp")?)?;

    // A peer standing in for the SFU: allowed, as it is on the node's media address.
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut conn = TurnConn::tcp(tcp).await?;
    let (realm, nonce) = conn.challenge().await?;
    let relayed = conn.allocate(&username, &password, &realm, &nonce).await?;
    conn.create_permission(peer.local_addr()?).await?;
    conn.send_indication(peer.local_addr()?, b"hello from tcp")
        .await?;
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .context("the relay sent nothing to the peer")??;
    assert_eq!(&buf[..n], b"hello from tcp");
    assert_eq!(from.port(), relayed.port(), "sent from the relayed address");
    peer.send_to(b"hello back", from).await?;
    assert_eq!(conn.data_indication().await?, b"hello back");
    // A channel: ChannelData both ways, padded to four bytes on TCP.
    conn.channel_bind(0x4001, peer.local_addr()?).await?;
    peer.send_to(b"abcde", from).await?;
    assert_eq!(conn.channel_data().await?, (0x4001, b"abcde".to_vec()));
    conn.send_channel_data(0x4001, b"xyz").await?;
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .context("no channel data at the peer")??;
    assert_eq!(&buf[..n], b"xyz");
    assert_eq!(node.metric("voiceflow_turn_allocations").await?, 1.0);
    // Closing the TCP connection ends its allocation.
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.metric("voiceflow_turn_allocations").await? != 0.0 {
        if Instant::now() > deadline {
            bail!("the allocation outlived its TCP connection");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A wrong password and an expired user name are refused (401), over UDP and TCP.
    let secret = voiceflow_media::turn::TurnSecret::new(SECRET.as_bytes().to_vec())?;
    let (expired, expired_password) = secret.issue(carol.id.parse()?, 1_000)?;
    for transport in ["udp", "tcp"] {
        let mut conn = match transport {
            "udp" => TurnConn::udp(udp).await?,
            _ => TurnConn::tcp(tcp).await?,
        };
        let (realm, nonce) = conn.challenge().await?;
        let reply = conn
            .request(allocate_request(
                &username,
                "wrong-password",
                &realm,
                &nonce,
            )?)
            .await?;
        assert_eq!(code_of(&reply), Some(401), "{transport}: wrong password");
        let reply = conn
            .request(allocate_request(
                &expired,
                &expired_password,
                &realm,
                &nonce,
            )?)
            .await?;
        assert_eq!(code_of(&reply), Some(401), "{transport}: expired user name");
    }
    let text = node.metrics_text().await?;
    for reason in ["bad_password", "expired"] {
        let needle = format!("voiceflow_turn_refused_total{{reason=\"{reason}\"}} 2");
        assert!(text.contains(&needle), "{needle} in\n{text}");
    }
    assert_eq!(node.metric("voiceflow_turn_allocations").await?, 0.0);
    Ok(())
}
