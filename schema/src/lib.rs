//! VoiceFlow storage: the data model, the [`Store`] trait every backend implements, and the
//! backends.
//!
//! Layout:
//! - [`model`]: the records (users, rooms, memberships, messages, refresh tokens), shaped like
//!   the CQL tables in `schema/cql/` (one table per access path).
//! - [`store`]: the [`Store`] trait and [`StoreError`].
//! - [`embedded`]: the single-node default, an on-disk fjall database with group commit.
//! - [`cql`]: the ScyllaDB backend on the `scylla` driver (migrations, prepared statements,
//!   per-room group commit), plus the protocol v4 ↔ v3 bridge and helpers for tests that use
//!   the Cassandra 2.1 test server.
//! - [`blob`]: the [`BlobStore`] trait for uploaded files and its two backends (a directory,
//!   and the `files`/`file_chunks` CQL tables).
//! - [`contacts`]: blocks and who may reach a user (DMs, calls).
//! - [`community`]: communities, their roles and their members.
//! - [`member_names`]: the name index of community members (prefix search).
//! - [`bucket`]: time buckets that bound message-log partitions (Discord's model).
//! - [`fence`]: the rule that resolves room logs by ownership epoch (storage-level fencing).
//! - [`fixtures`]: record builders shared by both stores' tests and the benchmark.
//!
//! Binaries: `cql-bridge` (the bridge, started by `scripts/cassandra`) and `storebench` (the
//! storage benchmark of both backends). The conformance suite in `tests/conformance/` runs
//! the same tests against both backends.

pub mod blob;
pub mod bucket;
pub mod community;
pub mod contacts;
pub mod cql;
pub mod embedded;
pub mod fence;
pub mod fixtures;
#[cfg(test)]
mod fuzzing;
pub mod member_names;
pub mod model;
pub mod notify;
pub mod push;
pub mod store;

pub use blob::{BlobMeta, BlobStore};
pub use community::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, CommunityMember,
    CommunityRecord, InviteRecord, JoinRequest, OverwriteTarget, RoleRecord,
};
pub use contacts::{BlockRecord, ContactPolicy, UserSettings};
pub use cql::CqlStore;
pub use embedded::EmbeddedStore;
pub use member_names::{MemberName, NameCursor, NamePrefix};
pub use model::*;
pub use notify::{DEFAULT_SCOPE, MentionRecord, NotificationSettingRecord};
pub use push::{PushSubscriptionRecord, VapidKeyRecord};
pub use store::{Store, StoreError, StoreResult};
