//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ractor::ActorRef;
use voiceflow_actors::NodeContext;
use voiceflow_actors::supervisor::SupervisorMsg;

use crate::auth::Auth;
use crate::config::Config;

/// Shared handles of a running node.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Actor-side handles (store, ids, directory).
    pub ctx: NodeContext,
    /// Tokens and passwords.
    pub auth: Auth,
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
    /// Web Push: the VAPID public key clients subscribe with, the delivery queue.
    pub push: crate::push::PushService,
}
