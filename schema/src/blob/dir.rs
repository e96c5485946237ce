//! The directory blob store: `<root>/<shard>/<id>` holds a file's bytes and
//! `<root>/<shard>/<id>.json` its [`BlobMeta`], where the shard is two hex digits of the id's
//! millisecond part (256 directories, filled evenly over time).
//!
//! A put writes each of the two files under a temporary name (`.<id>.<random>.tmp`), fsyncs
//! it, renames it into place, and finally fsyncs the directory: the bytes first, then the
//! metadata, so a blob whose metadata exists is complete and survives a crash or restart.
//! Temporary files left by a crash are removed when the store is opened (once they are
//! older than [`STALE_TEMP`], so a put of another process sharing the directory is spared).
//! Every file is created `0600`: uploads are readable by the node's user only.
//!
//! Per-user usage is the sum of the sizes in the metadata files, read once when the store is
//! opened and kept up to date by every put (the metadata files are the truth, so there is no
//! counter to drift).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use voiceflow_wire::Snowflake;

use super::{BlobMeta, BlobStore, check_size};
use crate::store::{StoreError, StoreResult};

/// Temporary files older than this are left-overs of a crash.
pub const STALE_TEMP: Duration = Duration::from_secs(600);

/// Blobs in a directory; see the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirBlobStore {
    root: Arc<PathBuf>,
    /// Bytes stored per uploader.
    usage: Arc<Mutex<HashMap<Snowflake, u64>>>,
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("blob store {}: {e}", path.display()))
}

impl DirBlobStore {
    /// Opens (creating if needed) the store in `root` and removes stale temporary files.
    pub fn open(root: &Path) -> StoreResult<DirBlobStore> {
        fs::create_dir_all(root).map_err(|e| io_error(root, e))?;
        let store = DirBlobStore {
            root: Arc::new(root.to_path_buf()),
            usage: Arc::default(),
        };
        store.sweep_temporaries();
        store.count_usage();
        Ok(store)
    }

    /// Adds up the sizes of every stored blob per uploader (unreadable metadata is skipped:
    /// it is not a blob [`BlobStore::get`] would serve).
    fn count_usage(&self) {
        let mut usage = HashMap::new();
        for shard in fs::read_dir(self.root.as_path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for entry in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let meta = fs::read(&path)
                    .ok()
                    .and_then(|json| serde_json::from_slice::<BlobMeta>(&json).ok());
                if let Some(meta) = meta {
                    *usage.entry(meta.uploaded_by).or_insert(0u64) += meta.size;
                }
            }
        }
        *self.usage.lock() = usage;
    }

    fn add_usage(&self, meta: &BlobMeta) {
        let mut usage = self.usage.lock();
        *usage.entry(meta.uploaded_by).or_insert(0) += meta.size;
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn shard(&self, id: Snowflake) -> PathBuf {
        self.root.join(format!("{:02x}", (id.0 >> 22) & 0xff))
    }

    fn data_path(&self, id: Snowflake) -> PathBuf {
        self.shard(id).join(id.to_string())
    }

    fn meta_path(&self, id: Snowflake) -> PathBuf {
        self.shard(id).join(format!("{id}.json"))
    }

    fn sweep_temporaries(&self) {
        let Ok(shards) = fs::read_dir(self.root.as_path()) else {
            return;
        };
        for shard in shards.flatten() {
            let Ok(entries) = fs::read_dir(shard.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= STALE_TEMP);
                if name.starts_with('.') && name.ends_with(".tmp") && stale {
                    tracing::info!(file = %entry.path().display(), "removing a temporary blob file left by a crash");
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    fn put_blocking(&self, meta: &BlobMeta, bytes: &[u8]) -> StoreResult<()> {
        check_size(meta, bytes.len(), "put")?;
        let shard = self.shard(meta.id);
        let new_shard = !shard.exists();
        fs::create_dir_all(&shard).map_err(|e| io_error(&shard, e))?;
        if new_shard {
            sync_dir(&self.root)?;
        }
        let meta_path = self.meta_path(meta.id);
        if meta_path.exists() {
            return Err(StoreError::Conflict { field: "id" });
        }
        let json = serde_json::to_vec(meta)
            .map_err(|e| StoreError::Corrupt(format!("blob metadata: {e}")))?;
        write_atomic(&shard, &self.data_path(meta.id), meta.id, bytes)?;
        write_atomic(&shard, &meta_path, meta.id, &json)?;
        sync_dir(&shard)?;
        self.add_usage(meta);
        Ok(())
    }

    /// Like [`Self::put_blocking`] with the bytes in the file at `source`: moved into place
    /// (copied when it lives on another file system), never read into memory.
    fn put_file_blocking(&self, meta: &BlobMeta, source: &Path) -> StoreResult<()> {
        let len = fs::metadata(source).map_err(|e| io_error(source, e))?.len();
        if len != meta.size {
            return Err(StoreError::Corrupt(format!(
                "put: blob {} has {len} bytes, its metadata says {}",
                meta.id, meta.size
            )));
        }
        let shard = self.shard(meta.id);
        let new_shard = !shard.exists();
        fs::create_dir_all(&shard).map_err(|e| io_error(&shard, e))?;
        if new_shard {
            sync_dir(&self.root)?;
        }
        let meta_path = self.meta_path(meta.id);
        if meta_path.exists() {
            return Err(StoreError::Conflict { field: "id" });
        }
        let json = serde_json::to_vec(meta)
            .map_err(|e| StoreError::Corrupt(format!("blob metadata: {e}")))?;
        let data_path = self.data_path(meta.id);
        let temp = temp_path(&shard, meta.id);
        let placed = fs::rename(source, &temp)
            .or_else(|_| {
                // Another file system: copy into a private file.
                let mut from = File::open(source)?;
                let mut to = create_private(&temp)?;
                std::io::copy(&mut from, &mut to).map(|_| ())
            })
            .and_then(|()| {
                let file = File::options().write(true).open(&temp)?;
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, &data_path));
        if let Err(e) = placed {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&data_path, e));
        }
        write_atomic(&shard, &meta_path, meta.id, &json)?;
        sync_dir(&shard)?;
        self.add_usage(meta);
        Ok(())
    }

    fn meta_blocking(&self, id: Snowflake) -> StoreResult<Option<BlobMeta>> {
        let path = self.meta_path(id);
        let json = match fs::read(&path) {
            Ok(json) => json,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path, e)),
        };
        let meta: BlobMeta = serde_json::from_slice(&json)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        if meta.id != id {
            return Err(StoreError::Corrupt(format!(
                "{} describes blob {}",
                path.display(),
                meta.id
            )));
        }
        Ok(Some(meta))
    }

    fn get_blocking(&self, id: Snowflake) -> StoreResult<Option<(BlobMeta, Bytes)>> {
        let Some(meta) = self.meta_blocking(id)? else {
            return Ok(None);
        };
        let path = self.data_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::Corrupt(format!(
                    "{}: metadata without bytes",
                    path.display()
                )));
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        check_size(&meta, bytes.len(), "get")?;
        Ok(Some((meta, Bytes::from(bytes))))
    }

    /// Runs `f` on a blocking thread (file I/O and fsync must not stall the runtime).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DirBlobStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("blob store task failed: {e}")))?
    }
}

/// A fresh temporary name in `dir` for blob `id`.
fn temp_path(dir: &Path, id: Snowflake) -> PathBuf {
    dir.join(format!(".{id}.{:016x}.tmp", rand::random::<u64>()))
}

/// Creates a new file readable and writable by its owner only.
fn create_private(path: &Path) -> std::io::Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Writes `bytes` to `dir/.<id>.<random>.tmp` (mode 0600), fsyncs it and renames it to `path`.
fn write_atomic(dir: &Path, path: &Path, id: Snowflake, bytes: &[u8]) -> StoreResult<()> {
    let temp = temp_path(dir, id);
    let written = create_private(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temp, path));
    renamed.map_err(|e| {
        let _ = fs::remove_file(&temp);
        io_error(path, e)
    })
}

/// Makes a directory's entries (a rename into it) durable.
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> StoreResult<()> {
        let meta = meta.clone();
        self.blocking(move |s| s.put_blocking(&meta, &bytes)).await
    }

    async fn put_file(&self, meta: &BlobMeta, path: &Path) -> StoreResult<()> {
        let (meta, path) = (meta.clone(), path.to_path_buf());
        self.blocking(move |s| s.put_file_blocking(&meta, &path))
            .await
    }

    async fn usage(&self, user: Snowflake) -> StoreResult<u64> {
        let usage = self.usage.lock();
        Ok(usage.get(&user).copied().unwrap_or(0))
    }

    async fn meta(&self, id: Snowflake) -> StoreResult<Option<BlobMeta>> {
        self.blocking(move |s| s.meta_blocking(id)).await
    }

    async fn get(&self, id: Snowflake) -> StoreResult<Option<(BlobMeta, Bytes)>> {
        self.blocking(move |s| s.get_blocking(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64, size: usize) -> BlobMeta {
        BlobMeta {
            id: Snowflake(id),
            room_id: Snowflake(1),
            uploaded_by: Snowflake(2),
            name: "a.bin".into(),
            size: size as u64,
            mime_type: "application/octet-stream".into(),
            created_at: 1_750_000_000_000,
        }
    }

    #[tokio::test]
    async fn put_get_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::open(dir.path()).expect("open");
        let id = (1u64 << 22) * 1234 + 5;
        let bytes = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        assert_eq!(store.meta(Snowflake(id)).await.expect("meta"), None);
        store
            .put(&meta(id, bytes.len()), bytes.clone())
            .await
            .expect("put");
        let again = store.put(&meta(id, bytes.len()), bytes.clone()).await;
        assert!(
            matches!(again, Err(StoreError::Conflict { field: "id" })),
            "{again:?}"
        );
        drop(store);

        let store = DirBlobStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.meta(Snowflake(id)).await.expect("meta"),
            Some(meta(id, bytes.len()))
        );
        let (got_meta, got) = store.get(Snowflake(id)).await.expect("get").expect("some");
        assert_eq!(got_meta, meta(id, bytes.len()));
        assert_eq!(got, bytes);
        assert_eq!(store.get(Snowflake(id + 1)).await.expect("get"), None);
        // Nothing but the two files is left in the shard.
        let shard = store.shard(Snowflake(id));
        let mut names: Vec<String> = fs::read_dir(&shard)
            .expect("shard")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![id.to_string(), format!("{id}.json")]);
    }

    #[tokio::test]
    async fn a_size_that_disagrees_is_refused_and_stale_temporaries_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirBlobStore::open(dir.path()).expect("open");
        let wrong = store.put(&meta(9, 4), Bytes::from_static(b"abc")).await;
        assert!(matches!(wrong, Err(StoreError::Corrupt(_))), "{wrong:?}");
        assert_eq!(store.meta(Snowflake(9)).await.expect("meta"), None);

        // A crash half-way through a put leaves a temporary file; a fresh one is kept (it may
        // be another process's put), an old one is removed.
        let shard = store.shard(Snowflake(9));
        fs::create_dir_all(&shard).expect("shard");
        let old = shard.join(".9.0000000000000001.tmp");
        let fresh = shard.join(".9.0000000000000002.tmp");
        fs::write(&old, b"partial").expect("write");
        fs::write(&fresh, b"partial").expect("write");
        let long_ago = std::time::SystemTime::now() - STALE_TEMP - Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(long_ago))
            .expect("age the file");
        drop(store);
        let _store = DirBlobStore::open(dir.path()).expect("reopen");
        assert!(!old.exists(), "stale temporary removed");
        assert!(fresh.exists(), "recent temporary kept");
    }
}
