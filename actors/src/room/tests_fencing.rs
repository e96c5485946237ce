//! Storage-level fencing as the room actor's state sees it (embedded store, real writes).

use voiceflow_schema::{Store, StoreError};

use super::tests::{author, drain, fixture, link, outbox_of, post, resync_from_store, sink};
use super::*;
use crate::context::ActorConfig;
use crate::outbox::Outbox;
use crate::remote::Recipient;

/// Another owner took the room over after it loaded: its next write is refused, the poster
/// is told to retry, nothing of it is stored, and the room writes nothing again.
#[tokio::test]
async fn a_room_whose_storage_was_taken_over_fails_its_queue_and_writes_nothing() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let acks = Outbox::new(100);
    let reply = |id| sink(&acks, id);
    let alice = author(f.alice, "alice");
    // The new owner elsewhere.
    let newer = f
        .ctx
        .store
        .claim_room(f.room.id, None)
        .await
        .expect("claim");
    state
        .handle_post(
            alice.clone(),
            post(f.room.id, "stale", Some("n1")),
            reply(1),
        )
        .await;
    let batch = state.take_write_batch().expect("batch");
    let result = f.ctx.store.commit_events(&batch).await;
    assert!(
        matches!(result, Err(StoreError::Fenced { current, .. }) if current == newer),
        "{result:?}"
    );
    state.handle_committed(result);
    assert!(state.is_fenced());
    state
        .handle_post(alice, post(f.room.id, "later", Some("n2")), reply(2))
        .await;
    assert!(
        state.take_write_batch().is_none(),
        "a fenced room writes nothing"
    );
    let acks = drain(&acks).await;
    assert_eq!(acks.len(), 2, "{acks:?}");
    for ack in &acks {
        assert_eq!(ack["error"]["code"], "UNAVAILABLE", "{ack}");
        assert_eq!(ack["error"]["details"]["retryAfterMs"], 1000, "{ack}");
        assert_eq!(
            ack["error"]["message"],
            "room temporarily unavailable, retry"
        );
    }
    assert!(state.writes_done());
    assert_eq!(f.ctx.store.log_head(f.room.id).await.expect("head"), None);
    assert!(
        f.ctx
            .store
            .messages_before(f.room.id, None, 10)
            .await
            .expect("history")
            .is_empty()
    );
}

/// A write that failed is retired by the resync: its entries, landing after the room wrote
/// the same seqs again, are an older epoch's and never show.
#[tokio::test]
async fn a_failed_write_landing_after_the_resync_never_replaces_what_came_next() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let watcher = link(1, f.alice);
    let join = Reply::Session {
        to: watcher.to.clone(),
        session_id: 0,
        req_id: None,
    };
    state
        .handle_join(watcher.clone(), None, None, true, join)
        .await;
    let acks = Outbox::new(100);
    let reply = |id| sink(&acks, id);
    let alice = author(f.alice, "alice");
    state
        .handle_post(alice.clone(), post(f.room.id, "late", Some("n1")), reply(1))
        .await;
    // The write times out without having landed yet.
    let late = state.take_write_batch().expect("batch");
    state.handle_committed(Err(StoreError::Unavailable("timeout".into())));
    resync_from_store(&mut state, f.room.id).await;
    let store: &dyn Store = &*f.ctx.store;
    state
        .handle_post(alice, post(f.room.id, "next", Some("n2")), reply(2))
        .await;
    let batch = state.take_write_batch().expect("batch");
    store.commit_events(&batch).await.expect("commit");
    state.handle_committed(Ok(()));
    // Now the first write arrives.
    assert!(matches!(
        store.commit_events(&late).await,
        Err(StoreError::Fenced { .. })
    ));
    let log = store.events_after(f.room.id, 0, 10).await.expect("read");
    let contents: Vec<_> = log
        .iter()
        .filter_map(|e| e.message.as_ref().map(|m| (e.seq, m.content.clone())))
        .collect();
    assert_eq!(contents, vec![(1, "next".to_owned())]);
    let live = drain(outbox_of(&watcher)).await;
    let got: Vec<_> = live.iter().map(|v| v["data"]["content"].clone()).collect();
    assert_eq!(got, ["next"]);
    let history = store
        .messages_before(f.room.id, None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].content, "next");
}

/// Storage stays unreachable after a failed write: every failed resync makes the next one
/// wait longer (no busy loop of failing reads), and a successful one resets the wait.
#[tokio::test]
async fn failed_resyncs_wait_longer_each_time_and_a_success_resets_the_wait() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let acks = Outbox::new(100);
    let reply = |id| sink(&acks, id);
    let alice = author(f.alice, "alice");
    state
        .handle_post(alice.clone(), post(f.room.id, "lost", Some("n1")), reply(1))
        .await;
    let _ = state.take_write_batch().expect("batch");
    state.handle_committed(Err(StoreError::Unavailable("timeout".into())));
    let mut waits = Vec::new();
    for _ in 0..4 {
        assert!(state.needs_resync());
        let (_, _, wait) = state.begin_resync();
        waits.push(wait.as_millis());
        state.handle_resynced(Err(StoreError::Unavailable("down".into())));
    }
    assert_eq!(waits, vec![0, 50, 100, 200]);
    resync_from_store(&mut state, f.room.id).await;
    // The next failure starts from no wait again.
    state
        .handle_post(alice, post(f.room.id, "next", Some("n2")), reply(2))
        .await;
    let _ = state.take_write_batch().expect("batch");
    state.handle_committed(Err(StoreError::Unavailable("timeout".into())));
    let (_, _, wait) = state.begin_resync();
    assert!(wait.is_zero());
}

/// A session already in the live set joins again (its node followed the room elsewhere for a
/// moment while a node came back, and dropped what this room fanned out meanwhile): it is
/// replayed from where it says it is, and a second such join delivers nothing twice.
#[tokio::test]
async fn a_live_session_joining_again_gets_what_its_node_dropped() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let joined = link(2, f.alice);
    state
        .handle_join(
            joined.clone(),
            Some(0),
            None,
            false,
            sink(outbox_of(&joined), 1),
        )
        .await;
    let acks = Outbox::new(100);
    // Alice posts `content` (acked as request `id`) and the batch commits.
    let posted = async |state: &mut RoomState, content: &str, id: u64| {
        let alice = author(f.alice, "alice");
        state
            .handle_post(alice, post(f.room.id, content, None), sink(&acks, id))
            .await;
        let batch = state.take_write_batch().expect("batch");
        f.ctx.store.commit_events(&batch).await.expect("commit");
        state.handle_committed(Ok(()));
    };
    posted(&mut state, "m1", 2).await;
    let live = drain(outbox_of(&joined)).await;
    assert!(
        live.iter().any(|v| v["data"]["content"] == "m1"),
        "{live:?}"
    );
    // What the session's node holds after it dropped that fan-out.
    let node = SessionLink {
        to: Recipient::Local(Outbox::new(100)),
        ..joined.clone()
    };
    for attempt in [3, 4] {
        state
            .handle_join(
                node.clone(),
                Some(0),
                None,
                false,
                sink(outbox_of(&node), attempt),
            )
            .await;
    }
    let frames = drain(outbox_of(&node)).await;
    let messages: Vec<_> = frames
        .iter()
        .filter(|v| v["type"] == "message:received")
        .map(|v| v["data"]["content"].clone())
        .collect();
    assert_eq!(messages, ["m1"], "{frames:?}");
    let oks: Vec<_> = frames.iter().filter(|v| v["ok"] == true).collect();
    assert_eq!(oks.len(), 2, "{frames:?}");
    assert_eq!(oks[0]["data"]["replayed"], 1);
    // Still one live session: the next message reaches it once.
    posted(&mut state, "m2", 5).await;
    let live = drain(outbox_of(&joined)).await;
    let m2 = live.iter().filter(|v| v["data"]["content"] == "m2").count();
    assert_eq!(m2, 1, "{live:?}");
}
