//! The measurements, each over the public protocol of a running node: latencies into
//! histograms, printed as one table by `main.rs`.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::json;

use crate::client::{Node, Ws};
use crate::seed::Seeded;

/// One row of the table.
pub struct Row {
    pub what: String,
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub note: String,
}

/// Latencies in microseconds.
pub struct Timer(Histogram<u64>);

impl Timer {
    pub fn new() -> Result<Timer> {
        Ok(Timer(Histogram::new_with_bounds(1, 600_000_000, 3)?))
    }

    pub fn record(&mut self, d: Duration) -> Result<()> {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.record(us.min(600_000_000))?;
        Ok(())
    }

    pub fn row(&self, what: &str, note: String) -> Row {
        let ms = |us: u64| us as f64 / 1000.0;
        Row {
            what: what.into(),
            samples: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.5)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
            note,
        }
    }
}

/// A cheap deterministic sequence (xorshift) for picking pages and prefixes.
pub struct Pick(u64);

impl Pick {
    pub fn new() -> Pick {
        Pick(0x9e37_79b9_7f4a_7c15)
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Times `n` GETs of `path(i)` as `token`, each must answer 200.
async fn gets(
    node: &Node,
    token: &str,
    n: usize,
    mut path: impl FnMut(usize) -> String,
) -> Result<(Timer, usize)> {
    let mut timer = Timer::new()?;
    let mut items = 0;
    for i in 0..n {
        let path = path(i);
        let started = Instant::now();
        let (status, body) = node.call(Method::GET, &path, Some(token), None).await?;
        timer.record(started.elapsed())?;
        anyhow::ensure!(status == 200, "{path}: {status} {body}");
        items += body["data"].as_array().map_or(0, Vec::len)
            + body["data"]["channels"].as_array().map_or(0, Vec::len);
    }
    Ok((timer, items))
}

/// Member pages from random places, and prefix searches of two and three letters.
pub async fn member_lists(node: &Node, seeded: &Seeded, token: &str, n: usize) -> Result<Vec<Row>> {
    let c = seeded.community;
    let mut pick = Pick::new();
    let ids = &seeded.user_ids;
    let (page, items) = gets(node, token, n, |_| {
        let after = ids[pick.below(ids.len())];
        format!("/communities/{c}/members?after={after}&limit=100")
    })
    .await?;
    let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ba", "de"];
    let mut pick = Pick::new();
    let (search, found) = gets(node, token, n, |i| {
        let s = syllables[pick.below(syllables.len())];
        let prefix = match i % 2 {
            0 => s.to_owned(),
            _ => format!("{s}{}", &syllables[pick.below(syllables.len())][..1]),
        };
        format!("/communities/{c}/members?prefix={prefix}&limit=50")
    })
    .await?;
    Ok(vec![
        page.row(
            "GET members page (limit 100, random after)",
            format!("{:.0} members/page", items as f64 / n as f64),
        ),
        search.row(
            "GET members ?prefix= (2-3 letters, limit 50)",
            format!("{:.0} members/page", found as f64 / n as f64),
        ),
    ])
}

/// `GET /communities/:id/channels` as a member with three roles.
pub async fn channel_list(node: &Node, seeded: &Seeded, token: &str, n: usize) -> Result<Row> {
    let c = seeded.community;
    let (timer, items) = gets(node, token, n, |_| format!("/communities/{c}/channels")).await?;
    Ok(timer.row(
        "GET channels (member with 3 roles)",
        format!(
            "{} of {} channels visible",
            items / n,
            seeded.channels.len()
        ),
    ))
}

/// First `room:join` of each big channel (its room holds every member) and of as many small
/// ones: the room actor's start. Each on a connection of its own, closed after the ack, so a
/// flood of events one start causes does not weigh on the next.
pub async fn room_starts(node: &Node, seeded: &Seeded, token: &str) -> Result<Vec<Row>> {
    let mut big = Timer::new()?;
    for room in &seeded.big {
        let mut ws = Ws::connect(&node.addr, token).await?;
        let started = Instant::now();
        let ack = ws
            .request("room:join", json!({"roomId": room, "members": false}))
            .await?;
        big.record(started.elapsed())?;
        eprintln!(
            "first join of big channel {room}: {:.1?}",
            started.elapsed()
        );
        ack.map_err(|code| anyhow!("join {room}: {code}"))?;
    }
    let mut small = Timer::new()?;
    let smalls = seeded
        .channels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 1)
        .map(|(_, c)| c)
        .take(seeded.big.len().max(5));
    for room in smalls {
        let mut ws = Ws::connect(&node.addr, token).await?;
        let started = Instant::now();
        let ack = ws
            .request("room:join", json!({"roomId": room, "members": false}))
            .await?;
        small.record(started.elapsed())?;
        ack.map_err(|code| anyhow!("join {room}: {code}"))?;
    }
    let members = seeded.user_ids.len() - 1;
    Ok(vec![
        big.row(
            "first room:join, channel room of all members",
            format!("{members} room members"),
        ),
        small.row("first room:join, channel room of 1 member", String::new()),
    ])
}

/// `message:send` acks in a running channel, and the permission reads they caused.
pub async fn sends(node: &Node, ws: &mut Ws, room: &str, n: usize) -> Result<Row> {
    // The first send reads the member's grants once.
    let warm = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "warm-up"}),
        )
        .await?;
    warm.map_err(|code| anyhow!("warm-up send: {code}"))?;
    let reads_before = node
        .counter("voiceflow_channel_permission_reads_total")
        .await?;
    let mut timer = Timer::new()?;
    for i in 0..n {
        let started = Instant::now();
        let ack = ws
            .request(
                "message:send",
                json!({"roomId": room, "content": format!("m{i}"), "nonce": format!("n{i}")}),
            )
            .await?;
        timer.record(started.elapsed())?;
        ack.map_err(|code| anyhow!("send {i}: {code}"))?;
    }
    let reads = node
        .counter("voiceflow_channel_permission_reads_total")
        .await?
        - reads_before;
    Ok(timer.row(
        "message:send ack (channel)",
        format!("{reads:.0} permission storage reads in {n} sends"),
    ))
}

/// `PATCH` of the `speakers` role (taking `send_messages` away, then giving it back), and
/// how long until the running channel refuses (then accepts) the member's next post.
pub async fn role_changes(
    node: &Node,
    seeded: &Seeded,
    owner: &str,
    ws: &mut Ws,
    room: &str,
    n: usize,
) -> Result<Vec<Row>> {
    let path = format!(
        "/communities/{}/roles/{}",
        seeded.community, seeded.speakers
    );
    let (mut patch, mut enforced) = (Timer::new()?, Timer::new()?);
    for i in 0..n {
        let revoke = i % 2 == 0;
        let permissions = match revoke {
            true => json!([]),
            false => json!(["send_messages"]),
        };
        let started = Instant::now();
        let (status, body) = node
            .call(
                Method::PATCH,
                &path,
                Some(owner),
                Some(json!({"permissions": permissions})),
            )
            .await?;
        patch.record(started.elapsed())?;
        anyhow::ensure!(status == 200, "PATCH role: {status} {body}");
        // Post until the channel agrees with the change.
        let mut tries = 0u32;
        loop {
            let ack = ws
                .request(
                    "message:send",
                    json!({"roomId": room, "content": format!("probe {i} {tries}")}),
                )
                .await?;
            match (revoke, ack) {
                (true, Err(code)) if code == "FORBIDDEN" => break,
                (false, Ok(_)) => break,
                (_, Ok(_) | Err(_)) => {}
            }
            tries += 1;
            anyhow::ensure!(tries < 10_000, "the change never reached the channel");
        }
        enforced.record(started.elapsed())?;
    }
    Ok(vec![
        patch.row("PATCH role permissions", String::new()),
        enforced.row(
            "role change -> running channel enforces it",
            "from PATCH sent to the first post answered accordingly".into(),
        ),
    ])
}
