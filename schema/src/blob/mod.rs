//! Blobs: the bytes and metadata of uploaded files, behind one trait with two backends.
//!
//! - [`DirBlobStore`]: a directory (the single-node default, `<data_dir>/blobs`): each file is
//!   written to a temporary name, fsync'ed and renamed, its metadata beside it as JSON.
//! - [`CqlBlobStore`]: the `files` and `file_chunks` tables (migration 3) on the CQL store's
//!   session, for clusters: every node reads every file.
//!
//! A blob becomes visible (to [`BlobStore::meta`] and [`BlobStore::get`]) only once it is
//! completely and durably stored: its metadata is written last.
//!
//! Uploads arrive as files ([`BlobStore::put_file`]: the node spools a request body to disk
//! as it arrives, so an upload never sits whole in memory), and each store keeps how many
//! bytes every user has stored ([`BlobStore::usage`], for the per-user quota).

mod dir;

use async_trait::async_trait;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;

pub use self::dir::DirBlobStore;
pub use crate::cql::blobs::CqlBlobStore;
use crate::store::StoreResult;

/// What is known about a stored file besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobMeta {
    /// The file's id (a snowflake from the node that took the upload).
    pub id: Snowflake,
    /// The room whose members may read it.
    pub room_id: Snowflake,
    /// Who uploaded it.
    pub uploaded_by: Snowflake,
    /// Sanitised file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type sniffed from the bytes.
    pub mime_type: String,
    /// Upload time, Unix milliseconds.
    pub created_at: u64,
}

/// Where uploaded files live. Failures are [`crate::StoreError`]s: `Unavailable` when the
/// backend cannot be reached or written (nothing was stored), `Corrupt` when what is stored
/// does not add up (a size or chunk count that disagrees with the metadata), `Conflict{id}`
/// when a blob with that id exists already.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` (whose length is `meta.size`) and `meta` durably; the blob is visible
    /// only once this returned `Ok`.
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> StoreResult<()>;
    /// Stores the file at `path` (whose length is `meta.size`) and `meta` durably, reading it
    /// a chunk at a time; the blob is visible only once this returned `Ok`. The store may move
    /// the file away (the directory store renames it into place); whatever is left at `path`
    /// stays the caller's to remove.
    async fn put_file(&self, meta: &BlobMeta, path: &Path) -> StoreResult<()>;
    /// Bytes of every stored blob `user` uploaded (the per-user storage quota counts these).
    async fn usage(&self, user: Snowflake) -> StoreResult<u64>;
    /// A blob's metadata, without reading its bytes.
    async fn meta(&self, id: Snowflake) -> StoreResult<Option<BlobMeta>>;
    /// A blob's metadata and bytes.
    async fn get(&self, id: Snowflake) -> StoreResult<Option<(BlobMeta, Bytes)>>;
}

/// Checks that `bytes` has the size `meta` claims (`what` names the operation).
pub(crate) fn check_size(meta: &BlobMeta, len: usize, what: &str) -> StoreResult<()> {
    if meta.size != len as u64 {
        return Err(crate::StoreError::Corrupt(format!(
            "{what}: blob {} has {len} bytes, its metadata says {}",
            meta.id, meta.size
        )));
    }
    Ok(())
}
