//! `search-bench`: the message index's figures (README, "Search"). Indexes `--messages`
//! generated messages spread over `--rooms` rooms through the node's own indexer (the
//! bounded queue, the writer thread, commits with each room's progress), then runs
//! `--queries` searches like a user's: one or two words, sometimes a phrase or an author,
//! over `--rooms-per-query` random rooms. Prints index throughput (messages/s), query
//! latency p50/p99 and the index's bytes per message. A benchmark, not a test.
//!
//! `cargo run --release -p voiceflow-loadgen --bin search-bench -- --messages 1000000`

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use voiceflow_schema::{EmbeddedStore, MessageRecord, Store};
use voiceflow_search::{IndexedChange, SearchConfig, SearchIndex};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::search::{IndexQuery, SearchSort};

#[derive(Parser)]
struct Args {
    /// Messages to index.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Rooms they are spread over.
    #[arg(long, default_value_t = 1_000)]
    rooms: u64,
    /// Searches to time.
    #[arg(long, default_value_t = 2_000)]
    queries: u32,
    /// Rooms each search covers (a user's rooms).
    #[arg(long, default_value_t = 50)]
    rooms_per_query: u64,
    /// The writer's memory budget, MB.
    #[arg(long, default_value_t = 50)]
    heap_mb: usize,
    /// Where the index goes (a temporary directory when absent).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// A small deterministic generator (splitmix64): the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Skewed towards small values, as word frequencies are (roughly Zipf).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n) + 1;
        self.below(a)
    }
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "pa", "de", "go", "ul", "ex", "an", "or", "is",
];

/// The `i`th word of a vocabulary of made-up words.
fn word(mut i: u64) -> String {
    let mut w = String::new();
    loop {
        w.push_str(SYLLABLES[(i % 16) as usize]);
        i /= 16;
        if i == 0 {
            return w;
        }
    }
}

const VOCABULARY: u64 = 20_000;

fn text(rng: &mut Rng) -> String {
    let n = 6 + rng.below(15);
    let mut words: Vec<String> = (0..n).map(|_| word(rng.skewed(VOCABULARY))).collect();
    if rng.below(20) == 0 {
        words.push("https://example.com/page".into());
    }
    words.join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&root.join("store"))?);
    let dir = root.join("search");
    let config = SearchConfig {
        heap_bytes: args.heap_mb * 1_000_000,
        ..SearchConfig::default()
    };
    let index = SearchIndex::open(&dir, &config, store, tokio::runtime::Handle::current())?;
    let mut rng = Rng(42);
    let mut seqs = vec![0u64; args.rooms as usize];
    let started = Instant::now();
    // Batches as rooms commit them (up to 256 changes); every 100 batches the benchmark waits
    // for the writer (the queue is bounded and a full one drops batches by design).
    let mut sent = 0u64;
    let mut batches = 0u64;
    while sent < args.messages {
        let room = rng.below(args.rooms);
        let size = (1 + rng.skewed(256)).min(args.messages - sent);
        let changes = (0..size)
            .map(|_| {
                sent += 1;
                seqs[room as usize] += 1;
                let id = 1_000_000_000 + sent;
                IndexedChange {
                    seq: seqs[room as usize],
                    message: MessageRecord {
                        id: Snowflake(id << 22),
                        room_id: Snowflake(room + 1),
                        user_id: Snowflake(1 + rng.below(5_000)),
                        username: "user".into(),
                        content: text(&mut rng),
                        kind: MessageType::Text,
                        nonce: None,
                        created_at: id,
                        deleted_at: None,
                        extra: Default::default(),
                    },
                }
            })
            .collect();
        index.committed(Snowflake(room + 1), changes);
        batches += 1;
        if batches.is_multiple_of(100) {
            index.flush().await?;
        }
    }
    index.flush().await?;
    let took = started.elapsed();
    let rate = args.messages as f64 / took.as_secs_f64();
    let bytes = SearchIndex::disk_bytes(&dir);

    let mut latencies = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut hits = 0usize;
    for i in 0..args.queries {
        let rooms: Vec<Snowflake> = (0..args.rooms_per_query)
            .map(|_| Snowflake(1 + rng.below(args.rooms)))
            .collect();
        let mut query = IndexQuery {
            words: vec![word(rng.skewed(2_000))],
            limit: 25,
            sort: if i % 2 == 0 {
                SearchSort::Newest
            } else {
                SearchSort::Relevance
            },
            ..IndexQuery::default()
        };
        match i % 4 {
            1 => query.words.push(word(rng.skewed(2_000))),
            2 => query
                .phrases
                .push(format!("{} {}", word(rng.skewed(50)), word(rng.skewed(50)))),
            3 => query.author = Some(Snowflake(1 + rng.below(5_000))),
            _ => {}
        }
        let at = Instant::now();
        hits += index.search(rooms, query).await?.len();
        latencies.record(at.elapsed().as_micros() as u64)?;
    }
    println!(
        "indexed {} messages in {} rooms in {:.1} s: {:.0} messages/s",
        args.messages,
        args.rooms,
        took.as_secs_f64(),
        rate
    );
    println!(
        "{} queries over {} rooms each ({:.1} hits on average): p50 {:.2} ms, p99 {:.2} ms",
        args.queries,
        args.rooms_per_query,
        hits as f64 / f64::from(args.queries.max(1)),
        latencies.value_at_quantile(0.5) as f64 / 1000.0,
        latencies.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "index: {:.1} MB on disk, {:.0} bytes per message",
        bytes as f64 / 1e6,
        bytes as f64 / args.messages as f64
    );
    Ok(())
}
