//! Command-line flags ([`Cli`]) and the binary's one-off tasks ([`Command`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use super::{LogFormat, StorageKind};

/// Command-line flags; each also reads an environment variable.
#[derive(Debug, Parser)]
#[command(name = "voiceflow-node", version, about = "A VoiceFlow chat node")]
pub struct Cli {
    /// TOML config file (see cluster-configs/).
    #[arg(long, env = "VOICEFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address for HTTP and WebSocket [default: 127.0.0.1:3000].
    #[arg(long, env = "VOICEFLOW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./data].
    #[arg(long, env = "VOICEFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// JWT signing secret [default: generated and kept in the data directory].
    #[arg(long, env = "VOICEFLOW_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Node id, 0–1023 [default: 0].
    #[arg(long, env = "VOICEFLOW_NODE_ID")]
    pub node_id: Option<u16>,
    /// Log format [default: human]; filter with RUST_LOG.
    #[arg(long, env = "VOICEFLOW_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Storage backend: embedded, or scylla (settings in the config file's [scylla] table)
    /// [default: embedded].
    #[arg(long, env = "VOICEFLOW_STORAGE", value_enum)]
    pub storage: Option<StorageKind>,
    /// Serve HTTPS/WSS with a self-signed certificate for the listen address, generated once
    /// and kept in the data directory (see `[tls] self_signed`).
    #[arg(long, env = "VOICEFLOW_TLS_SELF_SIGNED", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls_self_signed: bool,
    /// A one-off task instead of running the node.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off tasks of the binary.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create the cluster CA (if missing) and node certificates for a local cluster.
    Certs {
        /// Directory of `ca.pem`, `ca.key`, `node-<id>.pem` and `node-<id>.key`.
        #[arg(long, default_value = "./certs")]
        dir: PathBuf,
        /// Node ids to make certificates for, comma-separated (e.g. 1,2,3).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u16>,
    },
}
