//! Communities' invites, audit logs, bans, channels and categories.

use voiceflow_schema::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, InviteRecord,
    OverwriteTarget, StoreError,
};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::{Overwrite, Permissions};

use crate::Backend;
use crate::communities::{found, member, role};

fn invite(
    code: &str,
    community: u64,
    max_uses: Option<u32>,
    expires_at: Option<u64>,
) -> InviteRecord {
    InviteRecord {
        code: code.into(),
        community_id: Snowflake(community),
        created_by: Snowflake(1),
        created_at: 1_000,
        expires_at,
        max_uses,
        uses: 0,
        revoked: false,
    }
}

/// Invite codes are unique; an invite is used up, expires or is revoked; a race for its last
/// uses lets exactly as many through as it has left; deleting the community takes its invites.
pub async fn invites_are_unique_counted_once_per_use_and_go_with_their_community(backend: Backend) {
    let store = backend.open().await;
    let (c, owner) = (3_300_001, 3_300_100);
    found(
        store.as_ref(),
        c,
        owner,
        "Invites",
        &role(c, c, 0, Permissions::VIEW_CHANNEL),
    )
    .await;
    let three = invite("THREE333", c, Some(3), None);
    store.create_invite(&three).await.expect("create");
    store.create_invite(&three).await.expect("the same again");
    let taken = store
        .create_invite(&invite("THREE333", 9, None, None))
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { field: "code" })),
        "{taken:?}"
    );
    store
        .create_invite(&invite("LATER777", c, None, Some(5_000)))
        .await
        .expect("expiring");
    store
        .create_invite(&invite("ANYONE11", c, None, None))
        .await
        .expect("open");
    assert_eq!(store.invite("NOPE0000").await.expect("unknown"), None);
    assert_eq!(
        store.use_invite("NOPE0000", 0).await.expect("unknown"),
        None
    );

    // Eight people race for three uses.
    let racers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.use_invite("THREE333", 2_000).await })
    });
    let mut used = 0;
    for racer in racers {
        if racer.await.expect("join").expect("use").is_some() {
            used += 1;
        }
    }
    assert_eq!(used, 3);
    let spent = store
        .invite("THREE333")
        .await
        .expect("read")
        .expect("there");
    assert_eq!((spent.uses, spent.usable(2_000)), (3, false));

    let later = store.use_invite("LATER777", 4_999).await.expect("use");
    assert_eq!(later.map(|i| i.uses), Some(1));
    assert_eq!(
        store.use_invite("LATER777", 5_000).await.expect("expired"),
        None
    );

    store.revoke_invite("ANYONE11").await.expect("revoke");
    store
        .revoke_invite("NOPE0000")
        .await
        .expect("revoke unknown");
    assert_eq!(
        store.use_invite("ANYONE11", 0).await.expect("revoked"),
        None
    );
    let listed = store.community_invites(Snowflake(c)).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.code.as_str(), i.uses, i.revoked))
            .collect::<Vec<_>>(),
        vec![
            ("ANYONE11", 0, true),
            ("LATER777", 1, false),
            ("THREE333", 3, false)
        ]
    );

    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(store.invite("LATER777").await.expect("gone"), None);
    assert_eq!(
        store.community_invites(Snowflake(c)).await.expect("none"),
        vec![]
    );
}

/// The audit log pages newest first, keeps every field, is per community, and goes with its
/// community.
pub async fn the_audit_log_pages_newest_first_and_goes_with_its_community(backend: Backend) {
    let store = backend.open().await;
    let (c, other, owner) = (3_400_001, 3_400_002, 3_400_100);
    for id in [c, other] {
        found(
            store.as_ref(),
            id,
            owner,
            "Audited",
            &role(id, id, 0, Permissions::VIEW_CHANNEL),
        )
        .await;
    }
    let entry = |community: u64, id: u64| AuditEntry {
        community_id: Snowflake(community),
        id: Snowflake(id),
        actor_id: Snowflake(owner),
        action: if id.is_multiple_of(2) {
            "role.update"
        } else {
            "member.kick"
        }
        .into(),
        target_id: (!id.is_multiple_of(3)).then_some(Snowflake(id + 1)),
        reason: id.is_multiple_of(4).then(|| format!("because {id}")),
        before: Some(format!("{{\"n\":{id}}}")),
        after: None,
        created_at: 10_000 + id,
    };
    for id in 1..=25 {
        store.append_audit(&entry(c, id)).await.expect("append");
    }
    store.append_audit(&entry(other, 99)).await.expect("other");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .audit_log(Snowflake(c), before, 10)
            .await
            .expect("page");
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen.extend(page);
    }
    assert_eq!(
        seen,
        (1..=25).rev().map(|id| entry(c, id)).collect::<Vec<_>>()
    );
    assert_eq!(
        store.audit_log(Snowflake(c), None, 0).await.expect("none"),
        vec![]
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store.audit_log(Snowflake(c), None, 10).await.expect("gone"),
        vec![]
    );
    assert_eq!(
        store
            .audit_log(Snowflake(other), None, 10)
            .await
            .expect("kept"),
        vec![entry(other, 99)]
    );
}

/// A ban ends the membership (both directions), is read back and paged by user id, can be
/// lifted, and goes with its community.
pub async fn a_ban_ends_the_membership_and_is_paged_and_lifted(backend: Backend) {
    let store = backend.open().await;
    let (c, owner) = (3_500_001, 3_500_100);
    found(
        store.as_ref(),
        c,
        owner,
        "Banning",
        &role(c, c, 0, Permissions::VIEW_CHANNEL),
    )
    .await;
    let ban = |user: u64, reason: Option<&str>| BanRecord {
        community_id: Snowflake(c),
        user_id: Snowflake(user),
        reason: reason.map(str::to_owned),
        banned_by: Snowflake(owner),
        created_at: 5_000 + user,
    };
    let users = [3_500_205, 3_500_201, 3_500_203];
    for user in users {
        store
            .put_community_member(&member(c, user, &[]))
            .await
            .expect("join");
    }
    store
        .put_ban(&ban(users[0], Some("spam")))
        .await
        .expect("ban");
    store.put_ban(&ban(users[1], None)).await.expect("ban");
    store
        .put_ban(&ban(3_500_209, None))
        .await
        .expect("ban a non-member");
    assert_eq!(
        store
            .community_member(Snowflake(c), Snowflake(users[0]))
            .await
            .expect("m"),
        None
    );
    assert_eq!(
        store
            .user_communities(Snowflake(users[0]))
            .await
            .expect("none"),
        vec![]
    );
    assert_eq!(
        store
            .ban(Snowflake(c), Snowflake(users[0]))
            .await
            .expect("read"),
        Some(ban(users[0], Some("spam")))
    );
    let first = store
        .community_bans(Snowflake(c), None, 2)
        .await
        .expect("page");
    assert_eq!(
        first,
        vec![ban(users[1], None), ban(users[0], Some("spam"))]
    );
    let rest = store
        .community_bans(Snowflake(c), Some(Snowflake(users[0])), 2)
        .await
        .expect("page");
    assert_eq!(rest, vec![ban(3_500_209, None)]);
    store
        .remove_ban(Snowflake(c), Snowflake(users[1]))
        .await
        .expect("lift");
    store
        .remove_ban(Snowflake(c), Snowflake(users[1]))
        .await
        .expect("again");
    assert_eq!(
        store
            .ban(Snowflake(c), Snowflake(users[1]))
            .await
            .expect("lifted"),
        None
    );
    assert!(
        store
            .community_member(Snowflake(c), Snowflake(users[2]))
            .await
            .expect("m")
            .is_some()
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store
            .community_bans(Snowflake(c), None, 10)
            .await
            .expect("gone"),
        vec![]
    );
}

/// Channels are placed in a community (both directions), moved, listed, taken out with their
/// overrides; overrides per role and member round-trip every bit; a community's channels go
/// with it.
pub async fn channels_and_their_overrides_are_placed_listed_and_removed(backend: Backend) {
    let store = backend.open().await;
    let (c, owner) = (3_600_001, 3_600_100);
    let everyone = role(c, c, 0, Permissions::VIEW_CHANNEL);
    found(store.as_ref(), c, owner, "Channels", &everyone).await;
    let channel = |id: u64, category: Option<u64>, position: u32| ChannelRecord {
        community_id: Snowflake(c),
        channel_id: Snowflake(id),
        category_id: category.map(Snowflake),
        position,
    };
    let (general, voice, lobby) = (3_600_020, 3_600_030, 3_600_010);
    store
        .put_channel(&channel(general, None, 0))
        .await
        .expect("place");
    store
        .put_channel(&channel(voice, Some(lobby), 1))
        .await
        .expect("place");
    store
        .put_channel(&channel(lobby, None, 2))
        .await
        .expect("place");
    store
        .put_channel(&channel(general, Some(lobby), 5))
        .await
        .expect("move");
    assert_eq!(
        store.community_channels(Snowflake(c)).await.expect("list"),
        vec![
            channel(lobby, None, 2),
            channel(general, Some(lobby), 5),
            channel(voice, Some(lobby), 1)
        ]
    );
    assert_eq!(
        store
            .channel_community(Snowflake(voice))
            .await
            .expect("back"),
        Some(Snowflake(c))
    );
    assert_eq!(
        store.channel_community(Snowflake(1)).await.expect("none"),
        None
    );

    let overwrite = |target: u64, kind: OverwriteTarget, allow: Permissions, deny: Permissions| {
        ChannelOverwriteRecord {
            channel_id: Snowflake(general),
            target_id: Snowflake(target),
            target: kind,
            overwrite: Overwrite { allow, deny },
        }
    };
    let hidden = overwrite(
        c,
        OverwriteTarget::Role,
        Permissions::empty(),
        Permissions::VIEW_CHANNEL,
    );
    let mods = overwrite(
        3_600_050,
        OverwriteTarget::Role,
        Permissions::CHANNEL,
        Permissions::empty(),
    );
    let muted = overwrite(
        3_600_200,
        OverwriteTarget::Member,
        Permissions::VIEW_CHANNEL,
        Permissions::SEND_MESSAGES | Permissions::SPEAK,
    );
    for o in [&mods, &muted, &hidden] {
        store.put_channel_overwrite(o).await.expect("override");
    }
    let replaced = overwrite(
        c,
        OverwriteTarget::Role,
        Permissions::empty(),
        Permissions::SEND_MESSAGES,
    );
    store
        .put_channel_overwrite(&replaced)
        .await
        .expect("replace");
    assert_eq!(
        store
            .channel_overwrites(Snowflake(general))
            .await
            .expect("list"),
        vec![replaced, mods.clone(), muted]
    );
    store
        .remove_channel_overwrite(Snowflake(general), Snowflake(3_600_200))
        .await
        .expect("remove");
    store
        .remove_channel_overwrite(Snowflake(general), Snowflake(3_600_200))
        .await
        .expect("again");
    assert_eq!(
        store
            .channel_overwrites(Snowflake(general))
            .await
            .expect("list")
            .len(),
        2
    );

    store
        .remove_channel(Snowflake(c), Snowflake(general))
        .await
        .expect("take out");
    assert_eq!(
        store
            .channel_overwrites(Snowflake(general))
            .await
            .expect("gone"),
        vec![]
    );
    assert_eq!(
        store
            .channel_community(Snowflake(general))
            .await
            .expect("gone"),
        None
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store.community_channels(Snowflake(c)).await.expect("gone"),
        vec![]
    );
    assert_eq!(
        store
            .channel_community(Snowflake(voice))
            .await
            .expect("gone"),
        None
    );
}

pub async fn categories_are_listed_replaced_and_removed_leaving_their_channels(backend: Backend) {
    let store = backend.open().await;
    let (c, owner) = (3_700_001, 3_700_100);
    let everyone = role(c, c, 0, Permissions::VIEW_CHANNEL);
    found(store.as_ref(), c, owner, "Categories", &everyone).await;
    let category = |id: u64, name: &str, position: u32| CategoryRecord {
        community_id: Snowflake(c),
        id: Snowflake(id),
        name: name.into(),
        position,
    };
    let (text, voice) = (3_700_010, 3_700_020);
    for made in [category(voice, "Voice", 1), category(text, "Text", 0)] {
        store.put_category(&made).await.expect("put");
    }
    store
        .put_category(&category(voice, "Voice rooms", 2))
        .await
        .expect("replace");
    assert_eq!(
        store
            .community_categories(Snowflake(c))
            .await
            .expect("list"),
        vec![category(text, "Text", 0), category(voice, "Voice rooms", 2)]
    );
    let channel = |id: u64, category: Option<u64>| ChannelRecord {
        community_id: Snowflake(c),
        channel_id: Snowflake(id),
        category_id: category.map(Snowflake),
        position: 0,
    };
    let (general, lounge) = (3_700_030, 3_700_040);
    for placed in [channel(general, Some(text)), channel(lounge, Some(voice))] {
        store.put_channel(&placed).await.expect("place");
    }
    store
        .remove_category(Snowflake(c), Snowflake(voice))
        .await
        .expect("remove");
    store
        .remove_category(Snowflake(c), Snowflake(voice))
        .await
        .expect("again");
    assert_eq!(
        store
            .community_categories(Snowflake(c))
            .await
            .expect("list"),
        vec![category(text, "Text", 0)]
    );
    assert_eq!(
        store.community_channels(Snowflake(c)).await.expect("list"),
        vec![channel(general, Some(text)), channel(lounge, None)],
        "the channels stay, out of the removed category"
    );
    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store
            .community_categories(Snowflake(c))
            .await
            .expect("gone"),
        vec![]
    );
}
