//! The writer's group semantics: ops of one group see each other's writes, and a failed op
//! leaves no trace while the rest of its group commits.

use voiceflow_wire::Snowflake;

use super::{member, room, token, user};
use crate::embedded::tables::Tables;
use crate::embedded::writer::{Op, Reply, apply_group, commit};
use crate::model::Role;
use crate::store::{Store, StoreError};

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
