//! What only the embedded store has: group-commit statistics under concurrency, and corrupt
//! records on disk. (Behaviour every store shares is in the conformance suite,
//! `schema/tests/conformance/`.)

use std::sync::Arc;

use voiceflow_wire::Snowflake;

use super::{message, open_at, user};
use crate::store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_durable_and_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let (tasks, per_task) = (32u64, 40u64);
    let acked = {
        let store = Arc::new(open_at(dir.path()));
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut acked = 0u64;
                    for i in 0..per_task {
                        let id = Snowflake(base + t * per_task + i);
                        store
                            .append_messages(&[message(100, id, None)])
                            .await
                            .expect("append");
                        acked += 1;
                    }
                    acked
                })
            })
            .collect();
        let mut acked = 0;
        for handle in handles {
            acked += handle.await.expect("join");
        }
        let stats = store.commit_stats();
        assert_eq!(stats.ops, tasks * per_task);
        assert!(stats.groups < stats.ops, "writes shared fsyncs: {stats:?}");
        acked
    };
    assert_eq!(acked, tasks * per_task);

    let store = open_at(dir.path());
    let mut count = 0u64;
    let mut cursor = None;
    loop {
        let page = store
            .messages_before(Snowflake(100), cursor, 500)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        count += page.len() as u64;
    }
    assert_eq!(count, acked);
}

#[tokio::test]
async fn corrupt_records_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open_at(dir.path()));
    {
        let db = fjall::Database::builder(dir.path())
            .open()
            .expect("raw open");
        let users = db
            .keyspace("users", fjall::KeyspaceCreateOptions::default)
            .expect("users");
        users
            .insert(Snowflake(5).0.to_be_bytes(), b"not json".to_vec())
            .expect("insert");
        let by_name = db
            .keyspace("users_by_username", fjall::KeyspaceCreateOptions::default)
            .expect("idx");
        by_name.insert("short", b"123".to_vec()).expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let store = open_at(dir.path());
    assert!(matches!(
        store.user_by_id(Snowflake(5)).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.user_by_username("short").await,
        Err(StoreError::Corrupt(_))
    ));
    // A write that has to read the corrupt record fails alone; the store keeps working.
    let update = store
        .update_user(&user(5, "five", "five@example.com"))
        .await;
    assert!(matches!(update, Err(StoreError::Corrupt(_))), "{update:?}");
    store
        .create_user(&user(6, "six", "six@example.com"))
        .await
        .expect("still writable");
}
