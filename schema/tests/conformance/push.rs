//! Web Push: the deployment's VAPID keys and users' push devices.

use voiceflow_schema::{PushSubscriptionRecord, VapidKeyRecord};
use voiceflow_wire::Snowflake;

use crate::Backend;

fn keys(seed: u8) -> VapidKeyRecord {
    VapidKeyRecord {
        private_key: vec![seed; 32],
        public_key: vec![seed.wrapping_add(1); 65],
        created_at: 1_760_000_000_000 + u64::from(seed),
    }
}

fn device(user: u64, endpoint: &str, seed: u8) -> PushSubscriptionRecord {
    PushSubscriptionRecord {
        user_id: Snowflake(user),
        endpoint: endpoint.into(),
        p256dh: vec![seed; 65],
        auth: vec![seed; 16],
        created_at: 1_760_000_000_000,
    }
}

/// The first pair created wins: a second create (another node racing, or concurrent ones)
/// gets the stored pair back and changes nothing; it survives a reopen.
pub async fn vapid_keys_are_created_once_and_shared(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.vapid_keys().await.expect("read"), None);
    let (k1, k2, k3) = (keys(1), keys(2), keys(3));
    let (a, b, c) = tokio::join!(
        store.create_vapid_keys(&k1),
        store.create_vapid_keys(&k2),
        store.create_vapid_keys(&k3),
    );
    let (a, b, c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    assert_eq!(a, b, "racing creates agree");
    assert_eq!(b, c, "racing creates agree");
    assert!([keys(1), keys(2), keys(3)].contains(&a));
    assert_eq!(store.create_vapid_keys(&keys(9)).await.expect("again"), a);
    assert_eq!(store.vapid_keys().await.expect("read"), Some(a.clone()));
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.vapid_keys().await.expect("reopen"), Some(a));
}

/// Devices are per user, keyed by endpoint (a re-registration replaces the keys), deleted
/// one by one (saying whether they were there), and survive a reopen.
pub async fn push_devices_are_kept_per_user_by_endpoint(backend: Backend) {
    let store = backend.open().await;
    let (ann, bob) = (51, 52);
    assert!(
        store
            .push_subscriptions(Snowflake(ann))
            .await
            .expect("none")
            .is_empty()
    );
    for sub in [
        device(ann, "https://push.example/b", 1),
        device(ann, "https://push.example/a", 2),
        device(bob, "https://push.example/a", 3),
        device(ann, "https://push.example/b", 4),
    ] {
        store.put_push_subscription(&sub).await.expect("put");
    }
    let of = |subs: Vec<PushSubscriptionRecord>| -> Vec<(String, u8)> {
        subs.into_iter().map(|s| (s.endpoint, s.auth[0])).collect()
    };
    let anns = store.push_subscriptions(Snowflake(ann)).await.expect("ann");
    assert_eq!(
        of(anns),
        vec![
            ("https://push.example/a".into(), 2),
            ("https://push.example/b".into(), 4)
        ]
    );
    assert!(
        store
            .delete_push_subscription(Snowflake(ann), "https://push.example/a")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_push_subscription(Snowflake(ann), "https://push.example/a")
            .await
            .expect("again"),
        "already gone"
    );
    drop(store);
    let store = backend.open().await;
    let anns = store.push_subscriptions(Snowflake(ann)).await.expect("ann");
    assert_eq!(of(anns), vec![("https://push.example/b".into(), 4)]);
    let bobs = store.push_subscriptions(Snowflake(bob)).await.expect("bob");
    assert_eq!(bobs, vec![device(bob, "https://push.example/a", 3)]);
}
