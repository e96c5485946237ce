//! RTX (RFC 4588) through the SFU with real WebRTC peers (the `webrtc` crate, on loopback):
//! a subscriber that negotiated RTX gets its NACKed packets on the RTX stream the server's
//! offer announced (its own numbers, the original sequence number first), one that did not
//! gets them on the media stream as before; a publisher's retransmission on its RTX stream
//! (`webrtc-rs`'s NACK responder answering the SFU's NACK of a packet lost on the wire)
//! reaches the subscriber as the original packet, and padding-only probes, RTX the SFU cannot
//! map back and repairs of packets it already has are dropped and counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use voiceflow_media::engine::vp8_codec;
use voiceflow_media::testing::codecs::Options;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{DropReason, MediaConfig, MediaPlane, Rights};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..200 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

fn video() -> Rights {
    Rights {
        video: true,
        ..Rights::default()
    }
}

/// A NACK of `seq` on the leg `ssrc`.
fn nack(ssrc: u32, seq: u16) -> Box<dyn rtc::rtcp::Packet> {
    Box::new(TransportLayerNack {
        sender_ssrc: 0,
        media_ssrc: ssrc,
        nacks: vec![NackPair {
            packet_id: seq,
            lost_packets: 0,
        }],
    })
}

/// The RTX stream `sdp` groups with `ssrc` (`a=ssrc-group:FID <ssrc> <rtx>`).
fn fid(sdp: &str, ssrc: u32) -> Option<u32> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=ssrc-group:FID ")?;
        let (media, rtx) = rest.split_once(' ')?;
        (media.parse::<u32>().ok()? == ssrc).then(|| rtx.trim().parse().ok())?
    })
}

/// The RTX payload type `sdp` gives the payload type `apt`.
fn rtx_pt(sdp: &str, apt: u8) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (pt, params) = l.trim().strip_prefix("a=fmtp:")?.split_once(' ')?;
        (params.trim() == format!("apt={apt}")).then(|| pt.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_is_answered_on_the_legs_rtx_stream_when_negotiated() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let h = Harness::start(&plane);
    let publisher = Client::with_camera(1).await?;
    let offer = publisher.offer().await?;
    h.clients.lock().insert(1, publisher.clone());
    let answer = h.channel.join(1, offer, video()).await?;
    publisher.accept(answer).await?;
    // With a camera of its own (not sent): its offer negotiated video and RTX already.
    let (with_rtx, rtx_wire) = Client::with_options(
        2,
        Options {
            rtx: true,
            camera: Some(vp8_codec()),
            ..Options::default()
        },
    )
    .await?;
    let with_rtx = h.join_client(with_rtx, Rights::default()).await?;
    let (plain, plain_wire) = Client::with_options(3, Options::default()).await?;
    let plain = h.join_client(plain, Rights::default()).await?;
    publisher.send_video();
    eventually("camera frames at both subscribers", || {
        with_rtx.seen.packets("camera-1").len() > 30 && plain.seen.packets("camera-1").len() > 30
    })
    .await?;

    // The server's offer announced the leg's RTX stream, and the answer kept it.
    let last = *with_rtx
        .seen
        .packets("camera-1")
        .last()
        .context("packets")?;
    let offered = with_rtx
        .pc
        .remote_description()
        .await
        .context("the server's offer")?
        .sdp;
    let rtx_ssrc = fid(&offered, last.ssrc).context("an a=ssrc-group:FID for the leg")?;
    let pt = rtx_pt(&offered, last.pt).context("an RTX format for VP8")?;
    let counters = h.channel.counters();
    let retransmitted = counters.retransmitted.load(Ordering::Relaxed);
    let (first, second) = (last.seq.wrapping_sub(5), last.seq.wrapping_sub(3));
    with_rtx
        .seen
        .send_rtcp("camera-1", vec![nack(last.ssrc, first)])
        .await?;
    let on_rtx = |osn: u16| {
        rtx_wire
            .received
            .lock()
            .iter()
            .find(|c| c.ssrc == rtx_ssrc && c.osn == Some(osn))
            .copied()
    };
    eventually("the NACKed packet on the RTX stream", || {
        on_rtx(first).is_some()
    })
    .await?;
    with_rtx
        .seen
        .send_rtcp("camera-1", vec![nack(last.ssrc, second)])
        .await?;
    eventually("the second one too", || on_rtx(second).is_some()).await?;
    let (a, b) = (
        on_rtx(first).context("first")?,
        on_rtx(second).context("second")?,
    );
    ensure!(
        a.pt == pt && b.pt == pt,
        "the leg's RTX payload type {pt}: {a:?} {b:?}"
    );
    ensure!(
        b.seq == a.seq.wrapping_add(1),
        "the RTX stream's own numbers: {a:?} {b:?}"
    );
    // The client unwrapped it: the original number twice on the track (the original, then
    // the repair), the same payload size.
    let twice = with_rtx
        .seen
        .packets("camera-1")
        .iter()
        .filter(|p| p.seq == first)
        .count();
    ensure!(twice == 2, "the repaired packet reached the track: {twice}");
    ensure!(counters.retransmitted.load(Ordering::Relaxed) >= retransmitted + 2);

    // Without RTX in its answer: the packet again on the media stream, as before.
    let answered = plain
        .pc
        .local_description()
        .await
        .context("its answer")?
        .sdp;
    ensure!(
        !answered.contains("rtx/90000"),
        "no RTX negotiated: {answered}"
    );
    let last = *plain.seen.packets("camera-1").last().context("packets")?;
    let before = counters.retransmitted.load(Ordering::Relaxed);
    plain
        .seen
        .send_rtcp("camera-1", vec![nack(last.ssrc, last.seq.wrapping_sub(5))])
        .await?;
    eventually("a retransmission", || {
        counters.retransmitted.load(Ordering::Relaxed) > before
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elsewhere = plain_wire
        .received
        .lock()
        .iter()
        .filter(|c| c.pt != last.pt && c.pt != 111)
        .count();
    ensure!(elsewhere == 0, "nothing but VP8 and Opus: {elsewhere}");
    for c in [&publisher, &with_rtx, &plain] {
        c.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_rtx_repairs_a_lost_packet_and_probes_are_dropped() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let h = Harness::start(&plane);
    let (publisher, wire) = Client::with_options(
        1,
        Options {
            rtx: true,
            camera: Some(vp8_codec()),
            ..Options::default()
        },
    )
    .await?;
    let offer = publisher.offer().await?;
    ensure!(
        offer.contains("a=ssrc-group:FID"),
        "the publisher announces its RTX stream: {offer}"
    );
    h.clients.lock().insert(1, publisher.clone());
    let answer = h.channel.join(1, offer, video()).await?;
    ensure!(
        answer.contains("rtx/90000"),
        "the server takes RTX: {answer}"
    );
    publisher.accept(answer).await?;
    let subscriber = h.join(2, Rights::default()).await?;
    publisher.send_video();
    let packets = || subscriber.seen.packets("camera-1");
    eventually("camera frames at the subscriber", || packets().len() > 20).await?;
    let (rtx, rtx_pt) = wire.rtx().context("the camera's RTX stream is bound")?;
    let camera = publisher.camera_ssrc().context("a camera")?;

    // A packet lost on the wire: the SFU NACKs it, the publisher's NACK responder sends it
    // on the RTX stream, and it reaches the subscriber under its own number.
    wire.lose_next(camera);
    eventually("a packet lost", || !wire.dropped.lock().is_empty()).await?;
    let lost = wire.dropped.lock()[0];
    let counters = h.channel.counters();
    eventually("the repair at the subscriber", || {
        packets().iter().any(|p| p.seq == lost)
    })
    .await?;
    ensure!(counters.nacks_sent.load(Ordering::Relaxed) >= 1);
    let repair = wire
        .sent
        .lock()
        .iter()
        .find(|c| c.ssrc == rtx && c.osn == Some(lost))
        .copied();
    ensure!(
        repair.is_some_and(|r| r.pt == rtx_pt),
        "sent on the RTX stream: {repair:?}"
    );
    let order: Vec<u16> = packets().iter().map(|p| p.seq).collect();
    let at = |seq: u16| order.iter().position(|s| *s == seq);
    ensure!(
        at(lost) > at(lost.wrapping_add(1)),
        "the repair came after the packet that followed it: {order:?}"
    );

    // Probes and RTX the SFU cannot use: dropped, counted, never forwarded.
    let stats = plane.stats();
    let before = DropReason::ALL.map(|r| stats.dropped(r));
    let next = wire.next_rtx_seq();
    let rtx_packet = |seq: u16, ssrc: u32, padding: bool, payload: &[u8]| rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            padding,
            payload_type: rtx_pt,
            sequence_number: next.wrapping_add(seq),
            timestamp: 0,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    };
    let mut osn_only = lost.to_be_bytes().to_vec();
    let mut duplicate = osn_only.clone();
    duplicate.extend_from_slice(&[0x00; 100]);
    let mut stranger = osn_only.clone();
    stranger.extend_from_slice(&[0x00; 100]);
    osn_only.truncate(2);
    wire.inject.lock().extend([
        // Chrome's bandwidth probes: padding only.
        rtx_packet(0, rtx, true, &[]),
        rtx_packet(1, rtx, true, &[]),
        rtx_packet(2, rtx, true, &[]),
        // Nothing after the original sequence number.
        rtx_packet(3, rtx, false, &osn_only),
        // Shorter than a sequence number.
        rtx_packet(4, rtx, false, &[0x01]),
        // A repair of a packet the SFU has.
        rtx_packet(5, rtx, false, &duplicate),
        // An RTX stream nobody announced.
        rtx_packet(0, rtx ^ 0x5a5a, false, &stranger),
    ]);
    let count = |r: DropReason| stats.dropped(r) - before[r as usize];
    eventually("each dropped for its reason", || {
        count(DropReason::RtxPadding) >= 4
            && count(DropReason::RtxInvalid) >= 2
            && count(DropReason::RtxDuplicate) >= 1
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let copies = packets().iter().filter(|p| p.seq == lost).count();
    ensure!(
        copies == 1,
        "the duplicate repair was not forwarded: {copies}"
    );
    ensure!(
        count(DropReason::Rejected) == 0,
        "every injected packet authenticated"
    );
    publisher.close().await?;
    subscriber.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_layers_rtx_is_named_by_its_repaired_rid() -> Result<()> {
    use voiceflow_media::engine::{MID_URI, REPAIRED_RID_URI};
    use voiceflow_media::testing::simulcast::{offered, video_mid};
    use voiceflow_media::{Layer, Track};

    let plane = MediaPlane::new(MediaConfig {
        keyframe_interval: Duration::from_millis(200),
        ..MediaConfig::default()
    });
    let h = Harness::start(&plane);
    let (publisher, camera, wire) = Client::with_simulcast_camera_and_wire(
        1,
        Options {
            rtx: true,
            ..Options::default()
        },
    )
    .await?;
    let offer = publisher.offer().await?;
    // Like a browser's: no a=ssrc lines for simulcast layers, so no FID group either.
    ensure!(!offer.contains("a=ssrc-group:FID"), "{offer}");
    let (mid_id, rrid_id, mid) = (
        offered(&offer, MID_URI).context("a MID extension")?,
        offered(&offer, REPAIRED_RID_URI).context("a repaired-RID extension")?,
        video_mid(&offer).context("a video MID")?,
    );
    h.clients.lock().insert(1, publisher.clone());
    let answer = h.channel.join(1, offer.clone(), video()).await?;
    ensure!(answer.contains(REPAIRED_RID_URI), "{answer}");
    publisher.accept(answer).await?;
    let subscriber = h.join(2, Rights::default()).await?;
    camera.keyframe_every.store(300, Ordering::Relaxed);
    camera.send(&publisher, &offer);
    h.channel.set_layer(2, 1, Track::Camera, Layer::Low).await?;
    let packets = || subscriber.seen.packets("camera-1");
    for _ in 0..100 {
        if packets().iter().filter(|p| p.layer == 0).count() > 20 {
            break;
        }
        camera.keyframe[0].store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        packets().last().is_some_and(|p| p.layer == 0),
        "the leg on the low layer"
    );
    let (_, rtx_pt) = wire.rtx().context("an RTX format")?;

    // Lose a low-layer packet; repair it from a stream no offer line names, as a browser
    // does: its MID and the layer's repaired RID in the header.
    let low = camera.ssrc(0).context("the low layer")?;
    wire.lose_next(low);
    eventually("a packet lost", || !wire.dropped.lock().is_empty()).await?;
    let lost = wire.dropped.lock()[0];
    let before = packets().len();
    let mut header = rtc::rtp::Header {
        version: 2,
        payload_type: rtx_pt,
        sequence_number: 7,
        timestamp: 0,
        ssrc: rand::random(),
        ..Default::default()
    };
    header.set_extension(mid_id, Bytes::from(mid.clone()))?;
    header.set_extension(rrid_id, Bytes::from_static(b"q"))?;
    // The OSN, then the test camera's low-layer delta frame.
    let mut payload = lost.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0x10, 0x01, 0x00]);
    payload.extend_from_slice(&[0xab; 1000]);
    wire.inject.lock().push_back(rtc::rtp::Packet {
        header,
        payload: Bytes::from(payload),
    });
    // The leg's numbers since it settled on the low layer have no hole once the repair is
    // in (the leg renumbers the layer, so its own numbers are what to look at).
    let whole = || {
        let packets = packets();
        let start = packets
            .iter()
            .rposition(|p| p.layer != 0)
            .map_or(0, |i| i + 1);
        let mut seqs: Vec<u16> = packets[start..].iter().map(|p| p.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.len() > 20 && seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
    };
    eventually("the repair at the subscriber", || {
        whole() && packets().len() > before + 10
    })
    .await?;
    ensure!(
        plane.stats().dropped(DropReason::RtxInvalid) >= 1,
        "the NACK responder's own repair (no repaired RID, no FID) is not taken"
    );
    publisher.close().await?;
    subscriber.close().await?;
    Ok(())
}
