//! Blocks and privacy settings.

use voiceflow_schema::{BlockRecord, ContactPolicy, UserSettings};
use voiceflow_wire::Snowflake;

use crate::Backend;

fn block(user: u64, blocked: u64, at: u64) -> BlockRecord {
    BlockRecord {
        user_id: Snowflake(user),
        blocked_id: Snowflake(blocked),
        created_at: at,
    }
}

/// Blocks are per (user, blocked) pair, listed by blocked id, idempotent both ways, kept
/// across a reopen; one user's blocks are not another's.
pub async fn blocks_are_per_pair_idempotent_and_survive_a_reopen(backend: Backend) {
    let store = backend.open().await;
    let (alice, bob, carol) = (1_000_001, 1_000_002, 1_000_003);
    assert_eq!(store.blocks(Snowflake(alice)).await.expect("none"), vec![]);
    store
        .put_block(&block(alice, carol, 10))
        .await
        .expect("put");
    store.put_block(&block(alice, bob, 20)).await.expect("put");
    // Blocking again keeps the first time.
    store
        .put_block(&block(alice, bob, 30))
        .await
        .expect("again");
    assert_eq!(
        store.blocks(Snowflake(alice)).await.expect("list"),
        vec![block(alice, bob, 20), block(alice, carol, 10)]
    );
    assert_eq!(
        store
            .block(Snowflake(alice), Snowflake(bob))
            .await
            .expect("one"),
        Some(block(alice, bob, 20))
    );
    assert_eq!(
        store
            .block(Snowflake(bob), Snowflake(alice))
            .await
            .expect("not symmetric"),
        None
    );
    store
        .remove_block(Snowflake(alice), Snowflake(carol))
        .await
        .expect("remove");
    store
        .remove_block(Snowflake(alice), Snowflake(carol))
        .await
        .expect("remove again");
    store
        .remove_block(Snowflake(carol), Snowflake(alice))
        .await
        .expect("remove unknown");
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.blocks(Snowflake(alice)).await.expect("after reopen"),
        vec![block(alice, bob, 20)]
    );
    assert_eq!(store.blocks(Snowflake(bob)).await.expect("bob's"), vec![]);
}

/// Settings default to absent, are replaced whole, and survive a reopen.
pub async fn user_settings_replace_and_survive_a_reopen(backend: Backend) {
    let store = backend.open().await;
    let alice = Snowflake(2_000_001);
    assert_eq!(store.user_settings(alice).await.expect("none"), None);
    for contact in [
        ContactPolicy::Nobody,
        ContactPolicy::SharedRoom,
        ContactPolicy::Everyone,
        ContactPolicy::SharedRoom,
    ] {
        let settings = UserSettings {
            user_id: alice,
            contact,
        };
        store.put_user_settings(&settings).await.expect("put");
        assert_eq!(
            store.user_settings(alice).await.expect("read"),
            Some(settings)
        );
    }
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store
            .user_settings(alice)
            .await
            .expect("after reopen")
            .map(|s| s.contact),
        Some(ContactPolicy::SharedRoom)
    );
    assert_eq!(
        store
            .user_settings(Snowflake(2_000_002))
            .await
            .expect("other"),
        None
    );
}
