//! Real WebRTC peers (the `webrtc` crate, on loopback) in a voice channel: each sends Opus RTP
//! with audio levels and receives the others (not itself); mute, deafen, speaking, leaving,
//! and a client that never completes ICE. People coming and going, and a camera turned off and
//! on, reuse the SDP sections legs left behind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{MediaConfig, MediaPlane, PeerId, Rights};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..150 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// How many packets from `publisher` reach `client` in 600 ms.
async fn flow(client: &Client, publisher: PeerId) -> u32 {
    let before = client.from(publisher);
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.from(publisher) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_hear_each_other_with_mute_deafen_speaking_and_leave() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let h = Harness::start(&plane);
    let (a, b, c) = (
        h.join(1, Rights::default()).await?,
        h.join(2, Rights::default()).await?,
        h.join(3, Rights::default()).await?,
    );
    for client in [&a, &b, &c] {
        client.speak();
    }
    eventually("everyone connected", || {
        [&a, &b, &c]
            .iter()
            .all(|c| c.connected.load(Ordering::Acquire))
    })
    .await?;
    eventually("each hears the other two", || {
        a.from(2) > 10
            && a.from(3) > 10
            && b.from(1) > 10
            && b.from(3) > 10
            && c.from(1) > 10
            && c.from(2) > 10
    })
    .await?;
    for client in [&a, &b, &c] {
        assert_eq!(client.from(client.id), 0, "nobody hears themselves");
    }
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 3);

    // Speaking: A gets loud, then quiet.
    a.level.store(20, Ordering::Relaxed);
    eventually("A speaking", || h.speaking.lock().contains(&(1, true))).await?;
    a.level.store(127, Ordering::Relaxed);
    for _ in 0..20 {
        h.channel.tick();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.speaking.lock().contains(&(1, false)),
        "{:?}",
        h.speaking.lock()
    );

    // Mute A: nobody receives A; B and C still hear each other.
    let muted = Rights {
        muted: true,
        ..Rights::default()
    };
    h.channel.set_rights(1, muted).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        flow(&b, 1).await,
        0,
        "muted packets are dropped at the server"
    );
    assert!(flow(&b, 3).await > 10);
    h.channel.set_rights(1, Rights::default()).await?;
    assert!(flow(&c, 1).await > 10, "unmuted again");

    // Deafen B: B receives nothing, the others still hear B.
    let deafened = Rights {
        deafened: true,
        ..Rights::default()
    };
    h.channel.set_rights(2, deafened).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(flow(&b, 1).await + flow(&b, 3).await, 0);
    assert!(flow(&a, 2).await > 10);
    h.channel.set_rights(2, Rights::default()).await?;

    // C leaves: its connection closes and its port comes back; A and B go on.
    assert!(h.channel.leave(3).await);
    c.pc.close().await?;
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(flow(&a, 3).await, 0);
    assert!(flow(&a, 2).await > 10, "the others are not interrupted");
    assert!(h.channel.counters().forwarded.load(Ordering::Relaxed) > 100);

    h.channel.close().await;
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 0);
    assert!(h.channel.is_empty());
    a.pc.close().await?;
    b.pc.close().await?;
    Ok(())
}

/// The media sections of `client`'s current remote description.
async fn sections(client: &Client) -> usize {
    client
        .pc
        .remote_description()
        .await
        .map_or(0, |d| d.sdp.lines().filter(|l| l.starts_with("m=")).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_coming_and_going_reuse_sections_and_are_heard() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let h = Harness::start(&plane);
    let a = h.join(1, Rights::default()).await?;
    a.speak();
    // Five people in turn join, speak to A, and leave: each new one's audio takes the
    // section the last one left (with a new SSRC), so A's description does not grow with
    // every visitor.
    let mut first = None;
    for id in 2..=6u64 {
        let visitor = h.join(id, Rights::default()).await?;
        visitor.speak();
        let heard = eventually("A hears the visitor and the visitor A", || {
            a.from(id) > 10 && visitor.from(1) > 10
        })
        .await;
        if let Err(e) = heard {
            let at_a: Vec<u32> = (2..=id).map(|p| a.from(p)).collect();
            bail!("visitor {id}: {e}; A got {at_a:?} from 2..={id}");
        }
        for earlier in 2..id {
            assert_eq!(flow(&a, earlier).await, 0, "{earlier} left");
        }
        // A's own microphone section and one for whoever visits.
        let now = sections(&a).await;
        assert_eq!(*first.get_or_insert(now), now, "visitor {id}");
        assert!(h.channel.leave(id).await);
        visitor.pc.close().await?;
    }
    assert_eq!(first, Some(2));
    h.channel.close().await;
    a.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_turned_off_and_on_again_takes_its_old_section() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let h = Harness::start(&plane);
    let publisher = Client::with_camera(1).await?;
    let offer = publisher.offer().await?;
    h.clients.lock().insert(1, publisher.clone());
    let answer = h.channel.join(1, offer, Rights::default()).await?;
    publisher.accept(answer).await?;
    let subscriber = h.join(2, Rights::default()).await?;
    publisher.send_video();
    eventually("both connected", || {
        publisher.connected.load(Ordering::Acquire) && subscriber.connected.load(Ordering::Acquire)
    })
    .await?;
    let camera = Rights {
        video: true,
        ..Rights::default()
    };
    let mut first = None;
    for round in 0..3 {
        h.channel.set_rights(1, camera).await?;
        let before = subscriber.video_from("camera-1").0;
        eventually("camera frames at the subscriber", || {
            subscriber.video_from("camera-1").0 > before + 20
        })
        .await?;
        let now = sections(&subscriber).await;
        assert_eq!(*first.get_or_insert(now), now, "round {round}");
        // The subscriber's keyframe request for the section's new SSRC reaches the
        // publisher (past the per-stream rate limit of the request made for the new leg).
        let ssrc = subscriber
            .seen
            .packets("camera-1")
            .last()
            .map(|p| p.ssrc)
            .expect("packets");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let requests = &h.channel.counters().keyframe_requests;
        let before = requests.load(Ordering::Relaxed);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        subscriber
            .seen
            .send_rtcp("camera-1", vec![Box::new(pli)])
            .await?;
        eventually("the subscriber's PLI relayed", || {
            requests.load(Ordering::Relaxed) > before
        })
        .await?;
        h.channel.set_rights(1, Rights::default()).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = subscriber.video_from("camera-1").0;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            subscriber.video_from("camera-1").0,
            stopped,
            "round {round}: off"
        );
    }
    h.channel.close().await;
    publisher.close().await?;
    subscriber.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_completes_ice_is_reported_and_removed() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        connect_timeout: Duration::from_secs(2),
        ..MediaConfig::default()
    });
    let h = Harness::start(&plane);
    let client = Client::new(7).await?;
    let offer = client.offer().await?;
    // The client goes away before applying the answer: nobody ever answers the checks.
    client.pc.close().await?;
    h.channel.join(7, offer, Rights::default()).await?;
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 1);
    eventually("reported as failed", || h.failed.lock().contains(&7)).await?;
    assert!(h.channel.leave(7).await);
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 0);
    // Garbage is refused with an error, nothing is left behind.
    assert!(
        h.channel
            .join(8, "v=0 garbage".into(), Rights::default())
            .await
            .is_err()
    );
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 0);
    assert!(h.channel.is_empty());
    assert!(h.channel.apply_answer(9, "x".into()).await.is_err());
    Ok(())
}
