//! VoiceFlow actors: every room and every client session is a supervised ractor actor.
//!
//! Layout:
//! - [`context`]: what every actor on a node shares (store, id generator, directory, limits).
//! - [`directory`]: room id → room actor; starts rooms on first use, the only way to reach one.
//! - [`room`]: the room actor (live members, ordering, group-committed writes, fan-out).
//! - [`session`]: the session actor, one per WebSocket connection.
//! - [`outbox`]: a session's bounded outbound queue of pre-encoded frames.
//! - [`supervisor`]: supervisors for rooms and sessions.
//! - [`cluster`]: the seam to the cluster (who owns a room, forwarding to its node).
//! - [`remote`]: how rooms reach sessions on other nodes ([`remote::Recipient`]).
//! - [`registry`]: this node's sessions and the remote rooms they follow (Manifold fan-out).
//! - [`forwarded`]: a session's requests to rooms on other nodes that await an answer.
//! - [`permissions`]: what a community member may do in a channel (IO-free, Discord's order).
//! - [`presence`]: one presence actor per user (placed like rooms), fed by session heartbeats.
//! - [`call`]: the call actor of a 1:1 call and its state machine (a child of the DM room).
//! - [`error`]: [`ActorError`], turned into client error bodies in one place.

pub mod call;
pub mod cluster;
pub mod contacts;
pub mod context;
pub mod directory;
pub mod error;
pub mod forwarded;
pub mod outbox;
pub mod permissions;
pub mod presence;
pub mod push;
pub mod registry;
pub mod remote;
pub mod room;
pub mod session;
pub mod supervisor;

pub use context::{ActorConfig, NodeContext};
pub use directory::{RoomDirectory, Route};
pub use error::ActorError;
pub use outbox::{CloseReason, Outbox};
pub use registry::SessionRegistry;
