//! SFU video benchmark: one room of camera publishers and subscribers, all real WebRTC peers
//! on loopback in this process (the server's media loop on its own thread, `sfu`, as in a
//! node). Publishers send VP8-shaped RTP (a keyframe when the SFU asks: the test peers
//! cannot read RTCP, so every keyframe request counted by the channel makes them all send
//! one); after everyone is connected the publishers' cameras are published at once and the
//! time from that to each subscriber's first keyframe of each publisher is measured (what a
//! viewer waits for before the first decodable frame), then forwarding for `secs`.
//!
//! `cargo run --release -p voiceflow-media --bin sfubench_video -- rooms=1 publishers=4 subscribers=20 secs=10 packets=4`
//! (`packets`: RTP packets of ~1 kB per frame at 30 frames/s, 4 ≈ 1 Mbit/s per publisher).
//!
//! `settle=N`: the forwarding figures start N seconds after the last first frame.
//!
//! `simulcast=3`: every publisher sends three layers (RIDs q/h/f; 1, 2 and 3 packets per
//! frame), and subscriber `i` asks every publisher for layer `i % 3` (low, medium, high), so
//! the SFU forwards one layer per leg and keeps the others; `packets` is then unused.
//!
//! `codec=vp8|vp9|h264|av1` (default vp8, without simulcast): the publishers' camera codec
//! (its keyframes and payload descriptors; the SFU's work per packet does not depend on it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use voiceflow_media::engine::video_codec;
use voiceflow_media::testing::codecs::Options;
use voiceflow_media::testing::procfs::thread_cpu_secs;
use voiceflow_media::testing::simulcast::SimulcastCamera;
use voiceflow_media::testing::{Client, Harness};
use voiceflow_media::{Layer, MediaConfig, MediaPlane, Rights, Track};

fn arg_str(name: &str, default: &str) -> String {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (k, v) = a.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
        .next()
        .unwrap_or_else(|| default.to_owned())
}

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (k, v) = a.split_once('=')?;
            (k == name).then(|| v.parse().ok())?
        })
        .next()
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rooms, publishers, subscribers) = (
        arg("rooms", 1) as usize,
        arg("publishers", 4),
        arg("subscribers", 20),
    );
    let (secs, packets) = (arg("secs", 10), arg("packets", 4) as u32);
    let simulcast = arg("simulcast", 1) >= 2;
    let codec = video_codec(&format!("video/{}", arg_str("codec", "vp8")));
    if codec.mime_type.is_empty() {
        return Err("codec: vp8, vp9, h264 or av1".into());
    }
    let mut cameras: Vec<Arc<SimulcastCamera>> = Vec::new();
    let plane = MediaPlane::new(MediaConfig::default());
    let mut all = Vec::new();
    for r in 0..rooms as u64 {
        let h = Harness::start(&plane);
        let base = r * 10_000 + 1;
        let mut pubs = Vec::new();
        let mut offers = Vec::new();
        for id in base..base + publishers {
            let client = if simulcast {
                let (client, camera) = Client::with_simulcast_camera(id).await?;
                // Keyframes when asked (and every 10 s), as a browser's encoder.
                camera.keyframe_every.store(300, Ordering::Relaxed);
                cameras.push(camera);
                client
            } else {
                let options = Options {
                    camera: Some(codec.clone()),
                    ..Options::default()
                };
                Client::with_options(id, options).await?.0
            };
            client
                .video_packets
                .store(packets, std::sync::atomic::Ordering::Relaxed);
            let offer = client.offer().await?;
            h.clients.lock().insert(id, client.clone());
            let answer = h.channel.join(id, offer.clone(), Rights::default()).await?;
            client.accept(answer).await?;
            pubs.push(client);
            offers.push(offer);
        }
        let mut subs = Vec::new();
        for (i, id) in (base + publishers..base + publishers + subscribers).enumerate() {
            subs.push(h.join(id, Rights::default()).await?);
            if simulcast {
                let layer = [Layer::Low, Layer::Medium, Layer::High][i % 3];
                for p in base..base + publishers {
                    h.channel.set_layer(id, p, Track::Camera, layer).await?;
                }
            }
        }
        h.channel.sync().await;
        if simulcast {
            let first = cameras.len() - pubs.len();
            for ((p, offer), camera) in pubs.iter().zip(&offers).zip(&cameras[first..]) {
                camera.send(p, offer);
            }
        }
        all.push((h, pubs, subs));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all.iter().all(|(_, p, s)| {
        p.iter()
            .chain(s.iter())
            .all(|c| c.connected.load(Ordering::Acquire))
    }) {
        if Instant::now() > deadline {
            return Err("not everyone connected within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !simulcast {
        for (_, pubs, _) in &all {
            for p in pubs {
                p.send_video();
            }
        }
    }
    // Stand-in for the publishers' encoders answering PLI.
    let channels: Vec<_> = all
        .iter()
        .map(|(h, p, _)| (h.channel.clone(), p.clone()))
        .collect();
    let layers = cameras.clone();
    let pli = tokio::spawn(async move {
        let mut seen = vec![0u64; channels.len()];
        loop {
            for (i, (channel, pubs)) in channels.iter().enumerate() {
                let now = channel.counters().keyframe_requests.load(Ordering::Relaxed);
                if now > seen[i] {
                    seen[i] = now;
                    for p in pubs {
                        p.keyframe.store(true, Ordering::Relaxed);
                    }
                    for camera in &layers {
                        for k in &camera.keyframe {
                            k.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    // Publish every camera at once; time to each subscriber's first keyframe per publisher.
    let published = Instant::now();
    for (h, pubs, _) in &all {
        for p in pubs {
            let video = Rights {
                video: true,
                ..Rights::default()
            };
            h.channel.set_rights(p.id, video).await?;
        }
    }
    let mut waits: Vec<f64> = Vec::new();
    let mut pending: Vec<(Arc<Client>, String)> = all
        .iter()
        .flat_map(|(_, pubs, subs)| {
            subs.iter().flat_map(move |s| {
                pubs.iter()
                    .map(move |p| (s.clone(), format!("camera-{}", p.id)))
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(s, track)| {
            if s.video_from(track).1 > 0 {
                waits.push(published.elapsed().as_secs_f64() * 1000.0);
                false
            } else {
                true
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    waits.sort_by(f64::total_cmp);
    // Measured from `settle` seconds after the first frames (legs moving to their layer).
    tokio::time::sleep(Duration::from_secs(arg("settle", 0))).await;

    let counters = |f: fn(&voiceflow_media::sfu::Counters) -> u64| {
        all.iter()
            .map(|(h, _, _)| f(h.channel.counters()))
            .sum::<u64>()
    };
    let (cpu0, fwd0, bytes0, pli0) = (
        thread_cpu_secs("sfu"),
        counters(|c| c.forwarded.load(Ordering::Relaxed)),
        counters(|c| c.forwarded_bytes.load(Ordering::Relaxed)),
        counters(|c| c.keyframe_requests.load(Ordering::Relaxed)),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu, fwd, bytes, plis) = (
        thread_cpu_secs("sfu") - cpu0,
        counters(|c| c.forwarded.load(Ordering::Relaxed)) - fwd0,
        counters(|c| c.forwarded_bytes.load(Ordering::Relaxed)) - bytes0,
        counters(|c| c.keyframe_requests.load(Ordering::Relaxed)) - pli0,
    );
    pli.abort();
    // Which layer each leg ended on (the layer byte of its last packet).
    let mut at = [0usize; 4];
    if simulcast {
        for (_, pubs, subs) in &all {
            for s in subs {
                for p in pubs {
                    let last = s.seen.packets(&format!("camera-{}", p.id)).last().copied();
                    at[last.map_or(3, |l| usize::from(l.layer).min(3))] += 1;
                }
            }
        }
    }
    let secs = secs as f64;
    if simulcast {
        println!(
            "rooms={rooms} publishers={publishers} subscribers={subscribers} simulcast=3 \
             (1/2/3 packets per frame in layers q/h/f; subscribers spread over the layers); \
             legs at q/h/f at the end: {}/{}/{} ({} with nothing)",
            at[0], at[1], at[2], at[3]
        );
    } else {
        println!(
            "rooms={rooms} publishers={publishers} subscribers={subscribers} packets/frame={packets} codec={} (no simulcast)",
            codec.mime_type
        );
    }
    println!(
        "first keyframe after publishing: {} of {} pairs, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        waits.len(),
        waits.len() + pending.len(),
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(0.0)
    );
    println!(
        "forwarded {:.0} packets/s, {:.1} Mbit/s of payload; SFU loop CPU {:.0}% of a core; \
         {:.0} packets and {:.1} Mbit per loop core-second; keyframe requests {:.2}/s",
        fwd as f64 / secs,
        bytes as f64 * 8.0 / secs / 1e6,
        cpu / secs * 100.0,
        fwd as f64 / cpu.max(1e-9),
        bytes as f64 * 8.0 / cpu.max(1e-9) / 1e6,
        plis as f64 / secs
    );
    Ok(())
}
