//! The `[files]` table: attachments (`POST /api/v1/files`), where they are kept and what one
//! user may upload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StorageKind;

/// Where uploaded files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesBackend {
    /// A directory (`files.dir`) of this node: one file plus a JSON metadata file per upload.
    Dir,
    /// The `files` and `file_chunks` tables of the CQL store (needs `storage = "scylla"`),
    /// shared by every node of a cluster.
    Cql,
}

/// The `[files]` table. An upload is spooled to a temporary file (in `<dir>/.incoming`) as it
/// arrives and handed to the blob store once complete, so it never sits whole in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Largest file accepted, bytes; a larger upload gets 413 PAYLOAD_TOO_LARGE (as soon as
    /// it passes the limit) and nothing is stored.
    pub max_bytes: u64,
    /// Directory of the `dir` backend [default: `<data_dir>/blobs`]; its `.incoming`
    /// subdirectory holds uploads in progress (with either backend).
    pub dir: Option<PathBuf>,
    /// `dir` or `cql` [default: `dir` with the embedded store, `cql` with `storage =
    /// "scylla"`]. A cluster on `dir` only works if every node mounts the same directory.
    pub backend: Option<FilesBackend>,
    /// An upload whose body delivers no bytes for this long is cut off with 408
    /// REQUEST_TIMEOUT and its partial data removed, seconds.
    pub body_idle_timeout_secs: u64,
    /// Uploads one user may have in progress at once on this node; one more gets 429
    /// RATE_LIMITED.
    pub max_concurrent_per_user: u32,
    /// Bytes one user may have stored in all (the sizes of every file they uploaded); an
    /// upload that would pass it gets 413 QUOTA_EXCEEDED. 0: no quota.
    pub quota_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_bytes: 25 * 1024 * 1024,
            dir: None,
            backend: None,
            body_idle_timeout_secs: 20,
            max_concurrent_per_user: 4,
            quota_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl FilesConfig {
    /// The backend in effect for `storage`.
    pub fn backend_for(&self, storage: StorageKind) -> FilesBackend {
        self.backend.unwrap_or(match storage {
            StorageKind::Embedded => FilesBackend::Dir,
            StorageKind::Scylla => FilesBackend::Cql,
        })
    }

    /// The directory of the `dir` backend.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("blobs"))
    }

    /// Where uploads in progress are spooled (beside the blobs, so that moving a finished one
    /// into the `dir` backend is a rename).
    pub fn spool_dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir_in(data_dir).join(".incoming")
    }

    /// How long an upload body may deliver nothing.
    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.body_idle_timeout_secs.max(1))
    }

    /// The quota, if there is one.
    pub fn quota(&self) -> Option<u64> {
        (self.quota_bytes > 0).then_some(self.quota_bytes)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes == 0 {
            return Err("files.max_bytes must be positive".into());
        }
        if self.body_idle_timeout_secs == 0 {
            return Err("files.body_idle_timeout_secs must be positive".into());
        }
        if self.max_concurrent_per_user == 0 {
            return Err("files.max_concurrent_per_user must be positive".into());
        }
        Ok(())
    }
}
