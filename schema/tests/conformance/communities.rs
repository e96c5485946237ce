//! Communities, their roles and members.

use voiceflow_schema::{CommunityMember, CommunityRecord, RoleRecord, Store};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

use crate::Backend;

/// Creates community `id` of `owner` with `everyone` as its base role.
pub(crate) async fn found(
    store: &dyn Store,
    id: u64,
    owner: u64,
    name: &str,
    everyone: &RoleRecord,
) {
    store
        .create_community(
            &community(id, owner, name),
            everyone,
            &member(id, owner, &[]),
        )
        .await
        .expect("create community");
}

pub(crate) fn community(id: u64, owner: u64, name: &str) -> CommunityRecord {
    CommunityRecord {
        id: Snowflake(id),
        name: name.into(),
        description: "a place".into(),
        icon: None,
        owner_id: Snowflake(owner),
        created_at: 100,
        updated_at: 100,
        require_approval: false,
    }
}

pub(crate) fn role(community: u64, id: u64, position: u32, permissions: Permissions) -> RoleRecord {
    RoleRecord {
        community_id: Snowflake(community),
        id: Snowflake(id),
        name: if community == id {
            "@everyone".into()
        } else {
            format!("role {id}")
        },
        color: 0x00ff_8800,
        position,
        permissions,
        created_at: 100,
    }
}

pub(crate) fn member(community: u64, user: u64, roles: &[u64]) -> CommunityMember {
    CommunityMember {
        community_id: Snowflake(community),
        user_id: Snowflake(user),
        roles: roles.iter().copied().map(Snowflake).collect(),
        timed_out_until: None,
        joined_at: 200,
        voice_muted: false,
        voice_deafened: false,
    }
}

/// A community is created with its `@everyone` role and owner, read back, updated (not once
/// deleted), and deleted with its roles and memberships in both directions.
pub async fn create_update_and_delete_a_community_with_its_roles_and_members(backend: Backend) {
    let store = backend.open().await;
    let (c, owner, alice) = (3_000_001, 3_000_100, 3_000_101);
    let everyone = role(c, c, 0, Permissions::EVERYONE_DEFAULT);
    found(store.as_ref(), c, owner, "Rustaceans", &everyone).await;
    let mut record = community(c, owner, "Rustaceans");
    assert_eq!(
        store.community_by_id(Snowflake(c)).await.expect("read"),
        Some(record.clone())
    );
    assert_eq!(
        store.community_roles(Snowflake(c)).await.expect("roles"),
        vec![everyone.clone()]
    );
    assert!(everyone.is_everyone());
    record.name = "Crabs".into();
    record.icon = Some(Snowflake(77));
    record.updated_at = 300;
    store.update_community(&record).await.expect("update");
    assert_eq!(
        store.community_by_id(Snowflake(c)).await.expect("read"),
        Some(record.clone())
    );

    store
        .put_community_member(&member(c, alice, &[]))
        .await
        .expect("join");
    assert_eq!(
        store
            .user_communities(Snowflake(alice))
            .await
            .expect("alice's"),
        vec![Snowflake(c)]
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store.community_by_id(Snowflake(c)).await.expect("gone"),
        None
    );
    assert_eq!(
        store.community_roles(Snowflake(c)).await.expect("roles"),
        vec![]
    );
    assert_eq!(
        store
            .community_member(Snowflake(c), Snowflake(owner))
            .await
            .expect("m"),
        None
    );
    assert_eq!(
        store
            .user_communities(Snowflake(alice))
            .await
            .expect("none"),
        vec![]
    );
    assert_eq!(
        store
            .user_communities(Snowflake(owner))
            .await
            .expect("none"),
        vec![]
    );
    // An update after the delete does not bring it back.
    store
        .update_community(&record)
        .await
        .expect("update after delete");
    assert_eq!(
        store
            .community_by_id(Snowflake(c))
            .await
            .expect("still gone"),
        None
    );
}

/// Roles are replaced whole, listed by id, deleted one at a time; members keep naming a
/// deleted role (nobody is rewritten), and every permission bit, colour and rank round-trips.
pub async fn roles_are_replaced_listed_and_deleted_without_rewriting_members(backend: Backend) {
    let store = backend.open().await;
    let (c, owner, alice) = (3_100_001, 3_100_100, 3_100_101);
    let everyone = role(c, c, 0, Permissions::VIEW_CHANNEL);
    found(store.as_ref(), c, owner, "Mods", &everyone).await;
    let (mods, helpers) = (3_100_010, 3_100_005);
    let mut moderators = role(
        c,
        mods,
        2,
        Permissions::KICK_MEMBERS | Permissions::BAN_MEMBERS,
    );
    store.put_role(&moderators).await.expect("mods");
    store
        .put_role(&role(c, helpers, 1, Permissions::all()))
        .await
        .expect("helpers");
    store
        .put_community_member(&member(c, alice, &[mods, helpers]))
        .await
        .expect("alice");
    moderators.permissions |= Permissions::ADMINISTRATOR;
    moderators.position = 4_000_000_000;
    moderators.color = 0xffff_ffff;
    store.put_role(&moderators).await.expect("replace");
    let roles = store.community_roles(Snowflake(c)).await.expect("roles");
    assert_eq!(
        roles,
        vec![
            everyone.clone(),
            role(c, helpers, 1, Permissions::all()),
            moderators.clone()
        ],
        "by id, replaced whole"
    );
    store
        .delete_role(Snowflake(c), Snowflake(helpers))
        .await
        .expect("delete");
    store
        .delete_role(Snowflake(c), Snowflake(helpers))
        .await
        .expect("again");
    assert_eq!(
        store.community_roles(Snowflake(c)).await.expect("roles"),
        vec![everyone, moderators]
    );
    assert_eq!(
        store
            .community_member(Snowflake(c), Snowflake(alice))
            .await
            .expect("alice"),
        Some(member(c, alice, &[mods, helpers])),
        "members are not rewritten"
    );
}

/// Members page by user id, carry their roles and timeout, are replaced whole and removed
/// from both directions; everything survives a reopen.
pub async fn members_page_by_user_and_survive_a_reopen(backend: Backend) {
    let store = backend.open().await;
    let (c, other, owner) = (3_200_001, 3_200_002, 3_200_100);
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
    let users: Vec<u64> = (0..25).map(|i| 3_200_200 + i * 7).collect();
    for (i, user) in users.iter().rev().enumerate() {
        let mut m = member(c, *user, &[]);
        if i % 5 == 0 {
            m.roles = vec![Snowflake(9), Snowflake(8)];
            m.timed_out_until = Some(5_000 + i as u64);
        }
        store.put_community_member(&m).await.expect("join");
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .community_members(Snowflake(c), after, 10)
            .await
            .expect("page");
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.user_id);
        all.extend(page);
    }
    let mut want: Vec<u64> = users.clone();
    want.push(owner);
    want.sort_unstable();
    assert_eq!(all.iter().map(|m| m.user_id.0).collect::<Vec<_>>(), want);
    assert!(all.iter().all(|m| m.community_id == Snowflake(c)));
    let timed_out: Vec<_> = all.iter().filter(|m| m.timed_out_until.is_some()).collect();
    assert_eq!(timed_out.len(), 5);
    assert!(
        timed_out
            .iter()
            .all(|m| m.roles == vec![Snowflake(9), Snowflake(8)])
    );
    assert_eq!(
        store
            .community_members(Snowflake(c), None, 0)
            .await
            .expect("none"),
        vec![]
    );

    let alice = users[3];
    let mut replaced = member(c, alice, &[42]);
    replaced.joined_at = 999;
    store
        .put_community_member(&replaced)
        .await
        .expect("replace");
    assert_eq!(
        store
            .community_member(Snowflake(c), Snowflake(alice))
            .await
            .expect("alice"),
        Some(replaced)
    );
    store
        .remove_community_member(Snowflake(c), Snowflake(alice))
        .await
        .expect("remove");
    store
        .remove_community_member(Snowflake(c), Snowflake(alice))
        .await
        .expect("again");
    assert_eq!(
        store
            .community_member(Snowflake(c), Snowflake(alice))
            .await
            .expect("gone"),
        None
    );
    assert_eq!(
        store
            .user_communities(Snowflake(alice))
            .await
            .expect("none"),
        vec![]
    );
    assert_eq!(
        store
            .user_communities(Snowflake(owner))
            .await
            .expect("owner's"),
        vec![Snowflake(c), Snowflake(other)]
    );

    drop(store);
    let store = backend.open().await;
    let page = store
        .community_members(Snowflake(c), None, 100)
        .await
        .expect("reopen");
    assert_eq!(page.len(), want.len() - 1);
    assert_eq!(
        store
            .community_by_id(Snowflake(other))
            .await
            .expect("other")
            .map(|r| r.name),
        Some("Other".to_owned())
    );
}
