//! The CQL blob store: uploaded files in the `files` (metadata) and `file_chunks` (bytes, one
//! partition per file, [`CHUNK_BYTES`] per row) tables of migration 3, on the session of a
//! [`CqlStore`]. Chunks are written first (a few at a time), the `files` row last, so a file
//! is visible only once all of its bytes are acknowledged; a put that fails part-way leaves
//! unreferenced chunks, which nothing reads (an upload never reuses an id).
//!
//! A file put from disk ([`BlobStore::put_file`]) is read a chunk at a time, so at most
//! [`CHUNKS_IN_FLIGHT`] + 1 chunks of it are in memory. Each file also gets a `file_usage` row
//! (migration 5) in its uploader's partition, just before its `files` row: a user's usage is
//! the sum of that partition.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use tokio::io::AsyncReadExt;
use voiceflow_wire::Snowflake;

use super::codec::{driver_error, from_cql_time, id, snowflake, to_cql_time};
use super::{Cql, CqlStore};
use crate::blob::{BlobMeta, BlobStore, check_size};
use crate::store::{StoreError, StoreResult};

/// Bytes per `file_chunks` row.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// Chunk writes or reads of one file in flight at once.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Columns of `files`, in the order [`FileRow`] decodes them.
const FILE_COLUMNS: &str =
    "id, room_id, uploaded_by, name, size, mime_type, chunk_size, chunks, created_at";

/// A `files` row.
type FileRow = (i64, i64, i64, String, i64, String, i32, i32, CqlTimestamp);

/// The blob store on a CQL store's session; see the module docs.
pub struct CqlBlobStore {
    cql: Arc<Cql>,
    chunk_bytes: usize,
    file_insert: PreparedStatement,
    file_get: PreparedStatement,
    chunk_insert: PreparedStatement,
    chunk_get: PreparedStatement,
    usage_insert: PreparedStatement,
    usage_get: PreparedStatement,
}

impl std::fmt::Debug for CqlBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlBlobStore")
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

impl CqlBlobStore {
    /// Prepares the blob statements on `store`'s session (its keyspace is migrated already).
    pub async fn new(store: &CqlStore) -> StoreResult<CqlBlobStore> {
        Self::with_chunk_size(store, CHUNK_BYTES).await
    }

    /// Like [`Self::new`] with another chunk size (tests use small ones to get many chunks).
    pub async fn with_chunk_size(store: &CqlStore, chunk_bytes: usize) -> StoreResult<Self> {
        let cql = store.cql.clone();
        let prepare = |text: String| {
            let cql = cql.clone();
            async move {
                let mut st = cql
                    .session
                    .prepare(text.as_str())
                    .await
                    .map_err(|e| driver_error(&format!("prepare `{text}`"), e))?;
                st.set_is_idempotent(true);
                Ok::<_, StoreError>(st)
            }
        };
        Ok(CqlBlobStore {
            file_insert: prepare(format!(
                "INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            file_get: prepare(format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?")).await?,
            chunk_insert: prepare(
                "INSERT INTO file_chunks (file_id, idx, data) VALUES (?, ?, ?)".into(),
            )
            .await?,
            chunk_get: prepare("SELECT data FROM file_chunks WHERE file_id = ? AND idx = ?".into())
                .await?,
            usage_insert: prepare(
                "INSERT INTO file_usage (user_id, file_id, size) VALUES (?, ?, ?)".into(),
            )
            .await?,
            usage_get: prepare("SELECT size FROM file_usage WHERE user_id = ?".into()).await?,
            cql,
            chunk_bytes: chunk_bytes.max(1),
        })
    }

    async fn file(&self, file: Snowflake) -> StoreResult<Option<(BlobMeta, usize)>> {
        let row: Option<FileRow> = self
            .cql
            .first("read file", &self.file_get, (id(file)?,))
            .await?;
        let Some((fid, room, by, name, size, mime_type, _chunk, chunks, created)) = row else {
            return Ok(None);
        };
        let count = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("file {file}: {what} {v}")))
        };
        let meta = BlobMeta {
            id: snowflake(fid)?,
            room_id: snowflake(room)?,
            uploaded_by: snowflake(by)?,
            name,
            size: count(size, "size")?,
            mime_type,
            created_at: from_cql_time(created),
        };
        Ok(Some((meta, count(i64::from(chunks), "chunks")? as usize)))
    }

    /// Writes `chunks` (every one [`Self::chunk_bytes`] long but the last), then the usage
    /// row, then the `files` row; `meta.size` must be their total.
    async fn put_chunks(
        &self,
        meta: &BlobMeta,
        chunks: BoxStream<'_, StoreResult<Bytes>>,
    ) -> StoreResult<()> {
        let file = id(meta.id)?;
        if self.file(meta.id).await?.is_some() {
            return Err(StoreError::Conflict { field: "id" });
        }
        let size = i64::try_from(meta.size)
            .map_err(|_| StoreError::Corrupt(format!("file {} is too large", meta.id)))?;
        let count = i32::try_from(meta.size.div_ceil(self.chunk_bytes as u64))
            .map_err(|_| StoreError::Corrupt(format!("file {} has too many chunks", meta.id)))?;
        let mut written = 0u64;
        chunks
            .enumerate()
            .map(|(idx, chunk)| {
                let chunk = chunk.inspect(|c| written += c.len() as u64);
                async move {
                    let chunk = chunk?;
                    self.cql
                        .write(
                            "write file chunk",
                            &self.chunk_insert,
                            (file, idx as i32, chunk.as_ref()),
                        )
                        .await
                }
            })
            .buffer_unordered(CHUNKS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        if written != meta.size {
            return Err(StoreError::Corrupt(format!(
                "put: blob {} has {written} bytes, its metadata says {}",
                meta.id, meta.size
            )));
        }
        self.cql
            .write(
                "write file usage",
                &self.usage_insert,
                (id(meta.uploaded_by)?, file, size),
            )
            .await?;
        self.cql
            .write(
                "write file",
                &self.file_insert,
                (
                    file,
                    id(meta.room_id)?,
                    id(meta.uploaded_by)?,
                    meta.name.as_str(),
                    size,
                    meta.mime_type.as_str(),
                    self.chunk_bytes as i32,
                    count,
                    to_cql_time(meta.created_at),
                ),
            )
            .await
    }
}

/// Reads up to `len` bytes from `file` (fewer only at its end).
async fn read_chunk(file: &mut tokio::fs::File, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

#[async_trait]
impl BlobStore for CqlBlobStore {
    async fn put(&self, meta: &BlobMeta, bytes: Bytes) -> StoreResult<()> {
        check_size(meta, bytes.len(), "put")?;
        let chunks: Vec<StoreResult<Bytes>> = (0..bytes.len())
            .step_by(self.chunk_bytes)
            .map(|at| Ok(bytes.slice(at..(at + self.chunk_bytes).min(bytes.len()))))
            .collect();
        self.put_chunks(meta, futures_util::stream::iter(chunks).boxed())
            .await
    }

    async fn put_file(&self, meta: &BlobMeta, path: &Path) -> StoreResult<()> {
        let unavailable =
            |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unavailable)?;
        let chunk_bytes = self.chunk_bytes;
        // One chunk read ahead of the writes in flight; an empty chunk ends the stream.
        let chunks = futures_util::stream::try_unfold(file, move |mut file| async move {
            let chunk = read_chunk(&mut file, chunk_bytes).await?;
            Ok::<_, std::io::Error>((!chunk.is_empty()).then_some((chunk, file)))
        })
        .map_err(unavailable)
        .boxed();
        self.put_chunks(meta, chunks).await
    }

    async fn usage(&self, user: Snowflake) -> StoreResult<u64> {
        let rows: Vec<(i64,)> = self
            .cql
            .select_all("read file usage", &self.usage_get, (id(user)?,))
            .await?;
        Ok(rows.iter().map(|(size,)| (*size).max(0) as u64).sum())
    }

    async fn meta(&self, id: Snowflake) -> StoreResult<Option<BlobMeta>> {
        Ok(self.file(id).await?.map(|(meta, _)| meta))
    }

    async fn get(&self, file: Snowflake) -> StoreResult<Option<(BlobMeta, Bytes)>> {
        let Some((meta, chunks)) = self.file(file).await? else {
            return Ok(None);
        };
        let key = id(file)?;
        let parts: Vec<Vec<u8>> = futures_util::stream::iter(0..chunks)
            .map(|idx| async move {
                let row: Option<(Vec<u8>,)> = self
                    .cql
                    .first("read file chunk", &self.chunk_get, (key, idx as i32))
                    .await?;
                row.map(|(data,)| data).ok_or_else(|| {
                    StoreError::Corrupt(format!("file {file}: chunk {idx} of {chunks} is missing"))
                })
            })
            .buffered(CHUNKS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut bytes = BytesMut::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        for part in parts {
            bytes.extend_from_slice(&part);
        }
        check_size(&meta, bytes.len(), "get")?;
        Ok(Some((meta, bytes.freeze())))
    }
}
