//! What every actor on a node shares.

use std::sync::{Arc, Weak};
use std::time::Duration;

use voiceflow_schema::Store;
use voiceflow_wire::{Snowflake, SnowflakeGenerator};

use crate::cluster::Cluster;
use crate::directory::RoomDirectory;
use crate::error::ActorError;

/// Limits and timings of rooms and sessions (a slice of the node's `Config`).
#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// A room with no live members and no pending writes stops after this long.
    pub room_idle_timeout: Duration,
    /// Typing ends by itself this long after the last `typing:start`.
    pub typing_ttl: Duration,
    /// Most messages replayed by a `room:join` with `since`.
    pub replay_limit: u32,
    /// How long a room that keeps no messages can replay them from memory.
    pub unrecorded_window: Duration,
    /// Recent (user, nonce) pairs each room remembers without asking storage.
    pub nonce_cache: usize,
    /// Frames a session may have queued before it is closed as a slow consumer.
    pub outbound_queue_frames: usize,
    /// How often a session tells its user's presence actor it is alive.
    pub presence_heartbeat: Duration,
    /// Most distinct users and roles one message may mention (`<@id>`, `<@&id>`).
    pub max_mentions: usize,
    /// Newest mention rows kept per user (`[mentions] kept_per_user`).
    pub mentions_kept: u32,
    /// A mention row written trims its user's rows with a chance of one in this.
    pub mention_trim_one_in: u32,
    /// Community members read per page when a role or `@everyone` mention is delivered.
    pub mention_fanout_page: u32,
}

impl Default for ActorConfig {
    fn default() -> Self {
        ActorConfig {
            room_idle_timeout: Duration::from_secs(60),
            typing_ttl: Duration::from_secs(6),
            replay_limit: 1000,
            unrecorded_window: Duration::from_secs(300),
            nonce_cache: 4096,
            outbound_queue_frames: 8192,
            presence_heartbeat: Duration::from_secs(15),
            max_mentions: 50,
            mentions_kept: 1_000,
            mention_trim_one_in: 32,
            mention_fanout_page: 1_000,
        }
    }
}

/// What voice channels need: the node's media plane, what clients are told, limits.
#[derive(Debug)]
pub struct VoiceRuntime {
    /// The node's media plane (one UDP socket, the media loop), started on first use.
    pub media: voiceflow_media::MediaPlane,
    /// STUN/TURN servers handed to clients.
    pub ice_servers: Vec<voiceflow_wire::v1::voice::IceServer>,
    /// The node's own TURN server, whose short-lived credentials are added per user.
    pub turn: Option<TurnIssuer>,
    /// Most participants in one voice channel.
    pub capacity: usize,
    /// Most participants on one stage (listeners included).
    pub stage_capacity: usize,
    /// Most hosts and speakers on one stage.
    pub stage_speakers: usize,
    /// Most participants publishing video (camera or screen) at once per channel.
    pub max_video_publishers: usize,
    /// A participant not heard (no heartbeat) for this long is removed.
    pub ttl: Duration,
    /// How long 1:1 calls ring, connect and wait for a dropped side.
    pub call_timings: crate::call::CallTimings,
}

/// Hands out credentials of the node's TURN server ("TURN REST API" scheme).
#[derive(Debug, Clone)]
pub struct TurnIssuer {
    /// `turn:` URLs (UDP and TCP).
    pub urls: Vec<String>,
    /// The shared secret.
    pub secret: voiceflow_media::turn::TurnSecret,
    /// How long a credential may start allocations.
    pub ttl: Duration,
}

impl VoiceRuntime {
    /// The configured servers, then the node's TURN server with a credential for `user_id`.
    pub fn ice_servers_for(&self, user_id: Snowflake) -> Vec<voiceflow_wire::v1::voice::IceServer> {
        let mut servers = self.ice_servers.clone();
        if let Some(turn) = &self.turn {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            match turn
                .secret
                .issue(user_id.0, now + turn.ttl.as_secs().max(1))
            {
                Ok((username, credential)) => {
                    servers.push(voiceflow_wire::v1::voice::IceServer {
                        urls: turn.urls.clone(),
                        username: Some(username),
                        credential: Some(credential),
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot sign a TURN credential"),
            }
        }
        servers
    }
}

/// What a node's context is made of, apart from the directories it builds around itself.
pub struct NodeParts {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Message and entity ids.
    pub ids: Arc<SnowflakeGenerator>,
    /// Timings and limits.
    pub config: Arc<ActorConfig>,
    /// This node's sessions.
    pub sessions: crate::registry::SessionRegistry,
    /// Uploaded files.
    pub blobs: Arc<dyn voiceflow_schema::BlobStore>,
    /// Voice channels' media.
    pub voice: Arc<VoiceRuntime>,
    /// Presence timings (heartbeats, TTL, warm-up).
    pub presence: crate::presence::PresenceTimings,
    /// The cluster this node is a member of; `None` runs every room and user here.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// The node's message index (`[search] enabled`), fed by the rooms it owns.
    pub search: Option<voiceflow_search::SearchIndex>,
    /// Where presence actors hand Web Pushes (`None`: push is off).
    pub push: Option<Arc<dyn crate::push::PushSink>>,
}

/// Shared handles, cheap to clone (one `Arc`). Its directories start actors with this same
/// context: they are built inside it and hold it weakly, so nothing is set after start-up
/// and no `Arc` cycle keeps a stopped node alive.
#[derive(Clone)]
pub struct NodeContext(Arc<NodeShared>);

/// What every actor on a node shares (reached through [`NodeContext`]).
pub struct NodeShared {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Message and entity ids.
    pub ids: Arc<SnowflakeGenerator>,
    /// The way to reach rooms.
    pub directory: RoomDirectory,
    /// Timings and limits.
    pub config: Arc<ActorConfig>,
    /// This node's sessions (deliveries from rooms on other nodes go through it).
    pub sessions: crate::registry::SessionRegistry,
    /// This node's presence actors.
    pub presence: crate::presence::PresenceDirectory,
    /// Uploaded files (attachments of `file` and `voice_note` messages).
    pub blobs: Arc<dyn voiceflow_schema::BlobStore>,
    /// Voice channels' media (the SFU).
    pub voice: Arc<VoiceRuntime>,
    /// The node's message index: rooms hand it their committed batches.
    pub search: Option<voiceflow_search::SearchIndex>,
    /// Web Push delivery (`None`: off).
    pub push: Option<Arc<dyn crate::push::PushSink>>,
}

impl std::ops::Deref for NodeContext {
    type Target = NodeShared;

    fn deref(&self) -> &NodeShared {
        &self.0
    }
}

impl NodeContext {
    /// Starts the room supervisor and builds the context with its directories.
    pub async fn start(parts: NodeParts) -> Result<NodeContext, ractor::SpawnErr> {
        let rooms = crate::directory::RoomTable::start(parts.cluster.clone()).await?;
        parts
            .sessions
            .start_heartbeats(parts.config.presence_heartbeat);
        Ok(NodeContext(Arc::new_cyclic(|me| {
            let me = ContextRef(me.clone());
            NodeShared {
                directory: RoomDirectory::new(me.clone(), rooms, parts.cluster.clone()),
                presence: crate::presence::PresenceDirectory::new(
                    me,
                    parts.presence,
                    parts.cluster,
                ),
                store: parts.store,
                ids: parts.ids,
                config: parts.config,
                sessions: parts.sessions,
                blobs: parts.blobs,
                voice: parts.voice,
                search: parts.search,
                push: parts.push,
            }
        })))
    }
}

#[cfg(test)]
impl NodeContext {
    /// A handle that does not keep the context alive (tests check nothing else does).
    pub(crate) fn downgrade(&self) -> Weak<NodeShared> {
        Arc::downgrade(&self.0)
    }
}

/// How a directory reaches the context it starts actors with, without owning it.
#[derive(Clone)]
pub(crate) struct ContextRef(Weak<NodeShared>);

impl ContextRef {
    /// The context; `Unavailable` once the node is gone (nothing new starts then).
    pub(crate) fn get(&self) -> Result<NodeContext, ActorError> {
        self.0
            .upgrade()
            .map(NodeContext)
            .ok_or(ActorError::Unavailable)
    }
}
