//! Room logic and the room actor against a real embedded store on a temporary directory.

use crate::remote::Recipient;
use std::sync::Arc;
use std::time::Duration;

use voiceflow_schema::{
    EmbeddedStore, Membership, Role, RoomRecord, RoomSettings, Store, UserRecord,
};
use voiceflow_wire::v1::client::{MessageType, SendMessage};
use voiceflow_wire::{Snowflake, SnowflakeGenerator};

use super::*;
use crate::context::{ActorConfig, NodeContext, NodeParts};
use crate::outbox::{Drained, Outbox};

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) ctx: NodeContext,
    pub(super) room: RoomRecord,
    pub(super) alice: Snowflake,
}

pub(super) async fn fixture(config: ActorConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let ids = Arc::new(SnowflakeGenerator::new(1));
    let alice = ids.next_id();
    store
        .create_user(&UserRecord {
            id: alice,
            username: "alice".into(),
            email: "a@example.com".into(),
            password_hash: String::new(),
            avatar_url: None,
            created_at: 0,
        })
        .await
        .expect("user");
    let room = RoomRecord {
        id: ids.next_id(),
        name: "General".into(),
        description: String::new(),
        max_users: 10,
        settings: RoomSettings::default(),
        join_code: "CODE2345".into(),
        created_by: alice,
        created_at: 0,
        updated_at: 0,
        kind: Default::default(),
        banned: Vec::new(),
    };
    let admin = Membership {
        room_id: room.id,
        user_id: alice,
        role: Role::Admin,
        joined_at: 0,
    };
    store.create_room(&room, &admin).await.expect("room");
    let ctx = NodeContext::start(NodeParts {
        sessions: Default::default(),
        store,
        ids,
        config: Arc::new(config),
        presence: Default::default(),
        cluster: None,
        search: None,
        push: None,
        voice: Arc::new(crate::context::VoiceRuntime {
            media: voiceflow_media::MediaPlane::new(Default::default()),
            ice_servers: Vec::new(),
            turn: None,
            capacity: 25,
            stage_capacity: 200,
            stage_speakers: 10,
            max_video_publishers: 9,
            ttl: Duration::from_secs(30),
            call_timings: Default::default(),
        }),
        blobs: Arc::new(
            voiceflow_schema::blob::DirBlobStore::open(&dir.path().join("blobs")).expect("blobs"),
        ),
    })
    .await
    .expect("context");
    Fixture {
        _dir: dir,
        ctx,
        room,
        alice,
    }
}

pub(super) fn link(session_id: u64, user: Snowflake) -> SessionLink {
    SessionLink {
        session_id,
        user_id: user,
        username: "alice".into(),
        to: Recipient::Local(Outbox::new(1000)),
    }
}

pub(super) fn post(room: Snowflake, content: &str, nonce: Option<&str>) -> SendMessage {
    SendMessage {
        room_id: room,
        content: content.into(),
        kind: MessageType::Text,
        nonce: nonce.map(Into::into),
        reply_to: None,
        file_id: None,
    }
}

/// A post's author.
pub(super) fn author(user: Snowflake, name: &str) -> Author {
    Author {
        user_id: user,
        username: name.into(),
    }
}

/// Where a request's answer goes: `outbox`, as the ack of request `id`.
pub(super) fn sink<T>(outbox: &Outbox, id: u64) -> Reply<T> {
    Reply::Session {
        to: Recipient::Local(outbox.clone()),
        session_id: 0,
        req_id: Some(id),
    }
}

/// Runs the resync the room asked for against its store, as the room's task would: renew the
/// ownership epoch, read the log's end and the entries after the room's head.
pub(super) async fn resync_from_store(state: &mut RoomState, room_id: Snowflake) {
    let (after, owner, _) = state.begin_resync();
    let store = state.ctx.store.clone();
    let owner_epoch = store.claim_room(room_id, Some(owner)).await.expect("renew");
    let head = store.log_head(room_id).await.expect("head");
    let events = store
        .events_after(room_id, after, 10)
        .await
        .expect("events");
    state.handle_resynced(Ok(state::ResyncData {
        owner_epoch,
        head,
        events,
    }));
}

pub(super) async fn drain(outbox: &Outbox) -> Vec<serde_json::Value> {
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_millis(50), outbox.next_batch(&mut buf)).await {
        Ok(Drained::Frames) => buf
            .iter()
            .flat_map(|f| {
                f.texts()
                    .into_iter()
                    .map(|t| serde_json::from_str(t).expect("json"))
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn posts_are_acked_and_broadcast_only_after_the_batch_commits() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let session = link(1, f.alice);
    state
        .handle_join(
            session.clone(),
            None,
            None,
            true,
            Reply::Session {
                to: session.to.clone(),
                session_id: 0,
                req_id: Some(1),
            },
        )
        .await;
    assert_eq!(drain(outbox_of(&session)).await[0]["ok"], true);

    let author = Author {
        user_id: f.alice,
        username: "alice".into(),
    };
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let reply = Reply::Session {
            to: session.to.clone(),
            session_id: 0,
            req_id: Some(10 + i as u64),
        };
        state
            .handle_post(author.clone(), post(f.room.id, text, None), reply)
            .await;
    }
    assert!(
        drain(outbox_of(&session)).await.is_empty(),
        "nothing before the write"
    );
    let batch = state.take_write_batch().expect("batch");
    assert_eq!(batch.len(), 3);
    assert!(
        state.take_write_batch().is_none(),
        "one write in flight at a time"
    );
    f.ctx.store.commit_events(&batch).await.expect("append");
    state.handle_committed(Ok(()));
    let frames = drain(outbox_of(&session)).await;
    let received: Vec<_> = frames
        .iter()
        .filter(|v| v["type"] == "message:received")
        .map(|v| v["data"]["content"].clone())
        .collect();
    assert_eq!(received, ["one", "two", "three"]);
    assert_eq!(
        frames
            .iter()
            .filter(|v| v["type"] == "ack" && v["ok"] == true)
            .count(),
        3
    );
}

#[tokio::test]
async fn a_failed_write_is_reported_and_never_broadcast() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let session = link(1, f.alice);
    state
        .handle_join(
            session.clone(),
            None,
            None,
            true,
            Reply::Session {
                to: session.to.clone(),
                session_id: 0,
                req_id: None,
            },
        )
        .await;
    let author = Author {
        user_id: f.alice,
        username: "alice".into(),
    };
    let reply = Reply::Session {
        to: session.to.clone(),
        session_id: 0,
        req_id: Some(5),
    };
    state
        .handle_post(author, post(f.room.id, "lost", None), reply)
        .await;
    state.take_write_batch().expect("batch");
    state.handle_committed(Err(voiceflow_schema::StoreError::Unavailable(
        "disk gone".into(),
    )));
    let frames = drain(outbox_of(&session)).await;
    assert!(frames.iter().all(|v| v["type"] != "message:received"));
    let ack = frames.iter().find(|v| v["type"] == "ack").expect("ack");
    assert_eq!(ack["error"]["code"], "STORAGE_UNAVAILABLE");
}

#[tokio::test]
async fn a_nonce_in_flight_or_stored_gives_back_the_same_message() {
    let f = fixture(ActorConfig::default()).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let outbox = Outbox::new(100);
    let author = Author {
        user_id: f.alice,
        username: "alice".into(),
    };
    for id in [1, 2] {
        let reply = Reply::Session {
            to: Recipient::Local(outbox.clone()),
            session_id: 0,
            req_id: Some(id),
        };
        state
            .handle_post(author.clone(), post(f.room.id, "x", Some("n1")), reply)
            .await;
    }
    let batch = state.take_write_batch().expect("batch");
    assert_eq!(batch.len(), 1, "the retry joined the first post");
    f.ctx.store.commit_events(&batch).await.expect("append");
    state.handle_committed(Ok(()));
    // After a restart the nonce is found in storage.
    let mut fresh = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("reload");
    let reply = Reply::Session {
        to: Recipient::Local(outbox.clone()),
        session_id: 0,
        req_id: Some(3),
    };
    fresh
        .handle_post(author, post(f.room.id, "x", Some("n1")), reply)
        .await;
    assert!(fresh.take_write_batch().is_none());
    let acks: Vec<_> = drain(&outbox)
        .await
        .into_iter()
        .filter(|v| v["type"] == "ack")
        .collect();
    assert_eq!(acks.len(), 3);
    assert!(
        acks.iter()
            .all(|a| a["data"]["message"]["id"] == acks[0]["data"]["message"]["id"])
    );
}

#[tokio::test]
async fn replay_stops_at_what_was_broadcast_and_respects_the_limit() {
    let config = ActorConfig {
        replay_limit: 3,
        ..ActorConfig::default()
    };
    let f = fixture(config).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    let author = Author {
        user_id: f.alice,
        username: "alice".into(),
    };
    let sink = Outbox::new(100);
    for i in 0..5 {
        let reply = Reply::Session {
            to: Recipient::Local(sink.clone()),
            session_id: 0,
            req_id: None,
        };
        state
            .handle_post(
                author.clone(),
                post(f.room.id, &format!("m{i}"), None),
                reply,
            )
            .await;
    }
    let batch = state.take_write_batch().expect("batch");
    f.ctx.store.commit_events(&batch).await.expect("append");
    state.handle_committed(Ok(()));
    let since = batch[1].seq;
    let session = link(2, f.alice);
    state
        .handle_join(
            session.clone(),
            Some(since),
            None,
            true,
            Reply::Session {
                to: session.to.clone(),
                session_id: 0,
                req_id: Some(1),
            },
        )
        .await;
    let frames = drain(outbox_of(&session)).await;
    let replayed: Vec<_> = frames
        .iter()
        .filter(|v| v["type"] == "message:received")
        .map(|v| v["data"]["content"].clone())
        .collect();
    assert_eq!(replayed, ["m2", "m3", "m4"]);
    assert_eq!(frames.last().expect("ack")["data"]["replayed"], 3);
    let late = link(3, f.alice);
    state
        .handle_join(
            late.clone(),
            Some(0),
            None,
            true,
            Reply::Session {
                to: late.to.clone(),
                session_id: 0,
                req_id: Some(1),
            },
        )
        .await;
    let frames = drain(outbox_of(&late)).await;
    assert_eq!(frames.last().expect("ack")["data"]["replayTruncated"], true);
    assert!(frames.iter().all(|v| v["type"] != "message:received"));
}

pub(super) fn outbox_of(session: &SessionLink) -> &Outbox {
    match &session.to {
        Recipient::Local(outbox) => outbox,
        Recipient::Remote(_) => panic!("test sessions are local"),
    }
}
