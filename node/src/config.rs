//! The node's configuration: one struct, read from a TOML file, then environment variables,
//! then command-line flags (each overriding the one before). Every field has a default, so an
//! empty file (or none) is a working single-node set-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use voiceflow_actors::ActorConfig;

mod cli;
mod files;
mod http;
mod limits;
mod mentions;
mod presence;
mod push;
mod search;
mod sessions;
mod turn;
mod voice;
pub use cli::{Cli, Command};
pub use files::{FilesBackend, FilesConfig};
pub use http::{HttpConfig, TlsConfig};
pub use limits::LimitsConfig;
pub use mentions::MentionsConfig;
pub use presence::PresenceConfig;
pub use push::PushConfig;
pub use search::SearchConfig;
pub use sessions::SessionsConfig;
pub use voice::VoiceConfig;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Which storage backend holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The embedded on-disk store under `data_dir` (single node).
    #[default]
    Embedded,
    /// A ScyllaDB (CQL) cluster, reached with the `[scylla]` settings.
    Scylla,
}

/// Everything a node can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket front door listens on.
    pub listen: SocketAddr,
    /// Directory for the embedded store and the generated JWT secret.
    pub data_dir: PathBuf,
    /// This node's id (0–1023); part of every snowflake id it makes.
    pub node_id: u16,
    /// HMAC secret for JWTs. When unset, a random one is generated once and kept in
    /// `data_dir/jwt-secret`.
    pub jwt_secret: Option<String>,
    /// `iss` claim put in and required of every token.
    pub jwt_issuer: String,
    /// Lifetime of access tokens, seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens, seconds.
    pub refresh_token_ttl_secs: u64,
    /// argon2 memory cost in KiB (OWASP's minimum is 19456).
    pub password_hash_memory_kib: u32,
    /// argon2 iterations.
    pub password_hash_iterations: u32,
    /// Storage backend.
    pub storage: StorageKind,
    /// ScyllaDB connection settings, used when `storage = "scylla"`: contact points, keyspace,
    /// replication factor, credentials, TLS, consistency, request timeout (see
    /// `voiceflow_schema::cql::CqlConfig`; every key has a default).
    pub scylla: voiceflow_schema::cql::CqlConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// A WebSocket that sends nothing (not even a pong) for this long is closed.
    pub ws_idle_timeout_secs: u64,
    /// How often the server pings each WebSocket.
    pub ws_ping_interval_secs: u64,
    /// Largest client frame accepted, bytes.
    pub ws_max_frame_bytes: usize,
    /// Frames queued for one connection before it is closed as a slow consumer.
    pub outbound_queue_frames: usize,
    /// A client that accepts not one byte for this long is dropped (it is not reading), ms.
    pub ws_write_timeout_ms: u64,
    /// Malformed frames (unparseable, unknown event, wrong field types, oversize, too deep)
    /// within a minute before a connection is closed with 4002; refused requests a correct
    /// client can make (a deleted room, a rate limit) do not count. (Formerly
    /// `max_consecutive_errors`, still accepted.)
    #[serde(alias = "max_consecutive_errors")]
    pub max_invalid_frames: u32,
    /// A room with nobody in it stops after this long, seconds.
    pub room_idle_timeout_secs: u64,
    /// Typing indicators end this long after the last `typing:start`, ms.
    pub typing_ttl_ms: u64,
    /// Most messages replayed on `room:join` with `since`.
    pub replay_limit: u32,
    /// Most distinct users and roles one message may mention (`<@id>`, `<@&id>`); more is
    /// refused with `VALIDATION_ERROR` on `content`. `@everyone`/`@here` do not count.
    pub max_mentions_per_message: u32,
    /// In a room that keeps no messages (`recordMessages: false`), how long its messages can
    /// still be replayed to a resuming client from the owner's memory, seconds.
    pub unrecorded_window_secs: u64,
    /// Largest REST request body, bytes.
    pub http_max_body_bytes: u64,
    /// How long shutdown waits for connections to close and storage to flush, seconds.
    pub shutdown_grace_secs: u64,
    /// Cluster membership and inter-node transport (see `ClusterConfig`; off by default).
    pub cluster: crate::cluster::ClusterConfig,
    /// Uploaded files (`[files]`): size limit and where they are kept.
    pub files: FilesConfig,
    /// Rate limits and bad-input limits (`[limits]`).
    pub limits: LimitsConfig,
    /// Presence heartbeats and timeouts (`[presence]`).
    pub presence: PresenceConfig,
    /// Voice channels: media address and ports, ICE servers, capacity (`[voice]`).
    pub voice: VoiceConfig,
    /// Connection timeouts and caps of the front door, allowed origins (`[http]`).
    pub http: HttpConfig,
    /// HTTPS/WSS on the listener (`[tls]`).
    pub tls: TlsConfig,
    /// Token checks (`nbf`/`exp` leeway) and the refresh grace window (`[sessions]`).
    pub sessions: SessionsConfig,
    /// Message search: the index, its memory and commit interval, query limits (`[search]`).
    pub search: SearchConfig,
    /// Web Push: limits, queue, retries, extra root CAs (`[push]`).
    pub push: PushConfig,
    /// Mentions of many people and the per-user mention index's size (`[mentions]`).
    pub mentions: MentionsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            jwt_secret: None,
            jwt_issuer: "voiceflow".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password_hash_memory_kib: 19_456,
            password_hash_iterations: 2,
            storage: StorageKind::Embedded,
            scylla: voiceflow_schema::cql::CqlConfig::default(),
            log_format: LogFormat::Human,
            ws_idle_timeout_secs: 30,
            ws_ping_interval_secs: 10,
            ws_max_frame_bytes: 64 * 1024,
            outbound_queue_frames: 8192,
            ws_write_timeout_ms: 10_000,
            max_invalid_frames: 20,
            room_idle_timeout_secs: 60,
            typing_ttl_ms: 6000,
            replay_limit: 1000,
            max_mentions_per_message: 50,
            unrecorded_window_secs: 300,
            http_max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 10,
            cluster: crate::cluster::ClusterConfig::default(),
            files: FilesConfig::default(),
            limits: LimitsConfig::default(),
            presence: PresenceConfig::default(),
            voice: VoiceConfig::default(),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            sessions: SessionsConfig::default(),
            search: SearchConfig::default(),
            push: PushConfig::default(),
            mentions: MentionsConfig::default(),
        }
    }
}

/// Config loading failures.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// File (if any), then flags/env on top, then validation.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = cli.listen {
            config.listen = v;
        }
        if let Some(v) = cli.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = cli.jwt_secret {
            config.jwt_secret = Some(v);
        }
        if let Some(v) = cli.node_id {
            config.node_id = v;
        }
        if let Some(v) = cli.log_format {
            config.log_format = v;
        }
        if let Some(v) = cli.storage {
            config.storage = v;
        }
        if cli.tls_self_signed {
            config.tls.self_signed = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        self.presence.validate().map_err(ConfigError::Invalid)?;
        self.push.validate().map_err(ConfigError::Invalid)?;
        self.mentions.validate().map_err(ConfigError::Invalid)?;
        self.voice.validate().map_err(ConfigError::Invalid)?;
        self.http.validate().map_err(ConfigError::Invalid)?;
        self.tls.validate().map_err(ConfigError::Invalid)?;
        self.sessions.validate().map_err(ConfigError::Invalid)?;
        self.search.validate().map_err(ConfigError::Invalid)?;
        if self.node_id > voiceflow_wire::ids::MAX_NODE_ID {
            return bad("node_id must be 0-1023");
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return bad("jwt_secret must be at least 16 characters");
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            return bad("token lifetimes must be positive");
        }
        if self.ws_ping_interval_secs == 0
            || self.ws_idle_timeout_secs <= self.ws_ping_interval_secs
        {
            return bad("ws_idle_timeout_secs must be greater than ws_ping_interval_secs > 0");
        }
        if self.outbound_queue_frames < 256 {
            return bad(
                "outbound_queue_frames must be at least 256 (one room batch of acks and events)",
            );
        }
        if self.password_hash_memory_kib < 8 || self.password_hash_iterations == 0 {
            return bad("argon2 parameters too small");
        }
        if self.storage == StorageKind::Scylla {
            self.scylla.validate().map_err(ConfigError::Invalid)?;
        }
        self.files.validate().map_err(ConfigError::Invalid)?;
        if self.files.backend_for(self.storage) == FilesBackend::Cql
            && self.storage != StorageKind::Scylla
        {
            return bad("files.backend = \"cql\" needs storage = \"scylla\"");
        }
        let l = &self.limits;
        if l.rate_limits
            && (l.connection_events == 0
                || l.connection_window_secs == 0
                || l.messages_per_sec == 0
                || l.messages_burst == 0
                || l.logins_per_min == 0
                || l.user_events == 0
                || l.actions_per_sec == 0
                || l.actions_burst == 0
                || l.refreshes_per_min == 0
                || l.room_creates_per_min == 0
                || l.uploads_per_min == 0
                || l.dm_opens_per_min == 0
                || l.profile_edits_per_min == 0
                || l.joins_per_min == 0)
        {
            return bad(
                "limits: every rate must be positive (set limits.rate_limits = false to turn \
                 them off)",
            );
        }
        if l.rest_body_timeout_secs == 0 {
            return bad("limits.rest_body_timeout_secs must be positive");
        }
        if l.max_json_depth < 2 {
            return bad("limits.max_json_depth must be at least 2 (the envelope and its data)");
        }
        if l.ws_frame_close_bytes < self.ws_max_frame_bytes {
            return bad("limits.ws_frame_close_bytes must be at least ws_max_frame_bytes");
        }
        if self.cluster.enabled {
            if self.storage != StorageKind::Scylla {
                return bad(
                    "a cluster needs storage = \"scylla\": every node must read the same logs",
                );
            }
            if self.cluster.heartbeat_interval_ms == 0
                || self.cluster.failure_timeout_ms < 2 * self.cluster.heartbeat_interval_ms
            {
                return bad("cluster.failure_timeout_ms must be at least two heartbeat intervals");
            }
            if self.cluster.max_frame_bytes < 64 * 1024 {
                return bad("cluster.max_frame_bytes must be at least 65536");
            }
            use voiceflow_wire::cluster::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
            if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&self.cluster.protocol_max) {
                return bad(&format!(
                    "cluster.protocol_max must be between {MIN_PROTOCOL_VERSION} and {PROTOCOL_VERSION}"
                ));
            }
            // SWIM packets exist from protocol 11 on: a node held below it could probe nobody.
            if self.cluster.membership == crate::cluster::MembershipKind::Swim
                && self.cluster.protocol_max < 11
            {
                return bad("cluster.membership = \"swim\" needs cluster.protocol_max 11 or more");
            }
        }
        Ok(())
    }

    /// The slice the actors need.
    pub fn actor_config(&self) -> ActorConfig {
        ActorConfig {
            room_idle_timeout: Duration::from_secs(self.room_idle_timeout_secs),
            typing_ttl: Duration::from_millis(self.typing_ttl_ms),
            replay_limit: self.replay_limit,
            unrecorded_window: Duration::from_secs(self.unrecorded_window_secs),
            nonce_cache: 4096,
            outbound_queue_frames: self.outbound_queue_frames,
            presence_heartbeat: self.presence.heartbeat(),
            max_mentions: self.max_mentions_per_message as usize,
            mentions_kept: self.mentions.kept_per_user,
            mention_trim_one_in: self.mentions.trim_one_in,
            mention_fanout_page: self.mentions.fanout_page,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn every_file_in_cluster_configs_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-configs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("cluster-configs exists") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked > 0, "no config files found in {}", dir.display());
    }

    #[test]
    fn files_and_limits_have_working_defaults() {
        let config = Config::from_toml("").expect("empty");
        assert_eq!(config.files.max_bytes, 25 * 1024 * 1024);
        assert_eq!(config.files.backend_for(config.storage), FilesBackend::Dir);
        assert_eq!(
            config.files.dir_in(&config.data_dir),
            PathBuf::from("./data/blobs")
        );
        assert_eq!(
            config.files.backend_for(StorageKind::Scylla),
            FilesBackend::Cql
        );
        assert_eq!(config.limits.connection_events, 120);
        config.validate().expect("defaults validate");
        let cql_alone = Config::from_toml("[files]\nbackend = \"cql\"\n").expect("parse");
        assert!(cql_alone.validate().is_err(), "cql files need cql storage");
        let tiny = Config::from_toml("[limits]\nws_frame_close_bytes = 10\n").expect("parse");
        assert!(tiny.validate().is_err());
        let off = Config::from_toml("[limits]\nrate_limits = false\nlogins_per_min = 0\n")
            .expect("parse");
        off.validate()
            .expect("rates may be zero when rate limits are off");
    }

    #[test]
    fn the_cluster_protocol_range_is_checked() {
        let with = |max: u8| {
            Config::from_toml(&format!(
                "storage = \"scylla\"\n[cluster]\nenabled = true\nprotocol_max = {max}\n"
            ))
            .expect("parses")
        };
        let default = Config::from_toml("").expect("empty").cluster;
        assert_eq!(
            default.protocols(),
            7..=voiceflow_wire::cluster::PROTOCOL_VERSION
        );
        assert!(with(7).validate().is_ok());
        assert!(with(8).validate().is_ok());
        assert!(with(9).validate().is_ok());
        assert!(with(10).validate().is_ok());
        assert!(with(11).validate().is_ok());
        assert!(with(6).validate().is_err());
        assert!(with(12).validate().is_err());
        let swim = |max: u8| {
            Config::from_toml(&format!(
                "storage = \"scylla\"\n[cluster]\nenabled = true\nmembership = \"swim\"\n\
                 protocol_max = {max}\n"
            ))
            .expect("parses")
        };
        assert!(swim(11).validate().is_ok());
        let err = swim(10).validate().expect_err("swim below 11");
        assert!(err.to_string().contains("membership"), "{err}");
        assert!(Config::from_toml("[cluster]\nmembership = \"gossip\"\n").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::from_toml("listn = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:4000\"\nnode_id = 3\n").expect("write");
        let cli = Cli::parse_from([
            "voiceflow-node",
            "--config",
            file.to_str().expect("utf8"),
            "--node-id",
            "9",
        ]);
        let config = Config::load(cli).expect("load");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.node_id, 9);
    }
}
