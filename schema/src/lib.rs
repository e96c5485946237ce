//! VoiceFlow storage: the data model, the [`Store`] trait every backend implements, and the
//! backends.
//!
//! Layout:
//! - [`model`]: the records (users, rooms, memberships, messages, refresh tokens), shaped like
//!   the CQL tables in `schema/cql/` (one table per access path).
//! - [`store`]: the [`Store`] trait and [`StoreError`].
//! - [`embedded`]: the single-node default, an on-disk fjall database with group commit.
//! - [`bucket`]: time buckets that bound message-log partitions (Discord's model).

pub mod bucket;
pub mod embedded;
pub mod model;
pub mod store;

pub use embedded::EmbeddedStore;
pub use model::*;
pub use store::{Store, StoreError, StoreResult};
