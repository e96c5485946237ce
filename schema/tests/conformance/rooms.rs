//! Rooms, the public listing and memberships.

use voiceflow_schema::{Role, StoreError};
use voiceflow_wire::Snowflake;

use crate::{Backend, member, message, room};

/// A room with its code and creator: lookups, a taken code, an update, and a delete that
/// takes members, messages and nonces with it and frees the code; deletes are idempotent.
pub async fn create_look_up_update_and_delete_a_room(backend: Backend) {
    let store = backend.open().await;
    let general = room(100, "AbCd12", true);
    let creator = member(100, 1, Role::Admin, 5);
    store.create_room(&general, &creator).await.expect("create");

    assert_eq!(
        store.room_by_id(Snowflake(100)).await.expect("by id"),
        Some(general.clone())
    );
    assert_eq!(
        store.room_by_code("abcd12").await.expect("by code"),
        Some(general.clone())
    );
    assert_eq!(
        store.room_by_code("ABCD12").await.expect("by code"),
        Some(general.clone())
    );
    assert_eq!(
        store
            .member(Snowflake(100), Snowflake(1))
            .await
            .expect("member"),
        Some(creator.clone())
    );
    assert_eq!(
        store.user_rooms(Snowflake(1)).await.expect("rooms"),
        vec![creator.clone()]
    );

    let taken = store
        .create_room(&room(101, "abcd12", true), &member(101, 2, Role::Admin, 6))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { field: "join_code" })),
        "{taken:?}"
    );
    assert_eq!(store.room_by_id(Snowflake(101)).await.expect("read"), None);
    assert_eq!(store.user_rooms(Snowflake(2)).await.expect("read"), vec![]);

    let mut renamed = general.clone();
    renamed.name = "General".into();
    renamed.updated_at += 1;
    store.update_room(&renamed).await.expect("update");
    assert_eq!(
        store.room_by_id(Snowflake(100)).await.expect("read"),
        Some(renamed.clone())
    );
    assert_eq!(
        store.room_by_code("abcd12").await.expect("read"),
        Some(renamed)
    );

    // Members, messages and nonces go with the room.
    store
        .put_member(&member(100, 2, Role::Member, 7))
        .await
        .expect("join");
    let id = Snowflake::lower_bound_for(1_750_000_000_000);
    store
        .append_messages(&[message(100, id, Some("n1"))])
        .await
        .expect("append");
    store.delete_room(Snowflake(100)).await.expect("delete");

    assert_eq!(store.room_by_id(Snowflake(100)).await.expect("read"), None);
    assert_eq!(store.room_by_code("abcd12").await.expect("read"), None);
    assert_eq!(
        store.room_members(Snowflake(100)).await.expect("read"),
        vec![]
    );
    assert_eq!(store.user_rooms(Snowflake(1)).await.expect("read"), vec![]);
    assert_eq!(store.user_rooms(Snowflake(2)).await.expect("read"), vec![]);
    assert_eq!(
        store
            .messages_before(Snowflake(100), None, 10)
            .await
            .expect("read"),
        vec![]
    );
    assert_eq!(store.message_room(id).await.expect("read"), None);
    assert_eq!(
        store
            .message_by_nonce(Snowflake(100), Snowflake(7), "n1")
            .await
            .expect("r"),
        None
    );
    let page = store.list_public_rooms(0, 10).await.expect("list");
    assert_eq!((page.total, page.rooms.len()), (0, 0));

    // The code is free again; deleting twice or deleting an unknown room is fine.
    store
        .create_room(&room(102, "ABCD12", false), &member(102, 3, Role::Admin, 8))
        .await
        .expect("reuse");
    store
        .delete_room(Snowflake(100))
        .await
        .expect("delete again");
    store
        .delete_room(Snowflake(999))
        .await
        .expect("delete unknown");
}

/// The public listing pages newest first with the exact total as rooms are created, hidden,
/// shown and deleted; updating a deleted room does not bring it back.
pub async fn public_listing_pages_newest_first_with_exact_total(backend: Backend) {
    let store = backend.open().await;
    for id in 1..=25u64 {
        let public = id % 5 != 0; // 20 public, 5 private
        store
            .create_room(
                &room(id, &format!("code{id}"), public),
                &member(id, 1, Role::Admin, id),
            )
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    for page_no in 0..3u64 {
        let page = store.list_public_rooms(page_no * 8, 8).await.expect("list");
        assert_eq!(page.total, 20);
        seen.extend(page.rooms.iter().map(|r| r.id.0));
    }
    let expected: Vec<u64> = (1..=25u64).rev().filter(|id| id % 5 != 0).collect();
    assert_eq!(seen, expected);
    let beyond = store.list_public_rooms(100, 8).await.expect("list");
    assert_eq!((beyond.total, beyond.rooms.len()), (20, 0));
    assert_eq!(
        store
            .list_public_rooms(0, 0)
            .await
            .expect("list")
            .rooms
            .len(),
        0
    );

    // Updates move rooms in and out of the listing; repeated updates count once.
    let mut hidden = room(24, "code24", false);
    store.update_room(&hidden).await.expect("hide");
    store.update_room(&hidden).await.expect("hide again");
    let mut shown = room(25, "code25", true);
    store.update_room(&shown).await.expect("show");
    store.update_room(&shown).await.expect("show again");
    let page = store.list_public_rooms(0, 3).await.expect("list");
    assert_eq!(page.total, 20);
    assert_eq!(
        page.rooms.iter().map(|r| r.id.0).collect::<Vec<_>>(),
        vec![25, 23, 22]
    );

    hidden.settings.is_public = true;
    store.update_room(&hidden).await.expect("show 24");
    shown.settings.is_public = false;
    store.update_room(&shown).await.expect("hide 25");
    store
        .delete_room(Snowflake(23))
        .await
        .expect("delete public");
    store
        .delete_room(Snowflake(20))
        .await
        .expect("delete private");
    let page = store.list_public_rooms(0, 100).await.expect("list");
    assert_eq!(page.total, 19);
    assert_eq!(page.rooms.len(), 19);
    assert_eq!(page.rooms[0].id, Snowflake(24));

    // Updating a deleted room does not bring it back.
    store
        .update_room(&room(23, "code23", true))
        .await
        .expect("no-op");
    assert_eq!(store.room_by_id(Snowflake(23)).await.expect("read"), None);
    assert_eq!(store.list_public_rooms(0, 1).await.expect("list").total, 19);
}

/// Memberships by room (join order) and by user (room order), replaced and removed in both
/// directions at once.
pub async fn memberships_in_both_directions(backend: Backend) {
    let store = backend.open().await;
    store
        .create_room(&room(100, "a", true), &member(100, 1, Role::Admin, 10))
        .await
        .expect("room a");
    store
        .create_room(&room(200, "b", true), &member(200, 2, Role::Admin, 10))
        .await
        .expect("room b");
    // Joined in an order unlike the user ids.
    store
        .put_member(&member(100, 9, Role::Member, 20))
        .await
        .expect("join");
    store
        .put_member(&member(100, 3, Role::Member, 30))
        .await
        .expect("join");
    store
        .put_member(&member(200, 9, Role::Member, 40))
        .await
        .expect("join");

    let users: Vec<u64> = store
        .room_members(Snowflake(100))
        .await
        .expect("members")
        .iter()
        .map(|m| m.user_id.0)
        .collect();
    assert_eq!(users, vec![1, 9, 3]);
    let rooms: Vec<u64> = store
        .user_rooms(Snowflake(9))
        .await
        .expect("rooms")
        .iter()
        .map(|m| m.room_id.0)
        .collect();
    assert_eq!(rooms, vec![100, 200]);

    // Replacing changes both directions.
    store
        .put_member(&member(100, 9, Role::Admin, 20))
        .await
        .expect("promote");
    assert_eq!(
        store
            .member(Snowflake(100), Snowflake(9))
            .await
            .expect("read")
            .map(|m| m.role),
        Some(Role::Admin)
    );
    let mine = store.user_rooms(Snowflake(9)).await.expect("read");
    assert_eq!(
        mine.iter()
            .find(|m| m.room_id == Snowflake(100))
            .map(|m| m.role),
        Some(Role::Admin)
    );

    store
        .remove_member(Snowflake(100), Snowflake(9))
        .await
        .expect("leave");
    store
        .remove_member(Snowflake(100), Snowflake(9))
        .await
        .expect("leave twice");
    assert_eq!(
        store
            .member(Snowflake(100), Snowflake(9))
            .await
            .expect("read"),
        None
    );
    let rooms: Vec<u64> = store
        .user_rooms(Snowflake(9))
        .await
        .expect("rooms")
        .iter()
        .map(|m| m.room_id.0)
        .collect();
    assert_eq!(rooms, vec![200]);
    assert_eq!(
        store
            .room_members(Snowflake(100))
            .await
            .expect("members")
            .len(),
        2
    );
}
