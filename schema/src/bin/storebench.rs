//! `storebench`: storage figures for both backends, one line per figure.
//!
//! For each store (the embedded one in a temporary directory; the CQL one in a throw-away
//! keyspace on the server in `--cql` or `VOICEFLOW_TEST_CQL`), and for one room and for 1,000
//! rooms:
//! - append throughput: many concurrent writers append one message per call, so the store's
//!   group commit decides how writes share batches (and fsyncs / round trips);
//! - history read latency, p50/p99: the 50 newest messages of a room, and a page of 50 deep
//!   in the past (a cursor about a tenth into the history, ~11 months back). With 1,000
//!   rooms each room holds `messages / 1000` messages spread over the year, so a page returns
//!   what the room has and walks every bucket of it.
//!
//! The messages' ids spread over the past year, so histories cross ~36 ten-day buckets.
//!
//! ```text
//! cargo run --release -p voiceflow-schema --bin storebench -- [--store embedded|cql|both]
//!     [--cql HOST:PORT] [--messages N] [--reads N] [--writers N]
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use voiceflow_schema::cql::testing::{contact_points_from_env, drop_keyspace, test_config};
use voiceflow_schema::cql::{CqlConfig, CqlStore};
use voiceflow_schema::{EmbeddedStore, MessageRecord, Store, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;

/// One year, the span of every benchmark history.
const SPAN_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// Messages per history page read.
const PAGE: u32 = 50;
/// Room ids of the 1,000-room layout start here (the single room is 1).
const FIRST_ROOM: u64 = 1_000;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    embedded: bool,
    cql: Option<Vec<String>>,
    messages: usize,
    reads: usize,
    writers: usize,
}

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// A store call failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Filesystem or runtime trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A writer or reader task died.
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Histogram trouble.
    #[error("histogram: {0}")]
    Histogram(String),
}

/// Parses the command line.
fn parse_args() -> Result<Options, BenchError> {
    let mut store = None;
    let mut cql = None;
    let mut opts = Options {
        embedded: true,
        cql: None,
        messages: 20_000,
        reads: 1_000,
        writers: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| BenchError::Usage(format!("{flag} {value}: not a positive number")))
        };
        match flag.as_str() {
            "--store" => store = Some(value.clone()),
            "--cql" => cql = Some(vec![value.clone()]),
            "--messages" => opts.messages = number()?.max(2_000),
            "--reads" => opts.reads = number()?,
            "--writers" => opts.writers = number()?,
            other => return Err(BenchError::Usage(format!("unknown flag {other}"))),
        }
    }
    let cql = cql.or_else(contact_points_from_env);
    match store.as_deref() {
        None | Some("both") => opts.cql = cql,
        Some("embedded") => {}
        Some("cql") => {
            opts.embedded = false;
            opts.cql = Some(cql.ok_or_else(|| {
                BenchError::Usage("--store cql needs --cql or VOICEFLOW_TEST_CQL".into())
            })?);
        }
        Some(other) => return Err(BenchError::Usage(format!("unknown store {other}"))),
    }
    Ok(opts)
}

/// The `i`-th of `n` message ids of a history spanning the year before `end_ms`.
fn message_id(end_ms: u64, i: usize, n: usize) -> Snowflake {
    let offset = SPAN_MS * i as u64 / n.max(1) as u64;
    // The low bits keep ids unique when two messages share a millisecond.
    Snowflake(Snowflake::lower_bound_for(end_ms - SPAN_MS + offset).0 | (i as u64 & 0xfff))
}

/// A benchmark message.
fn record(room: u64, id: Snowflake) -> MessageRecord {
    MessageRecord {
        id,
        room_id: Snowflake(room),
        user_id: Snowflake(7),
        username: "bench".into(),
        content: "a chat message of a typical length, about sixty characters.".into(),
        kind: MessageType::Text,
        nonce: Some(format!("n{}", id.0)),
        created_at: id.timestamp_ms(),
        deleted_at: None,
        extra: Default::default(),
    }
}

/// The layout under test: which rooms, and message `i`'s room.
#[derive(Debug, Clone, Copy)]
struct Layout {
    label: &'static str,
    rooms: u64,
}

impl Layout {
    fn room_of(self, i: usize) -> u64 {
        if self.rooms == 1 {
            1
        } else {
            FIRST_ROOM + i as u64 % self.rooms
        }
    }
}

/// Appends `n` messages with `writers` concurrent writers, one message per call; returns
/// the elapsed time.
async fn append_all(
    store: &Arc<dyn Store>,
    layout: Layout,
    end_ms: u64,
    n: usize,
    writers: usize,
) -> Result<Duration, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (store, next) = (Arc::clone(store), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), StoreError>(());
                }
                let m = record(layout.room_of(i), message_id(end_ms, i, n));
                store.append_messages(&[m]).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Times `reads` history reads, picking each read's room and cursor with `pick`.
async fn read_latency(
    store: &Arc<dyn Store>,
    reads: usize,
    mut pick: impl FnMut() -> (u64, Option<Snowflake>),
) -> Result<Histogram<u64>, BenchError> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))?;
    for _ in 0..reads {
        let (room, before) = pick();
        let started = Instant::now();
        let page = store.messages_before(Snowflake(room), before, PAGE).await?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram
            .record(micros.max(1))
            .map_err(|e| BenchError::Histogram(e.to_string()))?;
        if page.is_empty() {
            return Err(BenchError::Histogram(format!("room {room}: empty page")));
        }
    }
    Ok(histogram)
}

/// Milliseconds of a histogram quantile, for printing.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs every figure on one store and prints them.
async fn bench_store(name: &str, store: Arc<dyn Store>, opts: &Options) -> Result<(), BenchError> {
    let end_ms = voiceflow_wire::ids::now_ms();
    for layout in [
        Layout {
            label: "1 room",
            rooms: 1,
        },
        Layout {
            label: "1000 rooms",
            rooms: 1_000,
        },
    ] {
        let n = opts.messages;
        let elapsed = append_all(&store, layout, end_ms, n, opts.writers).await?;
        store.flush().await?;
        println!(
            "{name:8} | {:10} | append, group commit ({} writers, 1 msg/call) | {:>9.0} msg/s ({n} msgs in {:.2} s)",
            layout.label,
            opts.writers,
            n as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
        let mut rng = rand::rng();
        let newest = read_latency(&store, opts.reads, || {
            (layout.room_of(rng.random_range(0..n)), None)
        })
        .await?;
        println!(
            "{name:8} | {:10} | history: 50 newest                            | p50 {:>7.3} ms  p99 {:>7.3} ms ({} reads)",
            layout.label,
            ms(&newest, 0.5),
            ms(&newest, 0.99),
            opts.reads
        );
        // A cursor about a tenth into the history (its room has older messages): the page
        // walks back from there.
        let lo = n / 20 + layout.rooms as usize;
        let mut rng = rand::rng();
        let deep = read_latency(&store, opts.reads, || {
            let i = rng.random_range(lo..lo + n / 20);
            (layout.room_of(i), Some(message_id(end_ms, i, n)))
        })
        .await?;
        println!(
            "{name:8} | {:10} | history: 50 before a cursor ~11 months back  | p50 {:>7.3} ms  p99 {:>7.3} ms ({} reads)",
            layout.label,
            ms(&deep, 0.5),
            ms(&deep, 0.99),
            opts.reads
        );
    }
    Ok(())
}

/// Runs the embedded and/or CQL benchmarks.
async fn run(opts: Options) -> Result<(), BenchError> {
    println!(
        "storebench: {} messages per layout, {} writers, {} reads per figure",
        opts.messages, opts.writers, opts.reads
    );
    if opts.embedded {
        let dir = std::env::temp_dir().join(format!("voiceflow-storebench-{}", std::process::id()));
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir)?);
        let result = bench_store("embedded", store, &opts).await;
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    match &opts.cql {
        Some(points) => {
            let config: CqlConfig = test_config(points.clone(), "vf_bench");
            let store: Arc<dyn Store> = Arc::new(CqlStore::connect(&config).await?);
            let result = bench_store("cql", store, &opts).await;
            drop_keyspace(&config).await?;
            result?;
        }
        None => println!("cql      | skipped: no --cql and no VOICEFLOW_TEST_CQL"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!(
                "storebench: {e}\nusage: storebench [--store embedded|cql|both] [--cql HOST:PORT] [--messages N] [--reads N] [--writers N]"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("storebench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storebench: {e}");
            ExitCode::FAILURE
        }
    }
}
