//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use ractor::ActorRef;
use voiceflow_actors::supervisor::SupervisorMsg;
use voiceflow_actors::{NodeContext, Outbox};

use crate::auth::Auth;
use crate::config::Config;

/// Live connections, so shutdown can tell each one to go away.
#[derive(Default)]
pub struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Outbox>>,
}

impl Connections {
    /// Connections of node `node_id`: session ids carry the node id in their top bits, so they
    /// are unique in the whole cluster.
    pub fn for_node(node_id: u16) -> Self {
        Connections {
            next_id: AtomicU64::new(u64::from(node_id) << 48),
            open: Mutex::default(),
        }
    }

    /// Registers a new connection and returns its session id.
    pub fn register(&self, outbox: Outbox) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.open.lock().insert(id, outbox);
        metrics::gauge!("voiceflow_connections").increment(1.0);
        id
    }

    /// Forgets a closed connection.
    pub fn unregister(&self, id: u64) {
        if self.open.lock().remove(&id).is_some() {
            metrics::gauge!("voiceflow_connections").decrement(1.0);
        }
    }

    /// Open connections.
    pub fn count(&self) -> usize {
        self.open.lock().len()
    }

    /// Asks every connection to close with `reason`.
    pub fn close_all(&self, reason: voiceflow_actors::CloseReason) {
        for outbox in self.open.lock().values() {
            outbox.close(reason.clone());
        }
    }
}

/// Shared handles of a running node.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Actor-side handles (store, ids, directory).
    pub ctx: NodeContext,
    /// Tokens and passwords.
    pub auth: Auth,
    /// Open WebSockets.
    pub connections: Arc<Connections>,
    /// Supervisor of session actors.
    pub sessions: ActorRef<SupervisorMsg>,
    /// Set once shutdown began: `/readyz` fails and new WebSockets are refused.
    pub draining: Arc<AtomicBool>,
    /// Prometheus renderer.
    pub metrics: crate::metrics::Metrics,
    /// Cluster membership, when the node is in a cluster.
    pub cluster: Option<crate::cluster::ClusterNode>,
    /// Where uploaded files live (`[files]`).
    pub blobs: Arc<dyn voiceflow_schema::BlobStore>,
    /// Rate limits and per-frame limits (`[limits]`).
    pub limits: Arc<crate::limits::Limits>,
    /// REST write buckets and upload slots (`[limits]`, `[files]`).
    pub rest: Arc<crate::rest_limits::RestLimits>,
}
