//! `voiceflow-node`: parse config, set up logging, run until a signal, drain, exit.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use voiceflow_node::config::{Cli, Config, LogFormat};

// mimalloc hands freed memory back to the OS; with glibc, bursts of argon2 hashing (19 MiB
// each) left gigabytes resident in per-thread arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load(Cli::parse())?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,warp=warn"));
    match config.log_format {
        LogFormat::Human => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    voiceflow_node::run(config).await
}
