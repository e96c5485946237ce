//! Edits, deletions, reactions, replies, the log's resync, presence coalescing and read
//! markers, on room state over a real embedded store.

use std::time::{Duration, Instant};

use voiceflow_schema::{Membership, Role, StoreError, UserRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::rich::PresenceStatus;

use super::tests::{author, drain, fixture, link, outbox_of, post, resync_from_store, sink};
use super::*;
use crate::context::ActorConfig;
use crate::outbox::Outbox;
use crate::presence::PresenceNote;
use crate::remote::Recipient;

async fn with_bob(f: &super::tests::Fixture) -> Snowflake {
    let bob = f.ctx.ids.next_id();
    let user = UserRecord {
        id: bob,
        username: "bob".into(),
        email: "b@example.com".into(),
        password_hash: String::new(),
        avatar_url: None,
        created_at: 0,
    };
    f.ctx.store.create_user(&user).await.expect("bob");
    let member = Membership {
        room_id: f.room.id,
        user_id: bob,
        role: Role::Member,
        joined_at: 1,
    };
    f.ctx.store.put_member(&member).await.expect("member");
    bob
}

async fn commit(state: &mut RoomState) {
    let batch = state.take_write_batch().expect("batch");
    state.ctx.store.commit_events(&batch).await.expect("commit");
    state.handle_committed(Ok(()));
}

#[tokio::test]
async fn edits_reactions_replies_and_deletes_reach_everyone_and_replay_without_what_was_deleted() {
    let f = fixture(ActorConfig::default()).await;
    let bob = with_bob(&f).await;
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
    let sent = Reply::Session {
        to: Recipient::Local(acks.clone()),
        session_id: 0,
        req_id: Some(1),
    };
    state
        .handle_post(author(bob, "bob"), post(f.room.id, "hello", None), sent)
        .await;
    commit(&mut state).await;
    let acked = drain(&acks).await;
    let id: Snowflake =
        serde_json::from_value(acked[0]["data"]["message"]["id"].clone()).expect("id");

    // Alice may not edit Bob's message; Bob may.
    let edit = |content: &str| Action::Edit {
        message_id: id,
        content: content.into(),
    };
    state
        .handle_act(author(f.alice, "alice"), edit("hijack"), sink(&acks, 2))
        .await;
    assert_eq!(drain(&acks).await[0]["error"]["code"], "FORBIDDEN");
    state
        .handle_act(author(bob, "bob"), edit("hello, world"), sink(&acks, 3))
        .await;
    let react = |add| Action::React {
        message_id: id,
        emoji: "👍".into(),
        add,
    };
    state
        .handle_act(author(f.alice, "alice"), react(true), sink(&acks, 4))
        .await;
    state
        .handle_act(author(f.alice, "alice"), react(true), sink(&acks, 5))
        .await;
    let mut reply = post(f.room.id, "answer", None);
    reply.reply_to = Some(id);
    let sent = Reply::Session {
        to: Recipient::Local(acks.clone()),
        session_id: 0,
        req_id: Some(6),
    };
    state
        .handle_post(author(f.alice, "alice"), reply, sent)
        .await;
    commit(&mut state).await;
    // The admin deletes Bob's message: a tombstone.
    state
        .handle_act(
            author(f.alice, "alice"),
            Action::Delete { message_id: id },
            sink(&acks, 7),
        )
        .await;
    commit(&mut state).await;

    let live = drain(outbox_of(&watcher)).await;
    let kinds: Vec<_> = live
        .iter()
        .map(|v| v["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "message:received",
            "message:updated",
            "reaction:updated",
            "message:received",
            "message:deleted"
        ],
        "the second identical reaction changed nothing"
    );
    let seqs: Vec<u64> = live
        .iter()
        .map(|v| v["data"]["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(live[1]["data"]["content"], "hello, world");
    assert!(live[1]["data"]["editedAt"].is_string());
    assert_eq!(live[2]["data"]["count"], 1);
    assert_eq!(live[3]["data"]["replyTo"]["snippet"], "hello, world");
    let acks = drain(&acks).await;
    let noop = acks.iter().find(|a| a["id"] == 5).expect("ack 5");
    assert_eq!(noop["data"]["seq"], 0, "nothing changed");
    assert_eq!(noop["data"]["count"], 1);

    // A client that saw nothing replays the same events in the same order, except that what
    // was deleted meanwhile is never shown to it: the post and its edit come as the tombstone,
    // the reply quotes no snippet.
    let late = link(2, bob);
    let join = Reply::Session {
        to: late.to.clone(),
        session_id: 0,
        req_id: None,
    };
    state
        .handle_join(late.clone(), Some(0), None, true, join)
        .await;
    let replayed = drain(outbox_of(&late)).await;
    let kinds_again: Vec<_> = replayed.iter().map(|v| v["type"].clone()).collect();
    let seqs_again: Vec<_> = replayed.iter().map(|v| v["data"]["seq"].clone()).collect();
    assert_eq!(
        kinds_again,
        live.iter().map(|v| v["type"].clone()).collect::<Vec<_>>()
    );
    assert_eq!(seqs_again, [1, 2, 3, 4, 5]);
    for redacted in &replayed[0..2] {
        assert_eq!(redacted["data"]["content"], "", "{redacted}");
        assert_eq!(redacted["data"]["deleted"], true, "{redacted}");
        assert_eq!(redacted["data"]["id"], live[0]["data"]["id"]);
    }
    assert_eq!(replayed[2], live[2], "reaction counts show no content");
    assert_eq!(replayed[3]["data"]["content"], "answer");
    assert_eq!(replayed[3]["data"]["replyTo"]["snippet"], "");
    assert_eq!(replayed[3]["data"]["replyTo"]["id"], live[0]["data"]["id"]);
    assert_eq!(replayed[4], live[4]);
    let stored = f
        .ctx
        .store
        .message(f.room.id, id)
        .await
        .expect("read")
        .expect("kept");
    assert!(stored.deleted_at.is_some() && stored.content.is_empty());
    assert_eq!(stored.extra.seq, 5);
}

#[tokio::test]
async fn a_failed_write_that_landed_is_broadcast_by_the_resync_and_seqs_stay_dense() {
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
        .handle_post(
            alice.clone(),
            post(f.room.id, "landed", Some("n1")),
            reply(1),
        )
        .await;
    let batch = state.take_write_batch().expect("batch");
    // Storage wrote it, but the answer was lost (a timeout, say).
    state.ctx.store.commit_events(&batch).await.expect("commit");
    state.handle_committed(Err(StoreError::Unavailable("timeout".into())));
    assert_eq!(
        drain(&acks).await[0]["error"]["code"],
        "STORAGE_UNAVAILABLE"
    );
    state
        .handle_post(alice.clone(), post(f.room.id, "next", None), reply(2))
        .await;
    assert!(state.needs_resync());
    assert!(
        state.take_write_batch().is_none(),
        "no write before the resync"
    );
    resync_from_store(&mut state, f.room.id).await;

    commit(&mut state).await;
    let live = drain(outbox_of(&watcher)).await;
    let got: Vec<_> = live
        .iter()
        .map(|v| (v["data"]["content"].clone(), v["data"]["seq"].clone()))
        .collect();
    assert_eq!(
        got,
        [("landed".into(), 1.into()), ("next".into(), 2.into())]
    );
    // The client retries its nonce and gets the message that landed.
    state
        .handle_post(alice, post(f.room.id, "landed", Some("n1")), reply(3))
        .await;
    let acks = drain(&acks).await;
    let retry = acks.iter().find(|a| a["id"] == 3).expect("ack 3");
    assert_eq!(retry["data"]["message"]["seq"], 1);
}

#[tokio::test]
async fn presence_changes_are_coalesced_to_one_per_user_per_second() {
    let f = fixture(ActorConfig::default()).await;
    let bob = with_bob(&f).await;
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
    drain(outbox_of(&watcher)).await;
    let t = Instant::now();
    let note = |status, version| PresenceNote {
        user_id: bob,
        status,
        last_seen: None,
        version,
        source: 0,
    };
    state.handle_presence(note(PresenceStatus::Online, 10), t);
    // Flapping within the second: held back.
    state.handle_presence(
        note(PresenceStatus::Away, 11),
        t + Duration::from_millis(100),
    );
    state.handle_presence(
        note(PresenceStatus::Dnd, 12),
        t + Duration::from_millis(200),
    );
    // An older report is ignored.
    state.handle_presence(
        note(PresenceStatus::Offline, 9),
        t + Duration::from_millis(300),
    );
    assert_eq!(
        state.take_presence_flush(),
        Some(Duration::from_millis(900))
    );
    let first = drain(outbox_of(&watcher)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["type"], "user:presence_changed");
    assert_eq!(first[0]["data"]["status"], "online");
    state.handle_flush_presence(t + Duration::from_secs(1));
    let second = drain(outbox_of(&watcher)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["data"]["status"], "dnd");
    assert_eq!(state.presence_of(bob), PresenceStatus::Dnd);
    let members = state.participants(false);
    let shown = members.iter().find(|p| p.user_id == bob).expect("bob");
    assert_eq!(shown.status, PresenceStatus::Dnd);
}

#[tokio::test]
async fn read_markers_only_move_forward_and_receipts_are_batched() {
    let f = fixture(ActorConfig::default()).await;
    let bob = with_bob(&f).await;
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
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let reply = Reply::Session {
            to: Recipient::Local(acks.clone()),
            session_id: 0,
            req_id: Some(i),
        };
        state
            .handle_post(
                author(f.alice, "alice"),
                post(f.room.id, &format!("m{i}"), None),
                reply,
            )
            .await;
    }
    commit(&mut state).await;
    for a in drain(&acks).await {
        ids.push(
            serde_json::from_value::<Snowflake>(a["data"]["message"]["id"].clone()).expect("id"),
        );
    }
    drain(outbox_of(&watcher)).await;
    let moved = state.handle_read(bob, ids[1]).await.expect("read");
    assert_eq!(moved.message_id, ids[1]);
    let back = state.handle_read(bob, ids[0]).await.expect("read");
    assert_eq!(back.message_id, ids[1], "never backward");
    // Only a message of this room can be a marker: an id it does not know moves nothing.
    let unknown = state.handle_read(bob, Snowflake(u64::MAX >> 1)).await;
    assert!(
        matches!(unknown, Err(ActorError::MessageNotFound)),
        "{unknown:?}"
    );
    let newest = state.handle_read(bob, ids[2]).await.expect("read");
    assert_eq!(newest.message_id, ids[2]);
    assert!(state.take_receipts_flush());
    assert!(!state.take_receipts_flush(), "one flush per batch");
    state.handle_flush_receipts();
    let receipts = drain(outbox_of(&watcher)).await;
    assert_eq!(receipts.len(), 1, "coalesced to the newest marker");
    assert_eq!(receipts[0]["type"], "message:read_receipt");
    let markers = f.ctx.store.read_markers(bob).await.expect("markers");
    assert_eq!(markers[0].message_id, ids[2]);
}
