//! The blob store conformance suite: the same cases against the directory store (always) and
//! the CQL store in a fresh keyspace on the server named by `VOICEFLOW_TEST_CQL` (skipped,
//! loudly, only when that variable is unset). Test names say which: `dir::<case>` and
//! `cql::<case>`. The CQL store runs with 1000-byte chunks so that every case spans chunks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use voiceflow_schema::blob::{BlobMeta, BlobStore, CqlBlobStore, DirBlobStore};
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, test_config,
};
use voiceflow_schema::cql::{CqlConfig, CqlStore};
use voiceflow_schema::{StoreError, StoreResult};
use voiceflow_wire::Snowflake;

/// Chunk size of the CQL store under test.
const TEST_CHUNK: usize = 1000;

/// Where a case's blobs live; `open` again after dropping every handle is a reopen.
#[derive(Clone)]
enum Backend {
    Dir(Arc<tempfile::TempDir>),
    Cql(CqlConfig),
}

impl Backend {
    async fn open(&self) -> Arc<dyn BlobStore> {
        match self {
            Backend::Dir(dir) => Arc::new(DirBlobStore::open(dir.path()).expect("open dir")),
            Backend::Cql(config) => {
                let store = CqlStore::connect(config).await.expect("connect CQL");
                Arc::new(
                    CqlBlobStore::with_chunk_size(&store, TEST_CHUNK)
                        .await
                        .expect("prepare blob statements"),
                )
            }
        }
    }
}

async fn run_dir<F, Fut>(case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    case(Backend::Dir(Arc::new(
        tempfile::tempdir().expect("tempdir"),
    )))
    .await;
}

async fn run_cql<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(points) = contact_points_from_env() else {
        announce_skip(&format!("blobs cql::{name}"));
        return;
    };
    let config = test_config(points, "vf_blobs");
    let outcome = AssertUnwindSafe(case(Backend::Cql(config.clone())))
        .catch_unwind()
        .await;
    if let Err(e) = drop_keyspace(&config).await {
        eprintln!("could not drop keyspace {}: {e}", config.keyspace);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod dir {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::run_dir(crate::$case).await;
                }
            )*
        }
        mod cql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::run_cql(stringify!($case), crate::$case).await;
                }
            )*
        }
    };
}

cases!(
    round_trips_sizes_around_chunk_boundaries,
    unknown_ids_and_conflicts,
    a_reopen_keeps_everything,
    concurrent_puts_are_all_stored,
    files_put_from_disk_round_trip,
    usage_is_kept_per_uploader,
);

fn meta(id: u64, size: usize) -> BlobMeta {
    BlobMeta {
        id: Snowflake(id),
        room_id: Snowflake(10),
        uploaded_by: Snowflake(20),
        name: format!("file-{id}.bin"),
        size: size as u64,
        mime_type: "application/octet-stream".into(),
        created_at: 1_750_000_000_000 + id,
    }
}

fn bytes(seed: u64, size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn meta_by(id: u64, size: usize, user: u64) -> BlobMeta {
    BlobMeta {
        uploaded_by: Snowflake(user),
        ..meta(id, size)
    }
}

/// Writes `bytes(id, size)` to a file in `dir` and puts it from there.
async fn put_from_file(
    store: &dyn BlobStore,
    dir: &std::path::Path,
    meta: &BlobMeta,
) -> StoreResult<()> {
    let path = dir.join(format!("upload-{}", meta.id));
    std::fs::write(&path, bytes(meta.id.0, meta.size as usize)).expect("write source");
    let result = store.put_file(meta, &path).await;
    let _ = std::fs::remove_file(&path);
    result
}

async fn put(store: &dyn BlobStore, id: u64, size: usize) -> StoreResult<()> {
    store.put(&meta(id, size), bytes(id, size)).await
}

async fn round_trips_sizes_around_chunk_boundaries(backend: Backend) {
    let store = backend.open().await;
    let sizes = [
        0,
        1,
        TEST_CHUNK - 1,
        TEST_CHUNK,
        TEST_CHUNK + 1,
        3 * TEST_CHUNK,
        7 * TEST_CHUNK + 123,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let id = 1000 + i as u64;
        put(store.as_ref(), id, size).await.expect("put");
        assert_eq!(
            store.meta(Snowflake(id)).await.expect("meta"),
            Some(meta(id, size))
        );
        let (got_meta, got) = store.get(Snowflake(id)).await.expect("get").expect("some");
        assert_eq!(got_meta, meta(id, size));
        assert_eq!(got, bytes(id, size), "size {size}");
    }
}

async fn unknown_ids_and_conflicts(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.meta(Snowflake(5)).await.expect("meta"), None);
    assert_eq!(store.get(Snowflake(5)).await.expect("get"), None);
    put(store.as_ref(), 5, 10).await.expect("put");
    let again = put(store.as_ref(), 5, 20).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { field: "id" })),
        "{again:?}"
    );
    let (_, got) = store.get(Snowflake(5)).await.expect("get").expect("some");
    assert_eq!(got, bytes(5, 10), "the first put stays");
    let lying = store.put(&meta(6, 3), Bytes::from_static(b"ab")).await;
    assert!(matches!(lying, Err(StoreError::Corrupt(_))), "{lying:?}");
    assert_eq!(store.meta(Snowflake(6)).await.expect("meta"), None);
}

async fn a_reopen_keeps_everything(backend: Backend) {
    let store = backend.open().await;
    for id in 1..=3u64 {
        put(store.as_ref(), id, 2500 * id as usize)
            .await
            .expect("put");
    }
    drop(store);
    let store = backend.open().await;
    for id in 1..=3u64 {
        let size = 2500 * id as usize;
        let (got_meta, got) = store.get(Snowflake(id)).await.expect("get").expect("some");
        assert_eq!(got_meta, meta(id, size));
        assert_eq!(got, bytes(id, size));
    }
}

async fn concurrent_puts_are_all_stored(backend: Backend) {
    let store = backend.open().await;
    let puts = (0..16u64).map(|i| {
        let store = store.clone();
        async move { put(store.as_ref(), 100 + i, 1500 + i as usize).await }
    });
    for result in futures_util::future::join_all(puts).await {
        result.expect("put");
    }
    for i in 0..16u64 {
        let (_, got) = store
            .get(Snowflake(100 + i))
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got, bytes(100 + i, 1500 + i as usize));
    }
}

async fn files_put_from_disk_round_trip(backend: Backend) {
    let store = backend.open().await;
    let spool = tempfile::tempdir().expect("spool dir");
    for (i, size) in [0, 1, TEST_CHUNK, 5 * TEST_CHUNK + 7]
        .into_iter()
        .enumerate()
    {
        let id = 3000 + i as u64;
        put_from_file(store.as_ref(), spool.path(), &meta(id, size))
            .await
            .expect("put_file");
        let (got_meta, got) = store.get(Snowflake(id)).await.expect("get").expect("some");
        assert_eq!(got_meta, meta(id, size));
        assert_eq!(got, bytes(id, size), "size {size}");
    }
    put_from_file(store.as_ref(), spool.path(), &meta(3100, 10))
        .await
        .expect("put_file");
    // A file that is not the size its metadata claims is refused, nothing is visible.
    let path = spool.path().join("short");
    std::fs::write(&path, b"abc").expect("write");
    let short = store.put_file(&meta(3101, 4), &path).await;
    assert!(matches!(short, Err(StoreError::Corrupt(_))), "{short:?}");
    assert_eq!(store.meta(Snowflake(3101)).await.expect("meta"), None);
    // An id that is taken is a conflict.
    let again = put_from_file(store.as_ref(), spool.path(), &meta(3100, 10)).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { field: "id" })),
        "{again:?}"
    );
    let missing = store
        .put_file(&meta(3102, 4), &spool.path().join("no-such-file"))
        .await;
    assert!(missing.is_err(), "{missing:?}");
    assert_eq!(store.meta(Snowflake(3102)).await.expect("meta"), None);
}

async fn usage_is_kept_per_uploader(backend: Backend) {
    let store = backend.open().await;
    let spool = tempfile::tempdir().expect("spool dir");
    assert_eq!(store.usage(Snowflake(7)).await.expect("usage"), 0);
    store
        .put(&meta_by(4000, 1500, 7), bytes(4000, 1500))
        .await
        .expect("put");
    put_from_file(store.as_ref(), spool.path(), &meta_by(4001, 2500, 7))
        .await
        .expect("put_file");
    put_from_file(store.as_ref(), spool.path(), &meta_by(4002, 700, 8))
        .await
        .expect("put_file");
    // A refused put (a conflict) adds nothing.
    let again = store.put(&meta_by(4000, 1500, 7), bytes(4000, 1500)).await;
    assert!(again.is_err());
    assert_eq!(store.usage(Snowflake(7)).await.expect("usage"), 4000);
    assert_eq!(store.usage(Snowflake(8)).await.expect("usage"), 700);
    assert_eq!(store.usage(Snowflake(9)).await.expect("usage"), 0);
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.usage(Snowflake(7)).await.expect("usage"),
        4000,
        "after a reopen"
    );
    assert_eq!(store.usage(Snowflake(8)).await.expect("usage"), 700);
    // Many concurrent puts of one user all count.
    let puts = (0..8u64).map(|i| {
        let store = store.clone();
        async move { store.put(&meta_by(4100 + i, 100, 9), bytes(i, 100)).await }
    });
    for result in futures_util::future::join_all(puts).await {
        result.expect("put");
    }
    assert_eq!(store.usage(Snowflake(9)).await.expect("usage"), 800);
}

/// The directory store writes every file (bytes, metadata) readable by its owner only.
#[tokio::test]
async fn dir_blobs_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = tempfile::tempdir().expect("spool");
    let store = DirBlobStore::open(dir.path()).expect("open");
    store
        .put(&meta(1 << 22, 10), bytes(1, 10))
        .await
        .expect("put");
    put_from_file(&store, spool.path(), &meta(2 << 22, 10))
        .await
        .expect("put_file");
    let mut checked = 0;
    for shard in std::fs::read_dir(dir.path()).expect("root") {
        for file in std::fs::read_dir(shard.expect("shard").path()).expect("shard") {
            let file = file.expect("entry");
            let mode = file.metadata().expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.path().display());
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "two blobs, each bytes and metadata");
}
