//! Links to other nodes: one link actor per peer dials it over QUIC (mutual TLS) and owns the
//! outgoing connection; the accept loop reads what peers send. Every unidirectional stream
//! starts with a `Hello` naming its sender; after that, one stream carries one lane: the
//! control lane (heartbeats) or one room's traffic, so a busy or stalled room never delays
//! another room or the heartbeats.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use voiceflow_actors::NodeContext;
use voiceflow_actors::remote::Peer;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{self, NodeId, PeerMsg, RoomDelivery};

use super::ClusterInner;

/// Which stream of a connection a frame goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Heartbeats and membership.
    Control,
    /// One room's requests and deliveries.
    Room(Snowflake),
    /// Searches and their answers (protocol 10).
    Search,
    /// SWIM membership packets (protocol 11): a stream of their own, so a probe never waits
    /// behind a hello or anything else. Queued while the link (re)connects, unlike
    /// heartbeats: the first packets to a member just learned (the answer to an announce)
    /// would otherwise be lost every time, and a join would take extra announce rounds.
    Swim,
}

/// Queued as messages: they are encoded once the connection, and so the protocol version the
/// peer speaks, is known (a link may reconnect to a restarted peer of another version).
type Outgoing = (Lane, PeerMsg);

/// The sending side of a link: cheap to clone, never blocks (frames queue while the link
/// (re)connects; a link to a node that went down is dropped with its queue).
#[derive(Clone)]
pub struct PeerHandle {
    node_id: NodeId,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// A connection is up: heartbeats are only queued then (a link to a dead node keeps
    /// redialling without piling them up; a new connection starts with a hello anyway).
    connected: Arc<std::sync::atomic::AtomicBool>,
    /// The protocol version of the current connection (0: none).
    version: Arc<AtomicU8>,
}

impl PeerHandle {
    /// Queues `msg` on `lane`.
    pub fn send(&self, lane: Lane, msg: PeerMsg) {
        if lane == Lane::Control && !self.connected.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let _ = self.tx.send((lane, msg));
    }

    /// The protocol version the current connection speaks, if one is up.
    pub fn version(&self) -> Option<u8> {
        Some(self.version.load(Ordering::Relaxed)).filter(|v| *v != 0)
    }
}

impl Peer for PeerHandle {
    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn deliver(&self, room: Snowflake, delivery: RoomDelivery) {
        self.send(Lane::Room(room), PeerMsg::FromRoom { room, delivery });
    }
}

/// Messages of a link actor.
pub enum LinkMsg {
    /// A dial attempt finished: the connection and the protocol version it negotiated.
    Dialled(Result<(quinn::Connection, u8), String>),
    /// The connection's pump ended (the connection broke); the queue comes back.
    PumpEnded(mpsc::UnboundedReceiver<Outgoing>),
    /// Dial again (after a back-off).
    Redial,
}

/// Start-up arguments of a link actor.
pub struct LinkArgs {
    /// The peer.
    pub node_id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The queue its [`PeerHandle`] feeds.
    pub rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Shared with the handle.
    pub connected: Arc<std::sync::atomic::AtomicBool>,
    /// Shared with the handle.
    pub version: Arc<AtomicU8>,
    /// Cluster state (endpoint, membership).
    pub cluster: Arc<ClusterInner>,
}

/// State of a link actor.
pub struct LinkState {
    node_id: NodeId,
    addr: SocketAddr,
    rx: Option<mpsc::UnboundedReceiver<Outgoing>>,
    cluster: Arc<ClusterInner>,
    backoff: Duration,
    connected: Arc<std::sync::atomic::AtomicBool>,
    version: Arc<AtomicU8>,
}

/// The link actor of one peer.
pub struct LinkActor;

/// A new link: its handle and the arguments for its actor.
pub fn new_link(
    node_id: NodeId,
    addr: SocketAddr,
    cluster: Arc<ClusterInner>,
) -> (PeerHandle, LinkArgs) {
    let (tx, rx) = mpsc::unbounded_channel();
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let version = Arc::new(AtomicU8::new(0));
    (
        PeerHandle {
            node_id,
            tx,
            connected: connected.clone(),
            version: version.clone(),
        },
        LinkArgs {
            node_id,
            addr,
            rx,
            connected,
            version,
            cluster,
        },
    )
}

impl Actor for LinkActor {
    type Msg = LinkMsg;
    type State = LinkState;
    type Arguments = LinkArgs;

    async fn pre_start(
        &self,
        me: ActorRef<LinkMsg>,
        args: LinkArgs,
    ) -> Result<LinkState, ActorProcessingErr> {
        let _ = me.cast(LinkMsg::Redial);
        Ok(LinkState {
            node_id: args.node_id,
            addr: args.addr,
            rx: Some(args.rx),
            cluster: args.cluster,
            backoff: Duration::from_millis(50),
            connected: args.connected,
            version: args.version,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<LinkMsg>,
        msg: LinkMsg,
        state: &mut LinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LinkMsg::Redial => {
                let cluster = state.cluster.clone();
                let addr = state.addr;
                let me = me.clone();
                tokio::spawn(async move {
                    let result = dial(&cluster, addr).await;
                    let _ = me.cast(LinkMsg::Dialled(result));
                });
            }
            LinkMsg::Dialled(Ok((conn, version))) => {
                state.backoff = Duration::from_millis(50);
                tracing::info!(peer = state.node_id, addr = %state.addr, version, "cluster link up");
                if let Some(rx) = state.rx.take() {
                    state.version.store(version, Ordering::Relaxed);
                    state.connected.store(true, Ordering::Relaxed);
                    let cluster = state.cluster.clone();
                    let me = me.clone();
                    let peer = state.node_id;
                    tokio::spawn(async move {
                        let rx = pump(conn, version, rx, cluster, peer).await;
                        let _ = me.cast(LinkMsg::PumpEnded(rx));
                    });
                }
            }
            LinkMsg::Dialled(Err(e)) => {
                tracing::debug!(peer = state.node_id, addr = %state.addr, error = %e, "cluster dial failed");
                self.redial_later(&me, state);
            }
            LinkMsg::PumpEnded(rx) => {
                tracing::info!(peer = state.node_id, "cluster link down");
                state.connected.store(false, Ordering::Relaxed);
                state.version.store(0, Ordering::Relaxed);
                state.rx = Some(rx);
                self.redial_later(&me, state);
            }
        }
        Ok(())
    }
}

impl LinkActor {
    fn redial_later(&self, me: &ActorRef<LinkMsg>, state: &mut LinkState) {
        let delay = state.backoff;
        state.backoff = (state.backoff * 2).min(Duration::from_secs(1));
        me.send_after(delay, || LinkMsg::Redial);
    }
}

/// Connects to `addr`; the handshake settles the protocol version (see `tls::negotiated`).
async fn dial(cluster: &ClusterInner, addr: SocketAddr) -> Result<(quinn::Connection, u8), String> {
    let connecting = cluster
        .endpoint
        .connect_with(cluster.client_config.clone(), addr, super::tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(Duration::from_secs(3), connecting)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    match super::tls::negotiated(&conn, cluster.versions.clone()) {
        Some(version) => Ok((conn, version)),
        None => {
            conn.close(4u32.into(), b"no common protocol version");
            Err("no common protocol version".into())
        }
    }
}

/// Moves queued frames onto the connection's lanes until it breaks; returns the queue.
async fn pump(
    conn: quinn::Connection,
    version: u8,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    cluster: Arc<ClusterInner>,
    peer: NodeId,
) -> mpsc::UnboundedReceiver<Outgoing> {
    let Ok(hello) = cluster::encode_at(&PeerMsg::Hello(cluster.me()), version) else {
        conn.close(4u32.into(), b"no common protocol version");
        return rx;
    };
    let writer = Writer {
        conn: conn.clone(),
        version,
        hello,
        sent: metrics::counter!("voiceflow_cluster_bytes_sent_total", "peer" => peer.to_string()),
    };
    let mut lanes: HashMap<Lane, mpsc::UnboundedSender<PeerMsg>> = HashMap::new();
    let rtt = metrics::gauge!("voiceflow_cluster_rtt_seconds", "peer" => peer.to_string());
    let mut rtt_every = tokio::time::interval(Duration::from_secs(1));
    // The control lane opens first so the peer learns who we are at once.
    lanes.insert(Lane::Control, writer.open_lane());
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some((lane, msg)) = next else { break };
                let lane = lanes.entry(lane).or_insert_with(|| writer.open_lane());
                if lane.send(msg).is_err() {
                    // That stream failed: the connection is going; start over on a new one.
                    break;
                }
            }
            _ = conn.closed() => break,
            _ = rtt_every.tick() => rtt.set(conn.rtt().as_secs_f64()),
        }
    }
    conn.close(0u32.into(), b"link reset");
    rx
}

/// What every stream of one connection shares.
struct Writer {
    conn: quinn::Connection,
    /// The protocol version the connection negotiated.
    version: u8,
    /// The encoded hello every stream starts with.
    hello: Vec<u8>,
    sent: metrics::Counter,
}

impl Writer {
    /// Opens one unidirectional stream (lazily, in its writer task) and writes what it is
    /// given, encoded at the connection's version (on the lane's task, so busy rooms encode
    /// in parallel).
    fn open_lane(&self) -> mpsc::UnboundedSender<PeerMsg> {
        let (tx, rx) = mpsc::unbounded_channel::<PeerMsg>();
        let (conn, version, hello, sent) = (
            self.conn.clone(),
            self.version,
            self.hello.clone(),
            self.sent.clone(),
        );
        tokio::spawn(write_lane(conn, version, hello, sent, rx));
        tx
    }
}

async fn write_lane(
    conn: quinn::Connection,
    version: u8,
    hello: Vec<u8>,
    sent: metrics::Counter,
    mut rx: mpsc::UnboundedReceiver<PeerMsg>,
) {
    {
        let Ok(mut stream) = conn.open_uni().await else {
            return;
        };
        if stream.write_all(&hello).await.is_err() {
            return;
        }
        while let Some(msg) = rx.recv().await {
            // The version was negotiated from this build's own range, so only a message that
            // needs a newer version fails (a call added since, to a node of the previous
            // release): it is dropped and its caller's wait ends in "retry later".
            let bytes = match cluster::encode_at(&msg, version) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(error = %e, "message not sent to an older peer");
                    continue;
                }
            };
            sent.increment(bytes.len() as u64);
            if stream.write_all(&bytes).await.is_err() {
                conn.close(1u32.into(), b"stream write failed");
                return;
            }
        }
        let _ = stream.finish();
    }
}

/// Accepts peers' connections until the endpoint closes.
pub async fn accept_loop(cluster: Arc<ClusterInner>, ctx: NodeContext) {
    while let Some(incoming) = cluster.endpoint.accept().await {
        let cluster = cluster.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => serve_connection(cluster, ctx, conn).await,
                // A certificate from another CA ends here (the handshake fails).
                Err(e) => tracing::warn!(%remote, error = %e, "cluster connection refused"),
            }
        });
    }
}

async fn serve_connection(cluster: Arc<ClusterInner>, ctx: NodeContext, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let Some(cert_node) = super::tls::peer_node_id(&conn) else {
        tracing::warn!(%remote, "peer certificate names no node; closing");
        conn.close(3u32.into(), b"certificate names no node");
        return;
    };
    loop {
        match conn.accept_uni().await {
            Ok(stream) => {
                let cluster = cluster.clone();
                let ctx = ctx.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    if let Err(e) = read_stream(&cluster, &ctx, stream, cert_node).await {
                        tracing::warn!(%remote, error = %e, "bad frame from a peer; closing its connection");
                        metrics::counter!("voiceflow_cluster_bad_frames_total").increment(1);
                        conn.close(2u32.into(), b"protocol error");
                    }
                });
            }
            Err(_) => return,
        }
    }
}

/// Reads a stream's frames in order and hands them to the router.
async fn read_stream(
    cluster: &Arc<ClusterInner>,
    ctx: &NodeContext,
    mut stream: quinn::RecvStream,
    cert_node: NodeId,
) -> Result<(), String> {
    let limit = cluster.max_frame_bytes;
    let received = metrics::counter!("voiceflow_cluster_bytes_received_total");
    let mut from: Option<NodeId> = None;
    let mut ops: Option<mpsc::UnboundedSender<PeerMsg>> = None;
    let mut buf = Vec::new();
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(()),
            Err(e) => {
                return match e {
                    quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(_)) => Ok(()),
                    other => Err(other.to_string()),
                };
            }
        }
        let len = cluster::check_len(prefix, limit).map_err(|e| e.to_string())?;
        buf.resize(len, 0);
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        received.increment(len as u64 + 4);
        let msg =
            cluster::decode_within(&buf, cluster.versions.clone()).map_err(|e| e.to_string())?;
        if let Some(node) = from
            && cluster.is_deaf_to(node)
        {
            continue;
        }
        match (from, msg) {
            (None, PeerMsg::Hello(info)) if info.node_id != cert_node => {
                return Err(format!(
                    "hello names node {} but its certificate is node-{cert_node}",
                    info.node_id
                ));
            }
            (None, PeerMsg::Hello(info)) if cluster.is_deaf_to(info.node_id) => {
                from = Some(info.node_id);
            }
            (None, PeerMsg::Hello(info)) => {
                from = Some(info.node_id);
                cluster.on_hello(ctx, info);
            }
            (None, _) => return Err("stream did not start with a hello".into()),
            // Requests to rooms may wait (a room starting, a release); they run in order on a
            // task of their own so the deliveries behind them on this stream (such as the
            // answer to that very release) are never stuck behind them.
            (Some(node), msg @ PeerMsg::ToRoom { .. }) => {
                let ops = ops.get_or_insert_with(|| {
                    let (tx, mut rx) = mpsc::unbounded_channel::<PeerMsg>();
                    let cluster = cluster.clone();
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        while let Some(msg) = rx.recv().await {
                            cluster.on_frame(&ctx, node, msg).await;
                        }
                    });
                    tx
                });
                let _ = ops.send(msg);
            }
            (Some(node), msg) => cluster.on_frame(ctx, node, msg).await,
        }
    }
}

/// Introduces this node to the seeds (a hello each) until some member answers with
/// heartbeats; the members then dial back and gossip the rest of the cluster.
pub async fn introduce(cluster: Arc<ClusterInner>, seeds: Vec<SocketAddr>) {
    if seeds.is_empty() {
        return;
    }
    loop {
        for seed in &seeds {
            if let Err(e) = say_hello(&cluster, *seed).await {
                tracing::debug!(%seed, error = %e, "seed not reachable");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !cluster.membership.lock().peers().is_empty() {
            return;
        }
    }
}

async fn say_hello(cluster: &Arc<ClusterInner>, seed: SocketAddr) -> Result<(), String> {
    let (conn, version) = dial(cluster, seed).await?;
    let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
    let hello =
        cluster::encode_at(&PeerMsg::Hello(cluster.me()), version).map_err(|e| e.to_string())?;
    stream.write_all(&hello).await.map_err(|e| e.to_string())?;
    let _ = stream.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.stopped()).await;
    conn.close(0u32.into(), b"introduced");
    Ok(())
}
