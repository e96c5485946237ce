//! A deterministic simulator of a VoiceFlow cluster of 10–1,000 nodes.
//!
//! It runs the node's own membership state machine (`node/src/cluster/membership.rs`,
//! compiled in unchanged) and a SWIM membership (the `foca` crate behind the same seam), the
//! node's placement rule (rendezvous hashing, `owner_among`) and a model of room hand-offs,
//! for virtual nodes on a virtual clock and network ([`engine`]). Everything random comes from
//! the seed: the same seed prints the same tables.

mod acquire;
pub mod all_to_all;
pub mod engine;
pub mod kinds;
pub mod placement;
pub mod report;
pub mod rng;
pub mod room_types;
pub mod rooms;
pub mod scenarios;
pub mod swim;

pub use report::{Options, run};
