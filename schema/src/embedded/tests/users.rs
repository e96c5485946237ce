//! Users: lookups, uniqueness (also under concurrency), renames, and the writer's in-group
//! read-your-writes semantics.

use std::sync::Arc;

use voiceflow_wire::Snowflake;

use super::{member, open_temp, room, token, user};
use crate::embedded::tables::Tables;
use crate::embedded::writer::{Op, Reply, apply_group, commit};
use crate::model::Role;
use crate::store::{Store, StoreError};

fn is_conflict(result: &Result<(), StoreError>, expected: &str) -> bool {
    matches!(result, Err(StoreError::Conflict { field }) if *field == expected)
}

#[tokio::test]
async fn create_and_look_up_case_insensitively() {
    let (_dir, store) = open_temp();
    let alice = user(10, "Alice_1", "alice@example.com");
    store.create_user(&alice).await.expect("create");

    assert_eq!(
        store.user_by_id(Snowflake(10)).await.expect("by id"),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("alice_1").await.expect("by name"),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("ALICE_1").await.expect("by name"),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .user_by_email("Alice@Example.COM")
            .await
            .expect("by email"),
        Some(alice)
    );
    assert_eq!(
        store.user_by_id(Snowflake(11)).await.expect("missing"),
        None
    );
    assert_eq!(store.user_by_username("bob").await.expect("missing"), None);
    assert_eq!(
        store
            .user_by_email("bob@example.com")
            .await
            .expect("missing"),
        None
    );
}

#[tokio::test]
async fn create_conflicts_on_username_then_email() {
    let (_dir, store) = open_temp();
    store
        .create_user(&user(10, "alice", "alice@example.com"))
        .await
        .expect("create");

    let same_name = store
        .create_user(&user(11, "ALICE", "other@example.com"))
        .await;
    assert!(is_conflict(&same_name, "username"), "{same_name:?}");
    let same_email = store
        .create_user(&user(12, "alice2", "ALICE@example.com"))
        .await;
    assert!(is_conflict(&same_email, "email"), "{same_email:?}");
    // Nothing of the failed creates was written.
    assert_eq!(store.user_by_id(Snowflake(11)).await.expect("read"), None);
    assert_eq!(store.user_by_username("alice2").await.expect("read"), None);
    assert_eq!(
        store
            .user_by_email("other@example.com")
            .await
            .expect("read"),
        None
    );
    // A retried create of the same user is not a conflict.
    store
        .create_user(&user(10, "alice", "alice@example.com"))
        .await
        .expect("idempotent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conflicting_creates_have_one_winner() {
    let (_dir, store) = open_temp();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 { "racer" } else { "RACER" };
            store
                .create_user(&user(100 + i, name, &format!("r{i}@example.com")))
                .await
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("join") {
            Ok(()) => winners.push(100 + i as u64),
            Err(StoreError::Conflict { field: "username" }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store
        .user_by_username("Racer")
        .await
        .expect("read")
        .expect("winner stored");
    assert_eq!(stored.id, Snowflake(winners[0]));
}

#[tokio::test]
async fn update_moves_username_and_email_and_detects_conflicts() {
    let (_dir, store) = open_temp();
    let alice = user(10, "alice", "alice@example.com");
    store.create_user(&alice).await.expect("create alice");
    store
        .create_user(&user(11, "bob", "bob@example.com"))
        .await
        .expect("create bob");

    let mut renamed = alice.clone();
    renamed.username = "Alicia".into();
    renamed.email = "alicia@example.com".into();
    renamed.avatar_url = Some("https://example.com/a.png".into());
    store.update_user(&renamed).await.expect("rename");
    assert_eq!(
        store.user_by_username("alice").await.expect("old name"),
        None
    );
    assert_eq!(
        store
            .user_by_email("alice@example.com")
            .await
            .expect("old email"),
        None
    );
    assert_eq!(
        store.user_by_username("alicia").await.expect("new name"),
        Some(renamed.clone())
    );
    assert_eq!(
        store
            .user_by_email("alicia@example.com")
            .await
            .expect("new"),
        Some(renamed.clone())
    );
    // The freed name can be taken by someone else.
    store
        .create_user(&user(12, "ALICE", "carol@example.com"))
        .await
        .expect("reuse freed name");

    let mut clash = renamed.clone();
    clash.username = "BOB".into();
    let result = store.update_user(&clash).await;
    assert!(is_conflict(&result, "username"), "{result:?}");
    assert_eq!(
        store.user_by_id(Snowflake(10)).await.expect("read"),
        Some(renamed.clone())
    );
    assert_eq!(
        store.user_by_username("alicia").await.expect("kept"),
        Some(renamed.clone())
    );

    // Changing only the case of one's own name is not a conflict.
    let mut recased = renamed.clone();
    recased.username = "ALICIA".into();
    store.update_user(&recased).await.expect("recase");
    assert_eq!(
        store.user_by_username("alicia").await.expect("recased"),
        Some(recased)
    );

    // Updating an unknown user writes nothing.
    store
        .update_user(&user(99, "ghost", "ghost@example.com"))
        .await
        .expect("no-op");
    assert_eq!(store.user_by_username("ghost").await.expect("read"), None);
}

/// Ops of one group see the earlier ops of that group; a failed op leaves no trace.
#[test]
fn ops_in_one_group_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = fjall::Database::builder(dir.path()).open().expect("db");
    let tables = Tables::open(&db).expect("tables");

    let ops = vec![
        Op::CreateUser(user(1, "alice", "a@example.com")),
        Op::CreateUser(user(2, "ALICE", "b@example.com")),
        Op::CreateUser(user(3, "carol", "A@example.com")),
        Op::UpdateUser(user(1, "alicia", "a@example.com")),
        Op::CreateUser(user(4, "alice", "d@example.com")),
        Op::CreateRoom(room(50, "code", true), member(50, 1, Role::Admin, 1)),
        Op::CreateRoom(room(51, "CODE", true), member(51, 2, Role::Admin, 1)),
        Op::PutRefreshToken(token("t1", "f1")),
        Op::UseRefreshToken("t1".into()),
        Op::UseRefreshToken("t1".into()),
    ];
    let (overlay, results, flush) = apply_group(&tables, ops);
    assert!(!flush);
    let conflict = |r: &Result<Reply, StoreError>, f: &str| matches!(r, Err(StoreError::Conflict { field }) if *field == f);
    assert!(matches!(results[0], Ok(Reply::Done)));
    assert!(conflict(&results[1], "username"));
    assert!(conflict(&results[2], "email"));
    assert!(matches!(results[3], Ok(Reply::Done)));
    assert!(
        matches!(results[4], Ok(Reply::Done)),
        "name freed by the rename in the same group"
    );
    assert!(matches!(results[5], Ok(Reply::Done)));
    assert!(conflict(&results[6], "join_code"));
    assert!(matches!(results[8], Ok(Reply::Bool(true))));
    assert!(matches!(results[9], Ok(Reply::Bool(false))));
    commit(&db, &tables, overlay, false).expect("commit");
    drop((tables, db));

    // What the group committed, seen through a store.
    let store = super::open_at(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert_eq!(
            store
                .user_by_username("alice")
                .await
                .expect("r")
                .map(|u| u.id),
            Some(Snowflake(4))
        );
        assert_eq!(
            store
                .user_by_username("alicia")
                .await
                .expect("r")
                .map(|u| u.id),
            Some(Snowflake(1))
        );
        assert_eq!(store.user_by_id(Snowflake(2)).await.expect("r"), None);
        assert_eq!(store.user_by_id(Snowflake(3)).await.expect("r"), None);
        assert_eq!(store.room_by_id(Snowflake(51)).await.expect("r"), None);
        // The failed room create wrote no membership either.
        assert_eq!(
            store.member(Snowflake(51), Snowflake(2)).await.expect("r"),
            None
        );
        assert_eq!(store.list_public_rooms(0, 10).await.expect("r").total, 1);
        let t1 = store.refresh_token("t1").await.expect("r").expect("t1");
        assert!(t1.used);
    });
}
