//! `media_threads = 2`: channels sharded across two media loops that share the one UDP port
//! (one receiving thread hands each datagram to the loop owning its participant). Every
//! channel's participants hear each other and only each other, whichever loop it landed on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use voiceflow_media::testing::Harness;
use voiceflow_media::{MediaConfig, MediaPlane, Rights};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_two_media_threads_share_one_port() -> Result<()> {
    let plane = MediaPlane::new(MediaConfig {
        media_threads: 2,
        ..MediaConfig::default()
    });
    let port = plane.start()?.port();
    // Channel keys are consecutive: four channels land two on each loop.
    let mut rooms = Vec::new();
    for room in 0..4u64 {
        let h = Harness::start(&plane);
        let mut clients = Vec::new();
        for n in 1..=3u64 {
            let id = room * 10 + n;
            let client = h.join(id, Rights::default()).await?;
            client.level.store(30, Ordering::Relaxed);
            client.speak();
            clients.push(client);
        }
        rooms.push((h, clients));
    }
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let heard = rooms.iter().all(|(_, clients)| {
            clients.iter().all(|c| {
                clients
                    .iter()
                    .filter(|p| p.id != c.id)
                    .all(|p| c.from(p.id) > 10)
            })
        });
        if heard {
            break;
        }
        if std::time::Instant::now() > until {
            let matrix: Vec<Vec<u32>> = rooms
                .iter()
                .flat_map(|(_, cs)| cs.iter().map(|c| cs.iter().map(|p| c.from(p.id)).collect()))
                .collect();
            bail!("not everyone hears their channel: {matrix:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nobody hears another channel.
    for (i, (_, clients)) in rooms.iter().enumerate() {
        for (j, (_, others)) in rooms.iter().enumerate() {
            if i == j {
                continue;
            }
            for c in clients {
                assert!(
                    others.iter().all(|o| c.from(o.id) == 0),
                    "{} heard room {j}",
                    c.id
                );
            }
        }
    }
    for (_, clients) in &rooms {
        for c in clients {
            let answer =
                c.pc.remote_description()
                    .await
                    .map(|d| d.sdp)
                    .unwrap_or_default();
            assert!(answer.contains(&format!(" {port} typ host")), "{answer}");
        }
    }
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 12);
    for (h, clients) in &rooms {
        h.channel.close().await;
        for c in clients {
            c.close().await?;
        }
    }
    assert_eq!(plane.stats().peers.load(Ordering::Relaxed), 0);
    Ok(())
}
