//! A voice channel in a real three-node cluster: its media terminates on the node that owns
//! the channel while the participants' WebSockets are on the other two; when the owner is
//! killed, the channel's actor starts on a surviving node, the participants are told to join
//! again, and they hear each other again.
//!
//! Needs `VOICEFLOW_TEST_CQL` (see node/tests/cql.rs); without it the test skips loudly.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::cluster::TestCluster;
use common::voice::{Participant, pump_all};
use serde_json::Value;

/// Short heartbeats (a restarted channel learns of its participants quickly) and media ports.
const EXTRA: &str = "\n[presence]\nheartbeat_secs = 1\nsession_ttl_secs = 6\n\
                     [voice]\nudp_port = 0\nconnect_timeout_secs = 5\nttl_secs = 6\n";

/// Pumps both until each hears the other (more than `n` new packets), or fails after 20 s.
async fn until_both_hear(a: &mut Participant, b: &mut Participant) -> Result<Vec<Value>> {
    let (sa, sb) = (a.session, b.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        for frames in pump_all(&mut [&mut *a, &mut *b], Duration::from_millis(500)).await? {
            seen.extend(frames);
        }
        if a.media.from(sb) > 10 && b.media.from(sa) > 10 {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            bail!("a<-b {} b<-a {}", a.media.from(sb), b.media.from(sa));
        }
    }
}

/// A voice channel owned by node 3 (rooms are placed by rendezvous hashing of their id over
/// the owners, a third of ids land on each node), started there by a first request through
/// node 1: the channel's media terminates on node 3 while nobody's WebSocket is on it.
async fn channel_on_node_3(cluster: &TestCluster, alice: &common::User) -> Result<String> {
    let mut id = None;
    for i in 0..60 {
        let candidate = cluster
            .node(1)
            .create_voice_room(alice, &format!("Lounge {i}"), "voice")
            .await?;
        if voiceflow_node::cluster::owner_among(&[1, 2, 3], candidate.parse()?) == Some(3) {
            id = Some(candidate);
            break;
        }
    }
    let id = id.ok_or_else(|| anyhow::anyhow!("no channel placed on node 3 in 60 tries"))?;
    let before = cluster.node(3).metric("voiceflow_rooms_running").await?;
    // A busy machine may see a member briefly suspected; "retry later" answers are retried.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = cluster
            .node(1)
            .get(&format!("/api/v1/rooms/{id}/members"), Some(&alice.token))
            .await?;
        if status == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!("members of the channel through node 1: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = cluster.node(3).metric("voiceflow_rooms_running").await?;
    anyhow::ensure!(
        running > before,
        "the channel does not run on its owner, node 3 ({before} rooms before, {running} after)"
    );
    Ok(id)
}

/// The ports of the host candidates in a participant's remote description.
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
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_owner_hands_the_channel_on_and_everyone_rejoins_through_one_port_there()
-> Result<()> {
    let Some(mut cluster) =
        TestCluster::start_with(3, "cluster_voice::voice_channel_owner_drains", EXTRA).await?
    else {
        return Ok(());
    };
    let alice = cluster.node(1).register("alice").await?;
    let bob = cluster.node(2).register("bob").await?;
    let channel = channel_on_node_3(&cluster, &alice).await?;
    let mut a = Participant::join(cluster.node(1), &alice, &channel).await?;
    let mut b = Participant::join(cluster.node(2), &bob, &channel).await?;
    until_both_hear(&mut a, &mut b).await?;
    let first = server_ports(&a).await;
    assert!(
        !first.is_empty() && first == server_ports(&b).await,
        "{first:?}"
    );

    // The owner leaves gracefully (SIGTERM): its rooms stop and hand over.
    cluster.drain(3)?;
    for p in [&mut a, &mut b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let frames = p.pump(Duration::from_millis(500)).await?;
            if frames.iter().any(|v| {
                v["type"] == "voice:user_left"
                    && v["data"]["reason"] == "rejoin"
                    && v["data"]["channelId"] == channel.as_str()
            }) {
                break;
            }
            if Instant::now() > deadline {
                bail!("participant {} was not told to rejoin", p.session);
            }
        }
    }
    a.rejoin().await?;
    b.rejoin().await?;
    until_both_hear(&mut a, &mut b).await?;
    // Both reach the new owner through its one media port.
    let (pa, pb) = (server_ports(&a).await, server_ports(&b).await);
    assert!(!pa.is_empty() && pa == pb, "{pa:?} {pb:?}");
    let mut owners = 0;
    for id in [1, 2] {
        if cluster
            .node(id)
            .metric("voiceflow_voice_participants")
            .await?
            == 2.0
        {
            owners += 1;
            assert_eq!(
                cluster
                    .node(id)
                    .metric("voiceflow_voice_ports_in_use")
                    .await?,
                1.0
            );
        }
    }
    assert_eq!(owners, 1, "the channel lives on one surviving node");
    a.media.close().await?;
    b.media.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_channel_lives_on_its_owner_and_comes_back_after_the_owner_dies() -> Result<()> {
    let Some(mut cluster) =
        TestCluster::start_with(3, "cluster_voice::voice_channel_owner_dies", EXTRA).await?
    else {
        return Ok(());
    };
    let alice = cluster.node(1).register("alice").await?;
    let bob = cluster.node(2).register("bob").await?;

    let channel = channel_on_node_3(&cluster, &alice).await?;

    let mut a = Participant::join(cluster.node(1), &alice, &channel).await?;
    let mut b = Participant::join(cluster.node(2), &bob, &channel).await?;
    until_both_hear(&mut a, &mut b).await?;
    assert_eq!(
        cluster
            .node(3)
            .metric("voiceflow_voice_participants")
            .await?,
        2.0,
        "media terminates on the owner"
    );
    assert_eq!(
        cluster
            .node(1)
            .metric("voiceflow_voice_participants")
            .await?,
        0.0
    );

    // The owner dies with the channel's actor and both media connections.
    cluster.kill9(3);
    let killed = Instant::now();
    for p in [&mut a, &mut b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let frames = p.pump(Duration::from_millis(500)).await?;
            let told = frames.iter().any(|v| {
                v["type"] == "voice:user_left"
                    && v["data"]["reason"] == "rejoin"
                    && v["data"]["channelId"] == channel.as_str()
            });
            if told {
                break;
            }
            if Instant::now() > deadline {
                bail!("participant {} was not told to rejoin", p.session);
            }
        }
    }
    let told_after = killed.elapsed();
    a.rejoin().await?;
    b.rejoin().await?;
    let (before_a, before_b) = (a.media.from(b.session), b.media.from(a.session));
    let (sa, sb) = (a.session, b.session);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.media.from(sb) < 10 || b.media.from(sa) < 10 {
        if Instant::now() > deadline {
            bail!(
                "not heard after the rejoin: a<-b {} (before {before_a}) b<-a {} (before {before_b})",
                a.media.from(sb),
                b.media.from(sa)
            );
        }
        pump_all(&mut [&mut a, &mut b], Duration::from_millis(500)).await?;
    }
    let hosts = cluster
        .node(1)
        .metric("voiceflow_voice_participants")
        .await?
        + cluster
            .node(2)
            .metric("voiceflow_voice_participants")
            .await?;
    assert_eq!(hosts, 2.0, "the channel now lives on a surviving node");
    println!(
        "owner killed: participants told to rejoin after {told_after:?}, talking again after {:?}",
        killed.elapsed()
    );
    a.media.close().await?;
    b.media.close().await?;
    Ok(())
}
