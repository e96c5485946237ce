//! `voiceflow-node`: parse config, set up logging, run until a signal, drain, exit.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use voiceflow_node::config::{Cli, Command, Config, LogFormat};

// mimalloc hands freed memory back to the OS; with glibc, bursts of argon2 hashing (19 MiB
// each) left gigabytes resident in per-thread arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let Some(Command::Certs { dir, nodes }) = cli.command.take() {
        let created = voiceflow_node::cluster::tls::generate(&dir, &nodes)?;
        for file in &created {
            println!("created {}", file.display());
        }
        if created.is_empty() {
            println!("{}: every certificate exists already", dir.display());
        }
        return Ok(());
    }
    let config = Config::load(cli)?;
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
