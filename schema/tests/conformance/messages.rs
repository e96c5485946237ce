//! The message log: paging back and forth, bucket boundaries, nonces, tombstones, batches.

use std::sync::Arc;

use voiceflow_schema::bucket::{BUCKET_MS, bucket_of};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::EPOCH_MS;

use crate::{Backend, ids, message};

/// 250 messages appended in uneven batches, beside neighbouring rooms: `before` paging sees
/// each once, newest first; a cursor need not be an existing id; `limit` 0 reads nothing.
pub async fn pages_back_through_250_messages_without_gaps(backend: Backend) {
    let store = backend.open().await;
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let all: Vec<Snowflake> = (0..250u64).map(|i| Snowflake(base + i * 7 + 1)).collect();
    // Appended in batches of varying size, plus noise in neighbouring rooms.
    for chunk in all.chunks(17) {
        let batch: Vec<_> = chunk.iter().map(|id| message(100, *id, None)).collect();
        store.append_messages(&batch).await.expect("append");
    }
    store
        .append_messages(&[
            message(99, Snowflake(base + 5), None),
            message(101, Snowflake(base), None),
        ])
        .await
        .expect("noise");
    store.append_messages(&[]).await.expect("empty append");

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .messages_before(Snowflake(100), cursor, 50)
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 50);
        assert!(page.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(page.iter().all(|m| m.room_id == Snowflake(100)));
        cursor = page.last().map(|m| m.id);
        seen.extend(ids(&page));
    }
    let expected: Vec<u64> = all.iter().rev().map(|id| id.0).collect();
    assert_eq!(seen, expected, "every message once, newest first");

    // `before` needs not be an existing id.
    let page = store
        .messages_before(Snowflake(100), Some(Snowflake(all[10].0 + 3)), 3)
        .await
        .expect("page");
    assert_eq!(ids(&page), vec![all[10].0, all[9].0, all[8].0]);
    assert_eq!(
        store
            .messages_before(Snowflake(100), None, 0)
            .await
            .expect("page"),
        vec![]
    );
}

/// Messages on both sides of bucket boundaries, appended out of order: both walks cross the
/// boundaries in order and never return another room's messages; single lookups work.
pub async fn history_crosses_bucket_boundaries_and_stops_at_the_room(backend: Backend) {
    let store = backend.open().await;
    // Three consecutive buckets: the last ms of bucket 4, the first of 5, and one in 6.
    let edge = EPOCH_MS + 5 * BUCKET_MS;
    let a = Snowflake(Snowflake::lower_bound_for(edge - 1).0 + 3);
    let b = Snowflake::lower_bound_for(edge);
    let c = Snowflake(Snowflake::lower_bound_for(edge).0 + 1);
    let d = Snowflake::lower_bound_for(edge + BUCKET_MS + 10);
    assert_eq!((bucket_of(a), bucket_of(b), bucket_of(d)), (4, 5, 6));
    // Appended out of order; the neighbouring rooms hold messages in the same buckets.
    store
        .append_messages(&[message(100, d, None), message(100, a, None)])
        .await
        .expect("append");
    store
        .append_messages(&[message(100, c, None), message(100, b, None)])
        .await
        .expect("append");
    store
        .append_messages(&[message(99, d, None), message(101, a, None)])
        .await
        .expect("noise");

    let newest = store
        .messages_before(Snowflake(100), None, 10)
        .await
        .expect("before");
    assert_eq!(ids(&newest), vec![d.0, c.0, b.0, a.0]);
    let older = store
        .messages_before(Snowflake(100), Some(b), 10)
        .await
        .expect("before b");
    assert_eq!(ids(&older), vec![a.0]);
    let two = store
        .messages_before(Snowflake(100), Some(d), 2)
        .await
        .expect("before d");
    assert_eq!(ids(&two), vec![c.0, b.0]);

    let after = store
        .messages_after(Snowflake(100), a, 10)
        .await
        .expect("after a");
    assert_eq!(ids(&after), vec![b.0, c.0, d.0]);
    let after = store
        .messages_after(Snowflake(100), Snowflake(0), 2)
        .await
        .expect("after 0");
    assert_eq!(ids(&after), vec![a.0, b.0]);
    let after = store
        .messages_after(Snowflake(100), c, 10)
        .await
        .expect("after c");
    assert_eq!(ids(&after), vec![d.0]);
    assert_eq!(
        store
            .messages_after(Snowflake(100), d, 10)
            .await
            .expect("after d"),
        vec![]
    );
    assert_eq!(
        store
            .messages_after(Snowflake(100), Snowflake(u64::MAX), 10)
            .await
            .expect("max"),
        vec![]
    );

    assert_eq!(
        store
            .message(Snowflake(100), c)
            .await
            .expect("one")
            .map(|m| m.id),
        Some(c)
    );
    assert_eq!(
        store.message(Snowflake(99), c).await.expect("other room"),
        None
    );
    assert_eq!(
        store.message_room(b).await.expect("by id"),
        Some(Snowflake(100))
    );
    assert_eq!(
        store.message_room(Snowflake(12345)).await.expect("by id"),
        None
    );
}

/// Nonces find their message only for their (room, user); a tombstone clears the content,
/// keeps the first deletion time and its place in history; unknown messages are no-ops.
pub async fn nonce_lookup_and_tombstones(backend: Backend) {
    let store = backend.open().await;
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let (m1, m2, m3) = (
        Snowflake(base + 1),
        Snowflake(base + 2),
        Snowflake(base + 3),
    );
    store
        .append_messages(&[
            message(100, m1, Some("nonce-a")),
            message(100, m2, None),
            message(100, m3, Some("nonce-b")),
        ])
        .await
        .expect("append");

    let room = Snowflake(100);
    assert_eq!(
        store
            .message_by_nonce(room, Snowflake(7), "nonce-a")
            .await
            .expect("r"),
        Some(m1)
    );
    assert_eq!(
        store
            .message_by_nonce(room, Snowflake(7), "nonce-b")
            .await
            .expect("r"),
        Some(m3)
    );
    assert_eq!(
        store
            .message_by_nonce(room, Snowflake(8), "nonce-a")
            .await
            .expect("r"),
        None
    );
    assert_eq!(
        store
            .message_by_nonce(Snowflake(101), Snowflake(7), "nonce-a")
            .await
            .expect("r"),
        None
    );
    assert_eq!(
        store
            .message_by_nonce(room, Snowflake(7), "nonce")
            .await
            .expect("r"),
        None
    );

    store
        .tombstone_message(room, m2, 42)
        .await
        .expect("tombstone");
    let gone = store
        .message(room, m2)
        .await
        .expect("read")
        .expect("still in the log");
    assert_eq!(gone.content, "");
    assert_eq!(gone.deleted_at, Some(42));
    // Repeating keeps the first deletion time; unknown messages are a no-op.
    store.tombstone_message(room, m2, 99).await.expect("again");
    assert_eq!(
        store
            .message(room, m2)
            .await
            .expect("read")
            .and_then(|m| m.deleted_at),
        Some(42)
    );
    store
        .tombstone_message(room, Snowflake(base + 50), 1)
        .await
        .expect("unknown");
    assert_eq!(
        store
            .message(room, Snowflake(base + 50))
            .await
            .expect("read"),
        None
    );

    let history = store
        .messages_before(room, None, 10)
        .await
        .expect("history");
    assert_eq!(
        ids(&history),
        vec![m3.0, m2.0, m1.0],
        "history stays gap-free"
    );
    assert_eq!(history[0].content, format!("message {}", m3.0));
    assert_eq!(history[1].deleted_at, Some(42));
}

/// A room whose messages are spread over 24 buckets (more than one page of the CQL bucket
/// index), most of them empty in between: walks in both directions see every message once.
pub async fn sparse_history_walks_many_buckets_both_ways(backend: Backend) {
    let store = backend.open().await;
    // Two messages in every third bucket from bucket 3 on, appended newest bucket first.
    let mut all: Vec<Snowflake> = (0..24u64)
        .flat_map(|i| {
            let start = EPOCH_MS + (3 + 3 * i) * BUCKET_MS;
            let first = Snowflake::lower_bound_for(start + 17);
            [first, Snowflake(first.0 + 5)]
        })
        .collect();
    for pair in all.chunks(2).rev() {
        let batch: Vec<_> = pair.iter().map(|id| message(100, *id, None)).collect();
        store.append_messages(&batch).await.expect("append");
    }
    all.sort();
    let newest_first: Vec<u64> = all.iter().rev().map(|id| id.0).collect();

    for page_size in [1u32, 3, 5, 48, 100] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .messages_before(Snowflake(100), cursor, page_size)
                .await
                .expect("page");
            assert!(page.len() <= page_size as usize);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            seen.extend(ids(&page));
        }
        assert_eq!(seen, newest_first, "backwards, pages of {page_size}");

        let mut seen = Vec::new();
        let mut cursor = Snowflake(0);
        loop {
            let page = store
                .messages_after(Snowflake(100), cursor, page_size)
                .await
                .expect("page");
            let Some(last) = page.last() else { break };
            cursor = last.id;
            seen.extend(ids(&page));
        }
        let oldest_first: Vec<u64> = all.iter().map(|id| id.0).collect();
        assert_eq!(seen, oldest_first, "forwards, pages of {page_size}");
    }
    // A cursor inside an empty bucket, and one beyond every possible id.
    let mid = Snowflake::lower_bound_for(EPOCH_MS + 4 * BUCKET_MS + 1);
    let below = store
        .messages_before(Snowflake(100), Some(mid), 10)
        .await
        .expect("page");
    assert_eq!(ids(&below), vec![all[1].0, all[0].0]);
    let above = store
        .messages_after(Snowflake(100), mid, 2)
        .await
        .expect("page");
    assert_eq!(ids(&above), vec![all[2].0, all[3].0]);
    let top = store
        .messages_before(Snowflake(100), Some(Snowflake(u64::MAX)), 1)
        .await
        .expect("page");
    assert_eq!(ids(&top), vec![newest_first[0]]);
}

/// One call may hold several rooms' messages, and more than one storage batch's worth.
pub async fn one_call_appends_to_several_rooms_and_large_batches(backend: Backend) {
    let store = backend.open().await;
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let mut batch = Vec::new();
    for i in 0..300u64 {
        let room = 200 + i % 3;
        let nonce = format!("n{i}");
        batch.push(message(room, Snowflake(base + i), Some(&nonce)));
    }
    // Long contents push the call over the CQL backend's per-batch byte budget too.
    for m in batch.iter_mut().take(40) {
        m.content = "x".repeat(4000);
    }
    store.append_messages(&batch).await.expect("append");
    for room in 200..203u64 {
        let history = store
            .messages_before(Snowflake(room), None, 1000)
            .await
            .expect("history");
        let expected: Vec<u64> = (0..300u64)
            .rev()
            .filter(|i| 200 + i % 3 == room)
            .map(|i| base + i)
            .collect();
        assert_eq!(ids(&history), expected, "room {room}");
    }
    assert_eq!(
        store
            .message(Snowflake(200), Snowflake(base))
            .await
            .expect("read")
            .map(|m| m.content.len()),
        Some(4000)
    );
    assert_eq!(
        store
            .message_by_nonce(Snowflake(201), Snowflake(7), "n298")
            .await
            .expect("nonce"),
        Some(Snowflake(base + 298))
    );
    assert_eq!(
        store
            .message_room(Snowflake(base + 299))
            .await
            .expect("by id"),
        Some(Snowflake(202))
    );
}

/// Many tasks append to one room at once (the writes share batches): every acknowledged
/// message is there, once, in id order, also after reopening the store.
pub async fn concurrent_appends_are_all_stored_and_survive_a_reopen(backend: Backend) {
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let (tasks, per_task) = (16u64, 25u64);
    {
        let store = backend.open().await;
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let id = Snowflake(base + t * per_task + i);
                        store
                            .append_messages(&[message(100, id, None)])
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("join");
        }
        store.flush().await.expect("flush");
    }
    let store = backend.open().await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .messages_before(Snowflake(100), cursor, 64)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        seen.extend(ids(&page));
    }
    let expected: Vec<u64> = (0..tasks * per_task).rev().map(|i| base + i).collect();
    assert_eq!(seen, expected);
}
