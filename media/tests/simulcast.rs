//! Simulcast through the SFU with real WebRTC peers (the `webrtc` crate, on loopback): a
//! publisher sends its camera in three layers (RIDs), a subscriber gets one of them on one
//! track. Asking for another layer moves the leg to it at that layer's next keyframe, with a
//! keyframe request for it, and the subscriber's sequence numbers and timestamps run on
//! without a jump; a REMB below a layer's bitrate moves the leg down, a NACK is answered
//! from the SFU's history, and a packet lost on the way from the publisher is NACKed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use voiceflow_media::testing::simulcast::VideoPacket;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{Layer, MediaConfig, MediaPlane, Rights, Track};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..300 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

/// Every packet follows the one before it (no gap, no jump back), timestamps never go back,
/// and where the layer changes the new layer's first packet starts a keyframe.
fn continuous(packets: &[VideoPacket]) -> Result<usize> {
    let mut switches = 0;
    for pair in packets.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        ensure!(
            b.seq == a.seq.wrapping_add(1),
            "sequence jumps from {} to {} ({a:?} → {b:?})",
            a.seq,
            b.seq
        );
        ensure!(
            (b.timestamp.wrapping_sub(a.timestamp) as i32) >= 0,
            "timestamp goes back: {a:?} → {b:?}"
        );
        if a.layer != b.layer {
            ensure!(
                b.keyframe,
                "switched to layer {} off a keyframe: {b:?}",
                b.layer
            );
            switches += 1;
        }
    }
    Ok(switches)
}

fn last_layer(packets: &[VideoPacket]) -> Option<u8> {
    packets.last().map(|p| p.layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_switches_layers_at_keyframes_without_a_jump() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        keyframe_interval: Duration::from_millis(200),
        layer_upgrade_after: Duration::from_millis(600),
        ..MediaConfig::default()
    });
    let h = Harness::start(&plane);
    let (publisher, camera) = Client::with_simulcast_camera(1).await?;
    let offer = publisher.offer().await?;
    ensure!(
        offer.contains("a=simulcast:send q;h;f"),
        "the publisher offers three layers: {offer}"
    );
    h.clients.lock().insert(1, publisher.clone());
    let answer = h
        .channel
        .join(
            1,
            offer.clone(),
            Rights {
                video: true,
                ..Rights::default()
            },
        )
        .await?;
    ensure!(
        answer.contains("a=simulcast:recv q;h;f"),
        "the server receives the three layers: {answer}"
    );
    publisher.accept(answer).await?;
    let subscriber = h.join(2, Rights::default()).await?;
    h.channel.sync().await;
    // Keyframes come only when asked (or every 10 s): switches wait for requests.
    camera.keyframe_every.store(300, Ordering::Relaxed);
    camera.send(&publisher, &offer);
    let seen = subscriber.seen.clone();
    let packets = || seen.packets("camera-1");

    // Nothing asked: the highest layer.
    eventually("the high layer at the subscriber", || {
        last_layer(&packets()) == Some(2) && packets().len() > 30
    })
    .await?;
    // (The client stack keeps a track's first packet to itself: the keyframe the leg started
    // with is not in the log.)

    let counters = h.channel.counters();
    for (layer, index) in [(Layer::Low, 0u8), (Layer::Medium, 1), (Layer::High, 2)] {
        let requests = counters.keyframe_requests.load(Ordering::Relaxed);
        h.channel.set_layer(2, 1, Track::Camera, layer).await?;
        eventually("a keyframe request for the target layer", || {
            counters.keyframe_requests.load(Ordering::Relaxed) > requests
        })
        .await?;
        // The test publisher cannot read PLI: it sends the keyframe asked for.
        tokio::time::sleep(Duration::from_millis(150)).await;
        ensure!(
            last_layer(&packets()) != Some(index) || index == 2,
            "no switch before the keyframe"
        );
        camera.keyframe[usize::from(index)].store(true, Ordering::Relaxed);
        eventually("the asked-for layer at the subscriber", || {
            last_layer(&packets()) == Some(index)
        })
        .await?;
    }
    let switches = continuous(&packets())?;
    ensure!(switches >= 3, "three switches, saw {switches}");
    ensure!(counters.layer_switches.load(Ordering::Relaxed) >= 3);

    // A REMB below the high layer's bitrate (~0.75 Mbit/s) but above the medium one's:
    // down to medium, at its keyframe.
    let leg = packets().last().map(|p| p.ssrc).unwrap_or(0);
    let remb = ReceiverEstimatedMaximumBitrate {
        sender_ssrc: 0,
        bitrate: 600_000.0,
        // Chrome names the streams it estimates for; `rtc` routes RTCP by them.
        ssrcs: vec![leg],
    };
    let drop_to_medium = async {
        subscriber
            .seen
            .send_rtcp("camera-1", vec![Box::new(remb.clone())])
            .await?;
        camera.keyframe[1].store(true, Ordering::Relaxed);
        anyhow::Ok(last_layer(&packets()) == Some(1))
    };
    let mut down = drop_to_medium.await?;
    for _ in 0..40 {
        if down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        subscriber
            .seen
            .send_rtcp("camera-1", vec![Box::new(remb.clone())])
            .await?;
        camera.keyframe[1].store(true, Ordering::Relaxed);
        down = last_layer(&packets()) == Some(1);
    }
    ensure!(down, "the estimate moved the leg down to medium");
    continuous(&packets())?;

    // A NACK for packets sent a moment ago: sent again from the history (the subscriber's
    // SRTP replay window drops the copies of packets it has, so the counter tells).
    let retransmitted = counters.retransmitted.load(Ordering::Relaxed);
    let last = packets().last().copied().expect("packets");
    let nack = TransportLayerNack {
        sender_ssrc: 0,
        media_ssrc: last.ssrc,
        nacks: vec![NackPair {
            packet_id: last.seq.wrapping_sub(5),
            // The next two as well.
            lost_packets: 0b11,
        }],
    };
    subscriber
        .seen
        .send_rtcp("camera-1", vec![Box::new(nack)])
        .await?;
    eventually("three packets sent again", || {
        counters.retransmitted.load(Ordering::Relaxed) >= retransmitted + 3
    })
    .await?;

    // A packet the publisher's stream skips is asked for again (NACK upstream).
    camera.lose_one.store(true, Ordering::Relaxed);
    eventually("a NACK to the publisher", || {
        counters.nacks_sent.load(Ordering::Relaxed) >= 1
    })
    .await?;
    Ok(())
}
