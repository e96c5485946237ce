//! Mentions (`user_mentions`) and notification settings.

use voiceflow_schema::{DEFAULT_SCOPE, MentionRecord, NotificationSettingRecord, RoomEventRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::notify::{NotificationLevel, NotificationSetting};

use crate::{Backend, message};

/// Mentions written with their messages, by `append_messages` and by a log commit: each user
/// gets their own rows newest first across rooms, paged by `before`; an unmentioned user has
/// none; all of it survives a reopen.
pub async fn mentions_are_indexed_with_their_messages_newest_first(backend: Backend) {
    let store = backend.open().await;
    let base = Snowflake::lower_bound_for(1_760_000_000_000).0;
    let (ann, bob, carl) = (Snowflake(41), Snowflake(42), Snowflake(43));
    let mention = |room: u64, id: u64, users: &[Snowflake]| {
        let mut m = message(room, Snowflake(base + id), None);
        m.extra.mentions = users.to_vec();
        m
    };
    store
        .append_messages(&[
            mention(900, 1, &[ann]),
            mention(900, 2, &[ann, bob]),
            mention(901, 3, &[]),
            mention(901, 4, &[bob]),
        ])
        .await
        .expect("append");
    let logged = mention(902, 5, &[ann]);
    let entry = RoomEventRecord {
        room_id: Snowflake(902),
        seq: 1,
        epoch: 1,
        owner_epoch: 0,
        event: "message:received".into(),
        data: "{}".into(),
        message: Some(logged),
        at: 1,
    };
    store.commit_events(&[entry]).await.expect("commit");
    let row = |user, id: u64, room: u64| MentionRecord {
        user_id: user,
        message_id: Snowflake(base + id),
        room_id: Snowflake(room),
    };
    let all = store.user_mentions(ann, None, 10).await.expect("ann");
    assert_eq!(
        all,
        vec![row(ann, 5, 902), row(ann, 2, 900), row(ann, 1, 900)]
    );
    let page = store.user_mentions(ann, None, 2).await.expect("page");
    assert_eq!(page, vec![row(ann, 5, 902), row(ann, 2, 900)]);
    let next = store
        .user_mentions(ann, Some(Snowflake(base + 2)), 10)
        .await
        .expect("next");
    assert_eq!(next, vec![row(ann, 1, 900)]);
    let bobs = store.user_mentions(bob, None, 10).await.expect("bob");
    assert_eq!(bobs, vec![row(bob, 4, 901), row(bob, 2, 900)]);
    assert!(
        store
            .user_mentions(carl, None, 10)
            .await
            .expect("carl")
            .is_empty()
    );
    assert!(
        store
            .user_mentions(ann, None, 0)
            .await
            .expect("zero")
            .is_empty()
    );
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.user_mentions(ann, None, 10).await.expect("reopened"),
        all
    );
}

/// Settings per scope replace each other, a scope set back to inherit is gone, other users'
/// are apart, and they survive a reopen.
pub async fn notification_settings_per_scope_replace_and_survive_a_reopen(backend: Backend) {
    let store = backend.open().await;
    let (ann, bob) = (Snowflake(51), Snowflake(52));
    let set = |user, scope, level, mute_until| NotificationSettingRecord {
        user_id: user,
        scope_id: scope,
        setting: NotificationSetting { level, mute_until },
    };
    assert!(
        store
            .notification_settings(ann)
            .await
            .expect("none")
            .is_empty()
    );
    let default = set(ann, DEFAULT_SCOPE, Some(NotificationLevel::Mentions), None);
    let room = set(
        ann,
        Snowflake(700),
        Some(NotificationLevel::None),
        Some(1_900_000_000_000),
    );
    let community = set(ann, Snowflake(800), None, Some(5));
    for row in [
        default,
        room,
        community,
        set(bob, Snowflake(700), Some(NotificationLevel::All), None),
    ] {
        store.put_notification_setting(&row).await.expect("put");
    }
    assert_eq!(
        store.notification_settings(ann).await.expect("ann"),
        vec![default, room, community]
    );
    let room_again = set(ann, Snowflake(700), Some(NotificationLevel::All), None);
    store
        .put_notification_setting(&room_again)
        .await
        .expect("replace");
    store
        .put_notification_setting(&set(ann, Snowflake(800), None, None))
        .await
        .expect("inherit");
    assert_eq!(
        store.notification_settings(ann).await.expect("ann"),
        vec![default, room_again]
    );
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.notification_settings(ann).await.expect("reopened"),
        vec![default, room_again]
    );
    assert_eq!(
        store.notification_settings(bob).await.expect("bob").len(),
        1
    );
}

/// Rows written apart from their message (role and `@everyone` mentions): put (twice is
/// once), deleted (a missing row is no error), and trimmed to a user's newest `keep`
/// without touching anyone else's; all of it survives a reopen.
pub async fn mention_rows_are_put_deleted_and_trimmed_to_the_newest(backend: Backend) {
    let store = backend.open().await;
    let base = Snowflake::lower_bound_for(1_760_000_000_000).0;
    let (ann, bob) = (Snowflake(51), Snowflake(52));
    let row = |user, id: u64| MentionRecord {
        user_id: user,
        message_id: Snowflake(base + id),
        room_id: Snowflake(910 + id % 2),
    };
    let anns: Vec<MentionRecord> = (1..=6).map(|n| row(ann, n)).collect();
    store.put_user_mentions(&anns).await.expect("put");
    store
        .put_user_mentions(&[row(ann, 6), row(bob, 3)])
        .await
        .expect("put again");
    store.put_user_mentions(&[]).await.expect("put nothing");
    let newest_first = |rows: &[MentionRecord]| rows.iter().rev().copied().collect::<Vec<_>>();
    assert_eq!(
        store.user_mentions(ann, None, 10).await.expect("ann"),
        newest_first(&anns)
    );
    store
        .delete_user_mentions(&[row(ann, 4), row(ann, 99), row(bob, 1)])
        .await
        .expect("delete");
    let left: Vec<MentionRecord> = [1, 2, 3, 5, 6].iter().map(|n| row(ann, *n)).collect();
    assert_eq!(
        store
            .user_mentions(ann, None, 10)
            .await
            .expect("after delete"),
        newest_first(&left)
    );
    assert_eq!(store.trim_user_mentions(ann, 3).await.expect("trim"), 2);
    assert_eq!(
        store.trim_user_mentions(ann, 3).await.expect("trim again"),
        0
    );
    assert_eq!(
        store
            .trim_user_mentions(Snowflake(53), 3)
            .await
            .expect("nobody"),
        0
    );
    let kept = vec![row(ann, 6), row(ann, 5), row(ann, 3)];
    assert_eq!(
        store.user_mentions(ann, None, 10).await.expect("trimmed"),
        kept
    );
    assert_eq!(
        store.user_mentions(bob, None, 10).await.expect("bob"),
        vec![row(bob, 3)],
        "another user's rows stay"
    );
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.user_mentions(ann, None, 10).await.expect("reopened"),
        kept
    );
    assert_eq!(store.trim_user_mentions(ann, 0).await.expect("trim all"), 3);
    assert!(
        store
            .user_mentions(ann, None, 10)
            .await
            .expect("empty")
            .is_empty()
    );
}
