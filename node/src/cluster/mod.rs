//! The cluster: nodes talking QUIC with mutual TLS, membership by heartbeats and gossip, rooms
//! placed by rendezvous hashing, requests and events routed between nodes.
//!
//! Layout:
//! - [`config`]: the `[cluster]` table.
//! - [`tls`]: the cluster CA, node certificates (`voiceflow-node certs`), QUIC TLS configs.
//! - `membership`: the all-to-all member view, failure detection, quorum and placement (pure
//!   logic); `swim`: the SWIM one (`cluster.membership = "swim"`, foca, pure logic too);
//!   `members`: whichever of the two the node runs.
//! - `link`: one link actor per peer (outgoing connection, one stream per lane) and the
//!   accept loop reading peers' streams.
//! - `router`: local requests for remote rooms become frames, releases before a room starts
//!   ([`ClusterInner`] implements the actors' `Cluster`); `inbound`: peers' frames become room
//!   requests here and deliveries to this node's sessions.
//! - `room_ops`: the one exhaustive mapping between room messages and room requests (both
//!   directions, and the REST-side calls).
//! - `send`: sending requests and deliveries to peers (shared by `router` and `inbound`, so
//!   neither imports the other; `link` reaches `inbound` only through this module's
//!   `ClusterInner::on_frame`).
//! - `search`: a search's part on another node (request, answer, timeout).
//! - `status`: `GET /cluster`.

pub mod config;
mod inbound;
mod link;
mod members;
mod membership;
mod room_ops;
mod router;
mod search;
mod send;
mod status;
mod swim;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use ractor::{Actor, ActorRef};
use voiceflow_actors::{NodeContext, SessionRegistry};
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId, PeerMsg};

pub use config::{ClusterConfig, MembershipKind};
use link::{Lane, LinkActor, LinkMsg, PeerHandle};
use members::Members;
pub use membership::owner_among;
use membership::{Change, Membership};
pub use search::{SearchResult, peer_timeout};
pub use send::NodeRef;
pub use status::route as status_route;

/// A request waiting for a peer's answer.
struct PendingCall {
    node: NodeId,
    started: Instant,
    done: send::CallDone,
}

/// A release request waiting for a peer's answer (`true`: the peer is busy starting it).
struct PendingRelease {
    node: NodeId,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// A running link to a peer.
struct LinkEntry {
    handle: PeerHandle,
    /// Set once the actor started.
    actor: Option<ActorRef<LinkMsg>>,
    incarnation: u64,
    addr: SocketAddr,
}

/// Everything the cluster shares; the directory sees it as `dyn Cluster`.
pub struct ClusterInner {
    me: NodeId,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    max_frame_bytes: usize,
    /// `cluster.handoff_batch`.
    handoff_batch: usize,
    /// The cluster protocol versions this node speaks (`cluster.protocol_max` caps them).
    versions: std::ops::RangeInclusive<u8>,
    heartbeat: Duration,
    membership: Mutex<Members>,
    /// Current owners (Up members, or none without quorum), read on every request.
    owners: RwLock<Arc<Vec<NodeId>>>,
    links: RwLock<HashMap<NodeId, LinkEntry>>,
    calls: Mutex<HashMap<u64, PendingCall>>,
    releases: Mutex<HashMap<u64, PendingRelease>>,
    /// Searches waiting for peers' answers.
    searches: Mutex<HashMap<u64, search::PendingSearch>>,
    /// Rooms this node is acquiring, with an "abort" flag a competing acquire may set.
    acquiring: Mutex<HashMap<Snowflake, Arc<AtomicBool>>>,
    next_call: AtomicU64,
    /// Peers whose traffic is dropped (fault injection for partition tests).
    blocked: RwLock<std::collections::HashSet<NodeId>>,
    /// Peers whose incoming traffic only is dropped (a one-way cut, fault injection).
    deaf: RwLock<std::collections::HashSet<NodeId>>,
    fault_injection: bool,
    /// This node's sessions: requests for remote rooms record whom they follow, and a node's
    /// death or a placement change reaches them. (The rooms and presence actors are reached
    /// through the node context the cluster's tasks are given at start; the cluster itself
    /// holds no context, so the context's directories can hold the cluster.)
    sessions: SessionRegistry,
}

/// A started cluster membership.
#[derive(Clone)]
pub struct ClusterNode(pub Arc<ClusterInner>);

/// Binds the QUIC endpoint and builds the cluster state (not yet talking to anyone).
pub fn bind(
    config: &ClusterConfig,
    node_id: NodeId,
    http_addr: SocketAddr,
    sessions: SessionRegistry,
) -> anyhow::Result<ClusterNode> {
    let idle = Duration::from_millis(config.failure_timeout_ms.max(1000) * 2);
    let versions = config.protocols();
    let (server, client) = tls::quinn_configs(
        &config.ca_cert,
        &config.cert,
        &config.key,
        idle,
        versions.clone(),
    )?;
    let endpoint = quinn::Endpoint::server(server, config.listen)
        .with_context(|| format!("cannot bind the cluster endpoint on {}", config.listen))?;
    let quic_addr = config.advertise.unwrap_or(endpoint.local_addr()?);
    let me = MemberInfo {
        node_id,
        incarnation: voiceflow_wire::ids::now_ms(),
        quic_addr: quic_addr.to_string(),
        http_addr: config.advertise_http.unwrap_or(http_addr).to_string(),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (*versions.start(), *versions.end()),
    };
    let membership = match config.membership {
        MembershipKind::AllToAll => Members::AllToAll(Membership::new(
            me,
            Duration::from_millis(config.failure_timeout_ms),
            Instant::now(),
        )),
        MembershipKind::Swim => {
            let settings = swim::SwimSettings {
                probe_period: Duration::from_millis(config.heartbeat_interval_ms.max(50)),
                suspect_to_down: Duration::from_millis(config.failure_timeout_ms),
            };
            let seed = me.incarnation ^ u64::from(node_id).rotate_left(48);
            Members::Swim(Box::new(swim::Swim::new(
                me,
                quic_addr,
                settings,
                seed,
                Instant::now(),
            )))
        }
    };
    let owners = membership.owners();
    Ok(ClusterNode(Arc::new(ClusterInner {
        me: node_id,
        endpoint,
        client_config: client,
        max_frame_bytes: config.max_frame_bytes,
        handoff_batch: config.handoff_batch,
        versions,
        heartbeat: Duration::from_millis(config.heartbeat_interval_ms.max(50)),
        membership: Mutex::new(membership),
        owners: RwLock::new(Arc::new(owners)),
        links: RwLock::default(),
        calls: Mutex::default(),
        releases: Mutex::default(),
        searches: Mutex::default(),
        acquiring: Mutex::default(),
        next_call: AtomicU64::new(1),
        blocked: RwLock::default(),
        deaf: RwLock::default(),
        fault_injection: config.fault_injection,
        sessions,
    })))
}

impl ClusterNode {
    /// Starts talking: the accept loop (peers' requests reach `ctx`'s rooms and presence
    /// actors), dialling the seeds, heartbeats. Waits (a few seconds at most) until the seeds
    /// that answer have been heard from.
    pub async fn start(&self, ctx: NodeContext, seeds: &[SocketAddr]) -> anyhow::Result<()> {
        let inner = self.0.clone();
        tokio::spawn(link::accept_loop(inner.clone(), ctx.clone()));
        let own = inner.endpoint.local_addr()?;
        let seeds: Vec<SocketAddr> = seeds.iter().copied().filter(|s| *s != own).collect();
        tokio::spawn(link::introduce(inner.clone(), seeds.clone()));
        tokio::spawn(heartbeats(inner.clone(), ctx));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !seeds.is_empty() && Instant::now() < deadline {
            if inner.membership.lock().peers().len() + 1 >= seeds.len().min(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Graceful leave: own nothing, hand every room of `ctx` off, and tell the peers.
    pub async fn drain(&self, ctx: &NodeContext, wait: Duration) {
        let inner = &self.0;
        let change = inner.membership.lock().set_leaving(Instant::now());
        inner.apply(ctx, change);
        inner.send_heartbeats(ctx);
        inner.flush_swim();
        let deadline = Instant::now() + wait;
        while ctx.directory.busy_rooms() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Final goodbye: peers mark this node Left at once instead of waiting for the timeout.
    pub async fn leave(&self) {
        let swim = {
            let mut m = self.0.membership.lock();
            m.set_leaving(Instant::now());
            match m.swim() {
                Some(swim) => {
                    swim.leave(Instant::now());
                    true
                }
                None => false,
            }
        };
        if swim {
            self.0.flush_swim();
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.endpoint.close(0u32.into(), b"node left");
            return;
        }
        let mut me = self.0.me();
        me.state = MemberState::Left;
        let msg = PeerMsg::Heartbeat {
            from: me.clone(),
            members: vec![me],
        };
        for link in self.0.links.read().values() {
            link.handle.send(Lane::Control, msg.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.endpoint.close(0u32.into(), b"node left");
    }
}

impl ClusterInner {
    /// This node's member entry.
    pub fn me(&self) -> MemberInfo {
        self.membership.lock().me()
    }

    /// A peer's link handle.
    fn link(&self, node: NodeId) -> Option<PeerHandle> {
        if self.is_blocked(node) {
            return None;
        }
        self.links.read().get(&node).map(|l| l.handle.clone())
    }

    /// Whether traffic with `node` is cut (fault injection).
    fn is_blocked(&self, node: NodeId) -> bool {
        self.fault_injection && self.blocked.read().contains(&node)
    }

    /// Whether what `node` sends is dropped on arrival (fault injection: cut both ways, or
    /// only towards this node).
    fn is_deaf_to(&self, node: NodeId) -> bool {
        self.fault_injection
            && (self.blocked.read().contains(&node) || self.deaf.read().contains(&node))
    }

    /// Registers the link to `node` at once (so two updates in a row never make two links,
    /// which would lose what the first one queued) and starts its actor.
    fn ensure_link(self: &Arc<Self>, node: NodeId, addr: SocketAddr, incarnation: u64) {
        let args = {
            let mut links = self.links.write();
            if links
                .get(&node)
                .is_some_and(|l| l.incarnation >= incarnation)
            {
                return;
            }
            let (handle, args) = link::new_link(node, addr, self.clone());
            let entry = LinkEntry {
                handle,
                actor: None,
                incarnation,
                addr,
            };
            if let Some(old) = links.insert(node, entry).and_then(|old| old.actor) {
                old.stop(Some("replaced".into()));
            }
            args
        };
        let me = self.clone();
        tokio::spawn(async move {
            let (actor, ended) = match Actor::spawn(None, LinkActor, args).await {
                Ok(started) => started,
                Err(e) => {
                    tracing::error!(peer = node, error = %e, "cannot start a cluster link");
                    return;
                }
            };
            {
                let mut links = me.links.write();
                match links.get_mut(&node) {
                    Some(entry) if entry.incarnation == incarnation && entry.actor.is_none() => {
                        entry.actor = Some(actor.clone());
                    }
                    _ => actor.stop(Some("superseded".into())),
                }
            }
            // Supervision: a link stops only when replaced (its entry then names another
            // actor) or when it crashed, and then it is restarted for the same peer. Frames
            // it had queued are lost (as on a broken connection) and rooms' requests are
            // retried by their sessions.
            let _ = ended.await;
            me.link_ended(node, actor.get_id());
        });
    }

    /// The link actor `id` of `node` stopped: restarted if it was still the current one.
    fn link_ended(self: &Arc<Self>, node: NodeId, id: ractor::ActorId) {
        let crashed = {
            let mut links = self.links.write();
            match links.get(&node) {
                Some(entry) if entry.actor.as_ref().is_some_and(|a| a.get_id() == id) => {
                    links.remove(&node).map(|l| (l.addr, l.incarnation))
                }
                _ => None,
            }
        };
        if let Some((addr, incarnation)) = crashed {
            metrics::counter!("voiceflow_actor_crashes_total", "kind" => "link").increment(1);
            tracing::error!(peer = node, "cluster link stopped; restarting it");
            self.ensure_link(node, addr, incarnation);
        }
    }

    /// A frame from peer `from` (after its stream's hello).
    async fn on_frame(self: &Arc<Self>, ctx: &NodeContext, from: NodeId, msg: PeerMsg) {
        inbound::handle(self, ctx, from, msg).await;
    }

    /// A peer said hello on a stream.
    fn on_hello(self: &Arc<Self>, ctx: &NodeContext, info: MemberInfo) {
        let change = self.membership.lock().heard(info, Instant::now());
        self.apply(ctx, change);
        self.flush_swim();
    }

    /// A SWIM packet from `from`.
    fn on_swim(self: &Arc<Self>, ctx: &NodeContext, from: NodeId, packet: &[u8]) {
        let result = match self.membership.lock().swim() {
            Some(swim) => swim.on_packet(from, packet, Instant::now()),
            None => {
                tracing::warn!(
                    peer = from,
                    "a SWIM packet reached a node running all-to-all: every node of a cluster must use the same cluster.membership"
                );
                return;
            }
        };
        match result {
            Ok(change) => self.apply(ctx, change),
            Err(e) => {
                tracing::warn!(peer = from, error = %e, "bad SWIM packet; dropped");
                metrics::counter!("voiceflow_cluster_bad_frames_total").increment(1);
            }
        }
        self.flush_swim();
    }

    /// Sends the packets SWIM queued, dialling members it names that have no link yet.
    fn flush_swim(self: &Arc<Self>) {
        let packets = match self.membership.lock().swim() {
            Some(swim) => swim.take_packets(),
            None => return,
        };
        for (to, packet) in packets {
            if to.node == self.me {
                continue;
            }
            self.ensure_link(to.node, to.addr, to.incarnation);
            if let Some(link) = self.link(to.node) {
                link.send(Lane::Swim, PeerMsg::Swim { packet });
            }
        }
    }

    /// A peer's heartbeat with its member list.
    fn on_heartbeat(self: &Arc<Self>, ctx: &NodeContext, from: MemberInfo, members: &[MemberInfo]) {
        let mut m = self.membership.lock();
        let Some(all) = m.all_to_all() else {
            drop(m);
            tracing::warn!(
                peer = from.node_id,
                "a heartbeat reached a node running SWIM: every node of a cluster must use the same cluster.membership"
            );
            return;
        };
        let mut change = all.heard(from, Instant::now());
        let gossip = all.merge(members, Instant::now());
        drop(m);
        change.placement |= gossip.placement;
        change.dial.extend(gossip.dial);
        change.down.extend(gossip.down);
        self.apply(ctx, change);
    }

    /// Acts on a membership change: dial new nodes, rebalance rooms, void the dead's calls.
    fn apply(self: &Arc<Self>, ctx: &NodeContext, change: Change) {
        for info in change.dial {
            let Ok(addr) = info.quic_addr.parse::<SocketAddr>() else {
                continue;
            };
            if info.node_id != self.me {
                self.ensure_link(info.node_id, addr, info.incarnation);
            }
        }
        for node in &change.down {
            // The link stays: it keeps redialling, so a node that was only cut off (or
            // restarts) is heard again when the network heals.
            self.fail_pending(*node);
            tracing::warn!(peer = node, "cluster peer is gone");
        }
        if change.placement || !change.down.is_empty() {
            // Before searches route by the new placement: rooms this node indexed may come
            // back from another node with entries its index lacks.
            if let Some(search) = &ctx.search {
                search.placement_changed();
            }
            let owners = self.membership.lock().owners();
            *self.owners.write() = Arc::new(owners.clone());
            metrics::gauge!("voiceflow_cluster_owners").set(owners.len() as f64);
            let moved = ctx.directory.rebalance(&change.down);
            self.sessions
                .owners_changed(|room| membership::owner_among(&owners, room.0));
            let presence = ctx.presence.clone();
            tokio::spawn(async move { presence.rebalance().await });
            tracing::info!(owners = ?owners, rooms_moving = moved, "placement changed");
        }
        // Once placement no longer names them: a client sending again reaches the new owner.
        for node in &change.down {
            let failed = self.sessions.node_down(*node);
            if failed > 0 {
                tracing::info!(
                    peer = node,
                    failed,
                    "requests the peer never answered failed"
                );
            }
        }
    }

    /// Calls and releases waiting on a node that is gone.
    fn fail_pending(&self, node: NodeId) {
        for call in take_where(&mut self.calls.lock(), |c| c.node == node) {
            (call.done)(Err(send::unavailable_body()));
        }
        for release in take_where(&mut self.releases.lock(), |r| r.node == node) {
            // A dead node runs nothing.
            let _ = release.done.send(false);
        }
    }

    fn send_heartbeats(&self, ctx: &NodeContext) {
        let (from, members) = {
            let mut m = self.membership.lock();
            m.set_my_counts(
                ctx.directory.active_rooms() as u32,
                self.sessions.len() as u32,
            );
            if m.swim().is_some() {
                // SWIM probes instead.
                return;
            }
            (m.me(), m.list())
        };
        let msg = PeerMsg::Heartbeat { from, members };
        for (node, link) in self.links.read().iter() {
            if !self.is_blocked(*node) {
                link.handle.send(Lane::Control, msg.clone());
            }
        }
    }
}

/// Sends heartbeats, detects silent peers, and expires calls nobody answered.
async fn heartbeats(inner: Arc<ClusterInner>, ctx: NodeContext) {
    let mut every = tokio::time::interval(inner.heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Wake for the next heartbeat, or earlier when a peer's timeout (or the lease) passes.
        let deadline = inner.membership.lock().next_deadline(Instant::now());
        let beat = match deadline {
            Some(at) => tokio::select! {
                _ = every.tick() => true,
                () = tokio::time::sleep_until((at + Duration::from_millis(1)).into()) => false,
            },
            None => {
                every.tick().await;
                true
            }
        };
        if beat {
            inner.send_heartbeats(&ctx);
        }
        let change = inner.membership.lock().tick(Instant::now());
        if change.placement || !change.down.is_empty() || !change.dial.is_empty() {
            inner.apply(&ctx, change);
        }
        inner.flush_swim();
        let expired = take_where(&mut inner.calls.lock(), |c| {
            c.started.elapsed() > Duration::from_secs(30)
        });
        for call in expired {
            (call.done)(Err(send::unavailable_body()));
        }
        let m = inner.membership.lock();
        let up = m
            .list()
            .iter()
            .filter(|i| i.state == MemberState::Up)
            .count();
        metrics::gauge!("voiceflow_cluster_members_up").set(up as f64);
    }
}

/// Removes and returns the entries of `map` that match.
fn take_where<T>(map: &mut HashMap<u64, T>, matches: impl Fn(&T) -> bool) -> Vec<T> {
    let ids: Vec<u64> = map
        .iter()
        .filter(|(_, v)| matches(v))
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter().filter_map(|id| map.remove(&id)).collect()
}
