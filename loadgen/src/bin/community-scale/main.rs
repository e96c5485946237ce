//! `community-scale`: a community of `--members` (100,000) users and `--channels` (500)
//! channels, measured through a real node.
//!
//! It seeds the community straight into the embedded store of `--dir`/data (users with one
//! password, one member in ten holding roles, one channel in ten private to a role, one in
//! five with an override, and `--big` (5) channels whose room has every member as a member,
//! as if all had used them), unless `--dir` was seeded before. Then it starts `--node-bin`
//! on that data dir and measures over HTTP and WebSocket, as a member holding three roles:
//! member pages and prefix searches, the channel list, the first `room:join` of big and of
//! small channels (the room's start), `message:send` acks (and the channel's permission
//! reads from storage meanwhile, from `/metrics`), a role's `PATCH` and the time until a
//! running channel enforces it, and the node's RSS when started and at the end. Prints one
//! table on stdout; progress goes to stderr.

mod client;
mod measure;
mod seed;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::client::{Node, Ws};
use crate::measure::Row;

#[derive(Parser)]
struct Args {
    /// Working directory: `data/` (the node's data dir), `seeded.json`, `node.toml`.
    #[arg(long)]
    dir: PathBuf,
    /// The node binary.
    #[arg(long, default_value = "target/release/voiceflow-node")]
    node_bin: PathBuf,
    /// Members of the community (the owner included).
    #[arg(long, default_value_t = 100_000)]
    members: u32,
    /// Channels of the community.
    #[arg(long, default_value_t = 500)]
    channels: u32,
    /// Channels whose room has every member as a member.
    #[arg(long, default_value_t = 5)]
    big: u32,
    /// Requests per REST measurement.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// `message:send`s measured.
    #[arg(long, default_value_t = 1000)]
    sends: usize,
    /// Role changes measured (alternately taking `send_messages` away and giving it back).
    #[arg(long, default_value_t = 40)]
    role_changes: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let seeded_file = args.dir.join("seeded.json");
    let seeded: seed::Seeded = match std::fs::read(&seeded_file) {
        Ok(raw) => serde_json::from_slice(&raw).context("seeded.json")?,
        Err(_) => {
            std::fs::create_dir_all(args.dir.join("data"))?;
            let store = args.dir.join("data").join("store");
            let seeded = seed::seed(&store, args.members, args.channels, args.big).await?;
            std::fs::write(&seeded_file, serde_json::to_vec(&seeded)?)?;
            seeded
        }
    };
    eprintln!("seeded in {:.1} s", seeded.seed_secs);

    let node = Node::start(&args.node_bin, &args.dir).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let rss_started = node.rss_mib()?;
    eprintln!("node {:?} at {}", node.pid(), node.addr);
    let owner = node.login(&seeded.owner).await?;
    let member = node.login(&seeded.member).await?;

    let mut rows: Vec<Row> = Vec::new();
    eprintln!("measuring member lists");
    rows.extend(measure::member_lists(&node, &seeded, &member, args.samples).await?);
    eprintln!("measuring the channel list");
    rows.push(measure::channel_list(&node, &seeded, &member, args.samples).await?);
    eprintln!("measuring room starts");
    rows.extend(measure::room_starts(&node, &seeded, &member).await?);
    let mut ws = Ws::connect(&node.addr, &member).await?;
    let room = seeded.big.first().context("no big channel")?.to_string();
    eprintln!("measuring sends");
    rows.push(measure::sends(&node, &mut ws, &room, args.sends).await?);
    eprintln!("measuring role changes");
    rows.extend(
        measure::role_changes(&node, &seeded, &owner, &mut ws, &room, args.role_changes).await?,
    );
    let rss_loaded = node.rss_mib()?;

    println!(
        "community: {} members, {} channels ({} with every member in their room); seeded in {:.1} s",
        seeded.user_ids.len(),
        seeded.channels.len(),
        seeded.big.len(),
        seeded.seed_secs
    );
    println!(
        "{:<48} {:>7} {:>10} {:>10} {:>10}  note",
        "measurement", "samples", "p50 ms", "p99 ms", "max ms"
    );
    for r in &rows {
        println!(
            "{:<48} {:>7} {:>10.2} {:>10.2} {:>10.2}  {}",
            r.what, r.samples, r.p50_ms, r.p99_ms, r.max_ms, r.note
        );
    }
    println!(
        "{:<48} {rss_started:>10.1} MiB",
        "node RSS after start on the seeded data"
    );
    println!(
        "{:<48} {rss_loaded:>10.1} MiB",
        "node RSS after the measurements"
    );
    Ok(())
}
