//! The `[cluster]` table of the node's config.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a node finds and talks to the other nodes. Off by default (a single node).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Join a cluster. Needs `storage = "scylla"`: every node reads and writes the same logs.
    pub enabled: bool,
    /// UDP address the QUIC endpoint binds for inter-node traffic.
    pub listen: SocketAddr,
    /// The QUIC address other nodes dial to reach this one [default: `listen`].
    pub advertise: Option<SocketAddr>,
    /// The HTTP/WebSocket address clients are sent to for this node [default: the node's
    /// `listen`]; shown by `GET /cluster`.
    pub advertise_http: Option<SocketAddr>,
    /// QUIC addresses of nodes to contact at start; any one live member is enough to join.
    pub seeds: Vec<SocketAddr>,
    /// PEM file of the cluster CA certificate; peers must present a certificate it signed.
    pub ca_cert: PathBuf,
    /// PEM file of this node's certificate (signed by the cluster CA).
    pub cert: PathBuf,
    /// PEM file of this node's private key.
    pub key: PathBuf,
    /// How members watch each other: `"all-to-all"` (every node heartbeats every other one:
    /// simplest, and cheapest up to a few dozen nodes) or `"swim"` (SWIM failure detection
    /// with indirect probes, suspicion and piggybacked gossip: O(1) messages per node per
    /// period whatever the size; see ARCHITECTURE.md "Past one machine"). Every node of a
    /// cluster must use the same one, and `"swim"` needs every node at protocol 11.
    pub membership: MembershipKind,
    /// How often a node sends a heartbeat (with its view of the members) to every peer, ms.
    /// With `membership = "swim"`: the probe period (one member probed per period; the
    /// probe's ack is awaited half of it before indirect probes).
    pub heartbeat_interval_ms: u64,
    /// A peer not heard from for this long is marked down and its rooms move, ms. With
    /// `membership = "swim"`: how long a suspected member has to refute the suspicion before
    /// it is declared down. Either way a node fences itself after two thirds of it without a
    /// quorum heard (the lease), and owns nothing for a third of it after (re)gaining one.
    pub failure_timeout_ms: u64,
    /// Bounded hand-off: when placement moves rooms away from a node, it retires at most this
    /// many at a time and tells each new owner as each stops, which starts it at once (also
    /// this many at a time); a node without a quorum still stops everything at once
    /// [default: 64, the simulator's figure]. `0`: every lost room retires at once and its new
    /// owner starts it at its next request (the behaviour before protocol 11, and with peers
    /// older than it).
    pub handoff_batch: usize,
    /// Largest inter-node frame accepted, bytes; a peer sending more is disconnected.
    pub max_frame_bytes: usize,
    /// The newest cluster protocol version this node speaks (it speaks every version from the
    /// oldest its release knows up to this one) [default: the release's newest]. During a
    /// rolling upgrade nothing needs setting: each link speaks the highest version both ends
    /// know. `9` makes the node speak as the previous release does, `8` and `7` as the
    /// releases before it did (for a rollback, or to hold new nodes back until every node is
    /// upgraded).
    pub protocol_max: u8,
    /// For partition tests only: `POST /cluster/faults {"block": [node ids]}` makes this node
    /// drop all traffic to and from those peers, as if the network between them were cut.
    pub fault_injection: bool,
}

/// The membership protocol of a cluster (`cluster.membership`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipKind {
    /// Heartbeats from every node to every other one, with member lists (gossip).
    #[default]
    AllToAll,
    /// SWIM (the `foca` crate) with the same quorum, lease and catch-up rules.
    Swim,
}

impl ClusterConfig {
    /// The cluster protocol versions this node speaks.
    pub fn protocols(&self) -> std::ops::RangeInclusive<u8> {
        voiceflow_wire::cluster::MIN_PROTOCOL_VERSION..=self.protocol_max
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            advertise: None,
            advertise_http: None,
            seeds: Vec::new(),
            ca_cert: PathBuf::from("./certs/ca.pem"),
            cert: PathBuf::from("./certs/node.pem"),
            key: PathBuf::from("./certs/node.key"),
            membership: MembershipKind::AllToAll,
            heartbeat_interval_ms: 500,
            failure_timeout_ms: 3000,
            handoff_batch: 64,
            max_frame_bytes: 16 * 1024 * 1024,
            protocol_max: voiceflow_wire::cluster::PROTOCOL_VERSION,
            fault_injection: false,
        }
    }
}
