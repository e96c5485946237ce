//! Video through the SFU with real WebRTC peers (the `webrtc` crate, on loopback): a
//! publisher's VP8 camera frames reach a subscriber on a track of their own once the
//! publisher may publish, the subscriber's new leg makes the SFU ask the publisher for a
//! keyframe, pausing stops the frames and resuming brings them back with another keyframe
//! request, and the publisher's bitrate cap is in the descriptions it gets.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{MediaConfig, MediaPlane, Rights, Track};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..200 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_frames_reach_a_subscriber_until_it_pauses_them() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        video_max_kbps: 900,
        ..MediaConfig::default()
    });
    let h = Harness::start(&plane);
    let publisher = Client::with_camera(1).await?;
    let offer = publisher.offer().await?;
    h.clients.lock().insert(1, publisher.clone());
    let answer = h.channel.join(1, offer, Rights::default()).await?;
    assert!(
        answer.contains("b=AS:900"),
        "the camera's section is capped: {answer}"
    );
    publisher.accept(answer).await?;
    let subscriber = h.join(2, Rights::default()).await?;
    publisher.send_video();
    eventually("both connected", || {
        publisher.connected.load(Ordering::Acquire) && subscriber.connected.load(Ordering::Acquire)
    })
    .await?;
    // Not published yet: no video track, nothing forwarded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subscriber.video_from("camera-1"), (0, 0));

    h.channel
        .set_rights(
            1,
            Rights {
                video: true,
                ..Rights::default()
            },
        )
        .await?;
    let counters = h.channel.counters();
    eventually("a keyframe request for the new leg", || {
        counters.keyframe_requests.load(Ordering::Relaxed) >= 1
    })
    .await?;
    // The test publisher cannot read PLI (the client stack keeps RTCP to its interceptors):
    // it sends the keyframe the request asked for.
    publisher.keyframe.store(true, Ordering::Relaxed);
    eventually("camera frames and a keyframe at the subscriber", || {
        let (packets, keyframes) = subscriber.video_from("camera-1");
        packets > 20 && keyframes >= 1
    })
    .await?;
    assert_eq!(publisher.video_from("camera-1"), (0, 0), "not to itself");

    h.channel.subscribe(2, 1, Track::Camera, true).await?;
    // What was in flight lands; then nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paused = subscriber.video_from("camera-1").0;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(subscriber.video_from("camera-1").0, paused, "paused");

    let before = counters.keyframe_requests.load(Ordering::Relaxed);
    h.channel.subscribe(2, 1, Track::Camera, false).await?;
    eventually("a keyframe request on resuming", || {
        counters.keyframe_requests.load(Ordering::Relaxed) > before
    })
    .await?;
    eventually("frames again", || {
        subscriber.video_from("camera-1").0 > paused + 10
    })
    .await?;
    assert!(
        h.channel
            .subscribe(2, 9, Track::Camera, true)
            .await
            .is_err(),
        "no such publisher"
    );

    // Unpublished: the leg goes, frames stop.
    h.channel.set_rights(1, Rights::default()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = subscriber.video_from("camera-1").0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(subscriber.video_from("camera-1").0, stopped, "unpublished");
    publisher.close().await?;
    subscriber.close().await?;
    Ok(())
}
