//! The member name index: prefix search by lower-cased username then user id, paged by
//! cursor, kept through joins, leaves, bans, renames and community deletion.

use voiceflow_schema::{BanRecord, NameCursor, NamePrefix, Store, UserRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

use crate::Backend;
use crate::communities::{found, member, role};

/// The user ids a search returns, every page of `page` followed to the end.
async fn search(store: &dyn Store, c: u64, prefix: &str, page: u32) -> Vec<(String, u64)> {
    let prefix = NamePrefix::new(prefix);
    let mut out = Vec::new();
    let mut after: Option<NameCursor> = None;
    loop {
        let got = store
            .community_members_by_name(Snowflake(c), &prefix, after.as_ref(), page)
            .await
            .expect("search");
        assert!(got.len() <= page as usize);
        assert!(got.iter().all(|m| m.community_id == Snowflake(c)));
        let Some(last) = got.last() else { break };
        after = Some(last.cursor());
        out.extend(got.into_iter().map(|m| (m.username, m.user_id.0)));
    }
    out
}

async fn create(store: &dyn Store, id: u64, name: &str) -> UserRecord {
    let u = voiceflow_schema::fixtures::user(id, name, &format!("{id}@example.com"));
    store.create_user(&u).await.expect("create user");
    u
}

/// A search finds the members whose name starts with the prefix, whatever its case, ordered
/// by lower-cased name then id, across pages; it follows leaves, bans, renames and the
/// community's deletion, and survives a reopen.
pub async fn member_names_are_searched_by_prefix_and_follow_the_members(backend: Backend) {
    let store = backend.open().await;
    let (c, other, owner) = (3_300_001, 3_300_002, 3_300_100);
    create(store.as_ref(), owner, "Zed").await;
    let everyone = role(c, c, 0, Permissions::VIEW_CHANNEL);
    found(store.as_ref(), c, owner, "Big", &everyone).await;
    found(
        store.as_ref(),
        other,
        owner,
        "Other",
        &role(other, other, 0, Permissions::empty()),
    )
    .await;
    let names = [
        (3_300_210, "bob"),
        (3_300_205, "Bobby"),
        (3_300_201, "BOBCAT"),
        (3_300_202, "bo"),
        (3_300_203, "alice"),
        (3_300_204, "carol"),
        (3_300_206, "b_o"),
    ];
    for (id, name) in names {
        create(store.as_ref(), id, name).await;
        store
            .put_community_member(&member(c, id, &[]))
            .await
            .expect("join");
    }
    // Bobby is in the other community too: only that community's search finds him there.
    store
        .put_community_member(&member(other, 3_300_205, &[]))
        .await
        .expect("join other");

    let want = vec![
        ("bo".to_owned(), 3_300_202),
        ("bob".to_owned(), 3_300_210),
        ("Bobby".to_owned(), 3_300_205),
        ("BOBCAT".to_owned(), 3_300_201),
    ];
    for page in [1, 2, 3, 10] {
        assert_eq!(
            search(store.as_ref(), c, "BO", page).await,
            want,
            "page {page}"
        );
    }
    assert_eq!(
        search(store.as_ref(), c, "bob", 10).await,
        want[1..].to_vec()
    );
    assert_eq!(search(store.as_ref(), c, "bobx", 10).await, vec![]);
    assert_eq!(
        search(store.as_ref(), c, "", 100).await.len(),
        8,
        "all, by name"
    );
    assert_eq!(
        search(store.as_ref(), other, "b", 10).await,
        vec![("Bobby".to_owned(), 3_300_205)]
    );
    // A cursor before the prefix's names starts at them; one past them finds nothing.
    let prefix = NamePrefix::new("bo");
    let before = NameCursor {
        name: "a".into(),
        user_id: Snowflake(1),
    };
    let past = NameCursor {
        name: "c".into(),
        user_id: Snowflake(1),
    };
    let first = store
        .community_members_by_name(Snowflake(c), &prefix, Some(&before), 1)
        .await
        .expect("from before");
    assert_eq!(first.first().map(|m| m.user_id.0), Some(3_300_202));
    let none = store
        .community_members_by_name(Snowflake(c), &prefix, Some(&past), 10)
        .await
        .expect("past");
    assert!(none.is_empty());

    // Leaving, a ban, and a rename move the index.
    store
        .remove_community_member(Snowflake(c), Snowflake(3_300_210))
        .await
        .expect("leave");
    store
        .put_ban(&BanRecord {
            community_id: Snowflake(c),
            user_id: Snowflake(3_300_201),
            reason: None,
            banned_by: Snowflake(owner),
            created_at: 300,
        })
        .await
        .expect("ban");
    let mut bobby = store
        .user_by_id(Snowflake(3_300_205))
        .await
        .expect("read")
        .expect("bobby");
    bobby.username = "Robert".into();
    store.update_user(&bobby).await.expect("rename");
    assert_eq!(
        search(store.as_ref(), c, "bo", 10).await,
        vec![("bo".to_owned(), 3_300_202)]
    );
    assert_eq!(
        search(store.as_ref(), c, "rob", 10).await,
        vec![("Robert".to_owned(), 3_300_205)]
    );
    assert_eq!(
        search(store.as_ref(), other, "r", 10).await,
        vec![("Robert".to_owned(), 3_300_205)],
        "renamed in every community"
    );
    // Rewriting a membership (a role grant) keeps one entry.
    store
        .put_community_member(&member(c, 3_300_202, &[7]))
        .await
        .expect("grant");
    assert_eq!(search(store.as_ref(), c, "bo", 10).await.len(), 1);

    drop(store);
    let store = backend.open().await;
    assert_eq!(
        search(store.as_ref(), c, "", 100).await,
        vec![
            ("alice".to_owned(), 3_300_203),
            ("b_o".to_owned(), 3_300_206),
            ("bo".to_owned(), 3_300_202),
            ("carol".to_owned(), 3_300_204),
            ("Robert".to_owned(), 3_300_205),
            ("Zed".to_owned(), owner),
        ],
        "after a reopen"
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(search(store.as_ref(), c, "", 100).await, vec![]);
    assert_eq!(search(store.as_ref(), other, "", 100).await.len(), 2);
}
