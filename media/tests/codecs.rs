//! VP9, AV1 and H.264 through the SFU with real WebRTC peers (the `webrtc` crate, on
//! loopback): a publisher's camera in any of them, under a payload type of its own, reaches a
//! subscriber under the payload type the subscriber negotiated, keyframes and all (also one
//! whose own offer negotiated video first); a subscriber that negotiated only VP8 is sent
//! none of it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use voiceflow_media::engine::{video_codec, video_codecs};
use voiceflow_media::testing::Harness;
use voiceflow_media::testing::codecs::Options;
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..200 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

/// The SFU's codec `mime`, under payload type `pt`.
fn only(mime: &str, pt: u8) -> Vec<RTCRtpCodecParameters> {
    video_codecs()
        .into_iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        .map(|c| RTCRtpCodecParameters {
            payload_type: pt,
            ..c
        })
        .collect()
}

/// A camera in `mime` sent under payload type 120 reaches a subscriber of every codec under
/// the SFU's payload type for it (`server_pt`, which the subscriber's answer keeps), and a
/// VP8-only subscriber gets nothing of it.
async fn a_camera_in(mime: &str, server_pt: u8, descriptor_key: u8) -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        keyframe_interval: Duration::from_millis(200),
        ..MediaConfig::default()
    });
    let h = Harness::start(&plane);
    let (publisher, publisher_wire) = voiceflow_media::testing::Client::with_options(
        1,
        Options {
            codecs: only(mime, 120),
            camera: Some(video_codec(mime)),
            ..Options::default()
        },
    )
    .await?;
    let offer = publisher.offer().await?;
    ensure!(
        offer.contains(&format!("a=rtpmap:120 {}/90000", &mime[6..])),
        "the publisher offers {mime} under 120: {offer}"
    );
    h.clients.lock().insert(1, publisher.clone());
    let answer = h
        .channel
        .join(
            1,
            offer,
            Rights {
                video: true,
                ..Rights::default()
            },
        )
        .await?;
    publisher.accept(answer).await?;
    let (all, _) = voiceflow_media::testing::Client::with_options(2, Options::default()).await?;
    let all = h.join_client(all, Rights::default()).await?;
    let (vp8, _) = voiceflow_media::testing::Client::with_options(
        3,
        Options {
            codecs: only("video/VP8", 96),
            ..Options::default()
        },
    )
    .await?;
    let vp8 = h.join_client(vp8, Rights::default()).await?;
    // One with a camera of its own (not sent): its offer negotiated video already (only its
    // camera's codec, as this client stack offers it), which narrows what the server may
    // offer its legs to that.
    let (own, _) = voiceflow_media::testing::Client::with_options(
        4,
        Options {
            camera: Some(video_codec(mime)),
            ..Options::default()
        },
    )
    .await?;
    let own = h.join_client(own, Rights::default()).await?;
    publisher.send_video();
    eventually("everyone connected", || {
        [&publisher, &all, &vp8, &own]
            .iter()
            .all(|c| c.connected.load(Ordering::Acquire))
    })
    .await?;
    // The test publisher cannot read PLI: it sends a keyframe every so often until one is
    // through (the client stack keeps a track's first packet to itself).
    let keyframed = |packets: &[voiceflow_media::testing::simulcast::VideoPacket]| {
        packets.iter().filter(|p| p.keyframe).count()
    };
    for _ in 0..50 {
        let packets = all.seen.packets("camera-1");
        if packets.len() > 20 && keyframed(&packets) >= 1 {
            break;
        }
        publisher.keyframe.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let packets = all.seen.packets("camera-1");
    let c = h.channel.counters();
    ensure!(
        packets.len() > 20,
        "{mime} frames at the subscriber: {} (received {}, forwarded {}, dropped {}, keyframe requests {}; sent {:?})",
        packets.len(),
        c.received.load(Ordering::Relaxed),
        c.forwarded.load(Ordering::Relaxed),
        c.dropped.load(Ordering::Relaxed),
        c.keyframe_requests.load(Ordering::Relaxed),
        publisher_wire
            .sent
            .lock()
            .iter()
            .take(3)
            .collect::<Vec<_>>(),
    );
    ensure!(
        packets.iter().all(|p| p.pt == server_pt),
        "every packet under the subscriber's payload type {server_pt}: {:?}",
        packets
            .iter()
            .map(|p| p.pt)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let key = packets.iter().find(|p| p.keyframe).copied();
    ensure!(
        key.is_some_and(|k| k.first == descriptor_key),
        "a keyframe as the SFU tells them: {key:?}"
    );
    ensure!(
        all.video_from("camera-1").1 >= 1,
        "counted as a keyframe by the client"
    );
    // Delta frames between keyframes, each frame's packets under one timestamp.
    ensure!(packets.iter().any(|p| !p.keyframe));
    eventually(
        "the camera at the subscriber with a camera of its own",
        || own.video_from("camera-1").0 > 20,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        vp8.video_from("camera-1") == (0, 0),
        "a VP8-only subscriber is sent no {mime}: {:?}",
        vp8.video_from("camera-1")
    );
    let dropped = h.channel.counters().dropped.load(Ordering::Relaxed);
    ensure!(
        dropped > 10,
        "and each packet it is not sent is counted: {dropped}"
    );
    for c in [&publisher, &all, &vp8, &own] {
        c.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp9_camera_reaches_subscribers_under_their_payload_type() -> Result<()> {
    // B (start of frame), P clear: a VP9 keyframe.
    a_camera_in("video/VP9", 98, 0x08).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_av1_camera_reaches_subscribers_under_their_payload_type() -> Result<()> {
    // The aggregation header's N (new coded video sequence), W = 1.
    a_camera_in("video/AV1", 45, 0x18).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_camera_reaches_subscribers_under_their_payload_type() -> Result<()> {
    // An IDR slice's NAL header.
    a_camera_in("video/H264", 102, 0x65).await
}
