//! Refresh tokens, and reopening a store.

use std::sync::Arc;

use voiceflow_schema::{Role, StoreError};
use voiceflow_wire::Snowflake;

use crate::{Backend, member, message, room, token, user};

/// A refresh token is used once; revoking a family revokes its tokens only, repeatably.
pub async fn refresh_tokens_are_used_once_and_revoked_by_family(backend: Backend) {
    let store = backend.open().await;
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

/// Sixteen concurrent uses of one token: exactly one wins.
pub async fn racing_refreshes_have_one_winner(backend: Backend) {
    let store = backend.open().await;
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

/// Everything written before the store was dropped is there after reopening it: users and
/// their indexes, rooms and the listing, memberships, messages, tombstones, nonces, tokens.
pub async fn reopen_keeps_everything(backend: Backend) {
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    {
        let store = backend.open().await;
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
    let store = backend.open().await;
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
