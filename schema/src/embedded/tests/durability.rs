//! Refresh tokens, reopening, group commit under concurrency, and corrupt data.

use std::sync::Arc;

use voiceflow_wire::Snowflake;

use super::{member, message, open_at, open_temp, room, token, user};
use crate::model::Role;
use crate::store::{Store, StoreError};

#[tokio::test]
async fn refresh_tokens_are_used_once_and_revoked_by_family() {
    let (_dir, store) = open_temp();
    for (id, family) in [("t1", "f1"), ("t2", "f1"), ("t3", "f2")] {
        store
            .put_refresh_token(&token(id, family))
            .await
            .expect("put");
    }
    assert_eq!(
        store.refresh_token("t1").await.expect("read"),
        Some(token("t1", "f1"))
    );
    assert_eq!(store.refresh_token("nope").await.expect("read"), None);

    assert!(store.use_refresh_token("t1").await.expect("first use"));
    assert!(!store.use_refresh_token("t1").await.expect("second use"));
    assert!(!store.use_refresh_token("nope").await.expect("unknown"));
    assert!(
        store
            .refresh_token("t1")
            .await
            .expect("read")
            .is_some_and(|t| t.used)
    );

    store.revoke_refresh_family("f1").await.expect("revoke");
    store
        .revoke_refresh_family("f1")
        .await
        .expect("revoke again");
    store
        .revoke_refresh_family("unknown")
        .await
        .expect("revoke unknown");
    assert!(
        store
            .refresh_token("t1")
            .await
            .expect("read")
            .is_some_and(|t| t.revoked && t.used)
    );
    assert!(
        store
            .refresh_token("t2")
            .await
            .expect("read")
            .is_some_and(|t| t.revoked && !t.used)
    );
    assert!(!store.use_refresh_token("t2").await.expect("revoked"));
    let t3 = store.refresh_token("t3").await.expect("read").expect("t3");
    assert!(!t3.revoked, "other families are untouched");
    assert!(store.use_refresh_token("t3").await.expect("t3 use"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_have_one_winner() {
    let (_dir, store) = open_temp();
    let store = Arc::new(store);
    store
        .put_refresh_token(&token("t", "f"))
        .await
        .expect("put");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.use_refresh_token("t").await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if task.await.expect("join").expect("use") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    {
        let store = open_at(dir.path());
        store
            .create_user(&user(1, "alice", "alice@example.com"))
            .await
            .expect("user");
        store
            .create_room(&room(100, "Code", true), &member(100, 1, Role::Admin, 1))
            .await
            .expect("room");
        store
            .create_room(&room(101, "hidden", false), &member(101, 1, Role::Admin, 2))
            .await
            .expect("room");
        let batch: Vec<_> = (0..10)
            .map(|i| message(100, Snowflake(base + i), Some(&format!("n{i}"))))
            .collect();
        store.append_messages(&batch).await.expect("messages");
        store
            .tombstone_message(Snowflake(100), Snowflake(base + 3), 5)
            .await
            .expect("tombstone");
        store
            .put_refresh_token(&token("t1", "f1"))
            .await
            .expect("token");
        assert!(store.use_refresh_token("t1").await.expect("use"));
        store.flush().await.expect("flush");
    }
    let store = open_at(dir.path());
    assert_eq!(
        store
            .user_by_username("ALICE")
            .await
            .expect("r")
            .map(|u| u.id),
        Some(Snowflake(1))
    );
    assert_eq!(
        store
            .user_by_email("alice@example.com")
            .await
            .expect("r")
            .map(|u| u.id),
        Some(Snowflake(1))
    );
    assert_eq!(
        store.room_by_code("code").await.expect("r").map(|r| r.id),
        Some(Snowflake(100))
    );
    let page = store.list_public_rooms(0, 10).await.expect("list");
    assert_eq!((page.total, page.rooms.len()), (1, 1));
    assert_eq!(store.user_rooms(Snowflake(1)).await.expect("r").len(), 2);
    let history = store
        .messages_before(Snowflake(100), None, 100)
        .await
        .expect("history");
    assert_eq!(history.len(), 10);
    assert_eq!(history[6].deleted_at, Some(5));
    assert_eq!(
        store
            .message_by_nonce(Snowflake(100), Snowflake(7), "n4")
            .await
            .expect("r"),
        Some(Snowflake(base + 4))
    );
    assert!(
        !store
            .use_refresh_token("t1")
            .await
            .expect("used before reopen")
    );
    let taken = store.create_user(&user(2, "Alice", "x@example.com")).await;
    assert!(matches!(
        taken,
        Err(StoreError::Conflict { field: "username" })
    ));
}

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
