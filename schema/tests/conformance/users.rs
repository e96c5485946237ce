//! Users: lookups, uniqueness (also under concurrency) and renames.

use std::sync::Arc;

use voiceflow_schema::StoreError;
use voiceflow_wire::Snowflake;

use crate::{Backend, user};

fn is_conflict(result: &Result<(), StoreError>, expected: &str) -> bool {
    matches!(result, Err(StoreError::Conflict { field }) if *field == expected)
}

/// A user is found by id, and by username and email in any case.
pub async fn create_and_look_up_case_insensitively(backend: Backend) {
    let store = backend.open().await;
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

/// A taken username or email is a conflict that writes nothing; a retried create is not.
pub async fn create_conflicts_on_username_then_email(backend: Backend) {
    let store = backend.open().await;
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

/// 32 racing creates of one username (in two cases): exactly one is stored.
pub async fn concurrent_conflicting_creates_have_one_winner(backend: Backend) {
    let store = backend.open().await;
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

/// Renames move both indexes and free the old values; renaming onto a taken name fails
/// and keeps the record; a case-only change is fine; unknown users are not created.
pub async fn update_moves_username_and_email_and_detects_conflicts(backend: Backend) {
    let store = backend.open().await;
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
