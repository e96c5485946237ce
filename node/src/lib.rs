//! The VoiceFlow node: configuration, the warp front door (REST, WebSocket, health, metrics),
//! start-up and an explicit shutdown.
//!
//! Layout:
//! - [`config`]: the one documented `Config` (file, env, flags).
//! - `api/`: REST handlers under `/api/v1`; `error`: the one place errors become HTTP bodies.
//! - `auth`: argon2 passwords and JWT access/refresh tokens with rotation.
//! - `ws`: the WebSocket upgrade and the per-connection read/write pump.
//! - `metrics`: Prometheus exposition. `state`: what handlers share.
//! - `files`: the blob store of attachments and how files are served; `limits`: rate limits
//!   and per-frame limits at the front door.
//! - `web`: the embedded web client (`node/web/`) at `/`.
//! - [`server`]: the accept loop (connection caps and timeouts, TLS, Origin/CORS/HSTS).
//! - [`cluster`]: QUIC links, membership, placement and routing between nodes.
//! - [`Node`]: a started node; [`run`] starts one and waits for SIGINT/SIGTERM.

pub mod cluster;
pub mod config;

mod account_sessions;
mod api;
mod auth;
mod auth_grace;
mod error;
pub mod files;
#[cfg(test)]
mod fuzzing;
mod limits;
mod metrics;
pub mod multipart;
mod push;
mod rest_limits;
pub mod server;
mod spool;
mod state;
mod web;
mod ws;
mod ws_auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;
use voiceflow_actors::context::NodeParts;
use voiceflow_actors::supervisor::{Supervisor, SupervisorKind, SupervisorMsg};
use voiceflow_actors::{CloseReason, NodeContext};
use voiceflow_schema::{EmbeddedStore, Store};
use voiceflow_wire::SnowflakeGenerator;
use warp::Filter;

pub use config::Config;

/// A running node.
pub struct Node {
    /// Where the front door listens (the real port when configured with port 0).
    pub addr: SocketAddr,
    state: state::AppState,
    server: tokio::task::JoinHandle<()>,
    stop_server: Option<watch::Sender<bool>>,
    supervisors: Vec<ActorRef<SupervisorMsg>>,
    /// The embedded TURN server, when enabled (stops when dropped).
    _turn: Option<voiceflow_media::turn::TurnServer>,
}

/// Opens storage, starts the supervisors and binds the front door.
pub async fn start(config: Config) -> anyhow::Result<Node> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let secret =
        auth::load_or_create_secret(&config).context("cannot read or create the JWT secret")?;
    let mut cql_store = None;
    let store: Arc<dyn Store> = match config.storage {
        config::StorageKind::Embedded => Arc::new(
            EmbeddedStore::open(&config.data_dir.join("store")).with_context(|| {
                format!(
                    "cannot open the embedded store in {}",
                    config.data_dir.display()
                )
            })?,
        ),
        // Connects, applies pending schema migrations and prepares statements; a cluster that
        // is down or refuses us stops the start here.
        config::StorageKind::Scylla => {
            let cql = Arc::new(
                voiceflow_schema::cql::CqlStore::connect(&config.scylla)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot open the ScyllaDB store (contact points {}, keyspace {}); \
                             is the cluster up and reachable?",
                            config.scylla.contact_points.join(", "),
                            config.scylla.keyspace
                        )
                    })?,
            );
            cql_store = Some(cql.clone());
            cql
        }
    };
    let blobs = files::open(&config, cql_store.as_deref()).await?;
    let spool_dir = config.files.spool_dir_in(&config.data_dir);
    spool::prepare_dir(&spool_dir)
        .with_context(|| format!("cannot prepare the upload spool {}", spool_dir.display()))?;
    // Before anything records a metric (the cluster links create their counters at start).
    let metrics = metrics::Metrics::install().context("cannot install the metrics recorder")?;
    let (sessions_sup, _) = Actor::spawn(None, Supervisor, SupervisorKind::Sessions).await?;
    let (turn, turn_issuer) = match config.voice.start_turn(&secret).await? {
        Some((server, issuer)) => (Some(server), Some(issuer)),
        None => (None, None),
    };
    let listener =
        bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let sessions = voiceflow_actors::registry::SessionRegistry::for_node(config.node_id);
    // Built in dependency order, each part handed what it needs: the cluster (which knows
    // nothing of rooms), the context whose directories place rooms through it, then the
    // cluster's tasks, which bring peers' requests to those directories.
    let cluster = match config.cluster.enabled {
        true => Some(cluster::bind(
            &config.cluster,
            config.node_id,
            addr,
            sessions.clone(),
        )?),
        false => None,
    };
    let search = match config.search.enabled {
        true => {
            let dir = config.search.dir_in(&config.data_dir);
            let index = voiceflow_search::SearchIndex::open(
                &dir,
                &config.search.index_config(),
                store.clone(),
                tokio::runtime::Handle::current(),
            )
            .with_context(|| format!("cannot open the search index {}", dir.display()))?;
            // Entries a crash kept from the index (committed to the log, not yet to the
            // index) come back from the logs of the rooms the index knows; rooms it does not
            // know are caught up when they start here.
            index.catch_up_known();
            Some(index)
        }
        false => None,
    };
    let push = push::start(&config.push, store.clone()).await?;
    let ctx = NodeContext::start(NodeParts {
        push: push
            .sink
            .clone()
            .map(|p| p as Arc<dyn voiceflow_actors::push::PushSink>),
        search,
        store,
        ids: Arc::new(SnowflakeGenerator::new(config.node_id)),
        config: Arc::new(config.actor_config()),
        sessions,
        presence: config.presence.timings(),
        blobs: blobs.clone(),
        voice: Arc::new(config.voice.runtime(turn_issuer)),
        cluster: cluster
            .as_ref()
            .map(|c| c.0.clone() as Arc<dyn voiceflow_actors::cluster::Cluster>),
    })
    .await?;
    if let Some(node) = &cluster {
        node.start(ctx.clone(), &config.cluster.seeds).await?;
        tracing::info!(quic = %config.cluster.listen, "cluster member started");
    }
    let state = state::AppState {
        auth: auth::Auth::new(&config, &secret).map_err(|e| anyhow::anyhow!("auth set-up: {e}"))?,
        config: Arc::new(config.clone()),
        ctx,
        sessions: sessions_sup.clone(),
        draining: Arc::new(AtomicBool::new(false)),
        metrics,
        cluster: cluster.clone(),
        blobs,
        limits: Arc::new(limits::Limits::new(&config)),
        rest: Arc::new(rest_limits::RestLimits::new(&config)),
        push,
    };
    let routes = ws::route(state.clone())
        .or(api::routes(state.clone()))
        .unify()
        .or(web::routes())
        .unify()
        .or(cluster::status_route(cluster))
        .unify()
        .recover(error::recover)
        .unify()
        .with(warp::trace::request());
    let settings =
        server::Settings::new(&config, server::connection_budget(config.http.fd_reserve));
    let acceptor = match server::tls::cert_files(&config.tls, &config.data_dir, addr)? {
        Some(files) => {
            let cert = server::tls::ReloadingCert::load(files.clone())?;
            cert.watch(Duration::from_secs(config.tls.reload_interval_secs));
            let fingerprint = cert.fingerprint();
            tracing::info!(cert = %files.cert.display(), %fingerprint, "serving HTTPS and WSS");
            // For scripts and tests, and for people comparing it with what a browser shows.
            println!("VOICEFLOW_TLS_FINGERPRINT SHA256 {fingerprint}");
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                cert.server_config()?,
            )))
        }
        None => None,
    };
    let tls_on = acceptor.is_some();
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        hyper_util::service::TowerToHyperService::new(warp::service(routes)),
        acceptor,
        settings.clone(),
        stop_rx.clone(),
    ));
    if let Some(redirect) = config.tls.redirect_http_listen {
        let plain = bind(redirect)
            .with_context(|| format!("cannot listen on {redirect} (tls.redirect_http_listen)"))?;
        let plain_addr = plain.local_addr()?;
        tracing::info!(addr = %plain_addr, "redirecting plain HTTP to HTTPS");
        println!("VOICEFLOW_REDIRECT_LISTENING {plain_addr}");
        tokio::spawn(server::serve(
            plain,
            hyper_util::service::TowerToHyperService::new(warp::service(server::redirect_routes(
                addr.port(),
            ))),
            None,
            settings,
            stop_rx,
        ));
    }
    tracing::info!(%addr, tls = tls_on, node_id = config.node_id, data_dir = %config.data_dir.display(), "voiceflow node listening");
    // A machine-readable line for scripts and tests that start the node on port 0.
    println!("VOICEFLOW_LISTENING {addr}");
    let rooms_sup = state.ctx.directory.supervisor().clone();
    Ok(Node {
        addr,
        state,
        server,
        stop_server: Some(stop_tx),
        supervisors: vec![rooms_sup, sessions_sup],
        _turn: turn,
    })
}

/// Binds with a deep accept backlog: the default of 128 overflows when thousands of clients
/// reconnect at once (after a node restart), and each dropped SYN costs a client a 1 s retry.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl Node {
    /// Graceful shutdown: refuse new work, tell every client to go away (close 1001), let
    /// in-flight writes finish, flush storage, stop the actors.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let deadline = Instant::now() + grace;
        self.state.draining.store(true, Ordering::Relaxed);
        let sessions = self.state.ctx.sessions.clone();
        if let Some(cluster) = &self.state.cluster {
            // Hand every room to its next owner first, then send the clients elsewhere.
            cluster.drain(&self.state.ctx, grace / 2).await;
            sessions.close_all(&CloseReason::reconnect_elsewhere());
        } else {
            sessions.close_all(&CloseReason::going_away());
        }
        while sessions.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Rooms finish what is queued (including writes in flight) and stop: all are asked at
        // once and then awaited together, so thousands of rooms retire within the grace
        // period (one at a time, the last ones were never asked before it ended).
        let rooms = self.state.ctx.directory.all_with_retiring();
        let retiring = Instant::now();
        for room in &rooms {
            let _ = room.cast(voiceflow_actors::room::RoomMsg::Retire);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let waited = futures_util::future::join_all(
            rooms
                .iter()
                .map(|room| async move { room.get_cell().wait(Some(left)).await.is_ok() }),
        )
        .await;
        // What `scripts/bench-drain.sh` reads: how long retiring took, and what was left.
        tracing::info!(
            rooms = rooms.len(),
            unfinished = waited.iter().filter(|done| !**done).count(),
            retire_ms = retiring.elapsed().as_millis() as u64,
            since_signal_ms = grace
                .saturating_sub(deadline.saturating_duration_since(Instant::now()))
                .as_millis() as u64,
            "rooms retired"
        );
        if let Some(cluster) = &self.state.cluster {
            cluster.leave().await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(true);
        }
        let _ = tokio::time::timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
            &mut self.server,
        )
        .await;
        self.server.abort();
        self.state
            .ctx
            .store
            .flush()
            .await
            .context("final storage flush")?;
        if let Some(search) = &self.state.ctx.search {
            // What was indexed since the last commit is kept (a crash loses it instead, and
            // the rooms' logs bring it back at the next start).
            if let Err(e) = search.flush().await {
                tracing::warn!(error = %e, "final search index commit failed");
            }
        }
        self.state.ctx.presence.stop_all().await;
        for sup in self.supervisors.drain(..) {
            sup.stop(Some("shutdown".into()));
        }
        tracing::info!("voiceflow node stopped");
        Ok(())
    }
}

/// Starts a node and runs it until SIGINT or SIGTERM, then shuts it down.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Listen for the signals before the node says it is listening: a SIGTERM that comes right
    // after that line (a supervisor, a test) must drain the node, not kill it outright.
    let signals = ShutdownSignals::new();
    let node = start(config).await?;
    signals.wait().await;
    tracing::info!("shutdown signal received; draining");
    node.shutdown().await
}

/// SIGTERM and SIGINT, listened for from creation on.
struct ShutdownSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            ShutdownSignals { streams }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignals {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            match self.streams {
                Some((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
