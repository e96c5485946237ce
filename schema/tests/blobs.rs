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
