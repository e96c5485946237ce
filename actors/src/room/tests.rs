//! Room logic and the room actor against a real embedded store on a temporary directory.

use crate::remote::Recipient;
use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;
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

#[tokio::test(start_paused = true)]
async fn typing_expires_after_the_ttl_with_paused_time() {
    let config = ActorConfig {
        typing_ttl: Duration::from_secs(6),
        ..ActorConfig::default()
    };
    let f = fixture(config).await;
    let bob = f.ctx.ids.next_id();
    f.ctx
        .store
        .put_member(&Membership {
            room_id: f.room.id,
            user_id: bob,
            role: Role::Member,
            joined_at: 1,
        })
        .await
        .expect("member");
    f.ctx
        .store
        .create_user(&UserRecord {
            id: bob,
            username: "bob".into(),
            email: "b@example.com".into(),
            password_hash: String::new(),
            avatar_url: None,
            created_at: 0,
        })
        .await
        .expect("bob");
    let (room, _) = Actor::spawn(
        None,
        RoomActor,
        RoomArgs {
            room: f.room.clone(),
            ctx: f.ctx.clone(),
        },
    )
    .await
    .expect("spawn");
    let watcher = link(1, f.alice);
    room.cast(RoomMsg::Join {
        session: watcher.clone(),
        since: None,
        epoch: None,
        members: true,
        reply: Reply::Session {
            to: watcher.to.clone(),
            session_id: 0,
            req_id: None,
        },
    })
    .expect("join");
    let typist = link(2, bob);
    room.cast(RoomMsg::Join {
        session: typist.clone(),
        since: None,
        epoch: None,
        members: true,
        reply: Reply::Session {
            to: typist.to.clone(),
            session_id: 2,
            req_id: None,
        },
    })
    .expect("join");
    let typing = || RoomMsg::Typing {
        session_id: 2,
        user_id: bob,
        start: true,
        reply: None,
    };
    room.cast(typing()).expect("typing");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        drain(outbox_of(&watcher))
            .await
            .iter()
            .any(|v| v["type"] == "user:typing")
    );
    // A second start at 4 s pushes the expiry to 10 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    room.cast(typing()).expect("typing");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        drain(outbox_of(&watcher))
            .await
            .iter()
            .all(|v| v["type"] != "user:stopped_typing"),
        "the first timer is stale"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        drain(outbox_of(&watcher))
            .await
            .iter()
            .any(|v| v["type"] == "user:stopped_typing")
    );
    room.stop(None);
}

#[tokio::test]
async fn a_crashed_room_is_forgotten_and_restarts_from_storage() {
    let f = fixture(ActorConfig::default()).await;
    let sup = f.ctx.directory.supervisor().clone();
    let first = f
        .ctx
        .directory
        .get_or_start(f.room.id)
        .await
        .expect("start");
    let author = Author {
        user_id: f.alice,
        username: "alice".into(),
    };
    let sent = f
        .ctx
        .directory
        .call(f.room.id, |port| RoomMsg::Post {
            author: author.clone(),
            post: post(f.room.id, "before", None),
            reply: Reply::Port(port),
        })
        .await
        .expect("post");
    first.kill();
    for _ in 0..100 {
        if f.ctx.directory.running(f.room.id).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = f
        .ctx
        .directory
        .get_or_start(f.room.id)
        .await
        .expect("restart");
    assert_ne!(first.get_id(), second.get_id());
    let again = f
        .ctx
        .directory
        .call(f.room.id, |port| RoomMsg::Post {
            author,
            post: post(f.room.id, "after", None),
            reply: Reply::Port(port),
        })
        .await
        .expect("post after restart");
    assert!(again.message.id > sent.message.id);
    let history = f
        .ctx
        .store
        .messages_before(f.room.id, None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    sup.stop(None);
}

pub(super) fn outbox_of(session: &SessionLink) -> &Outbox {
    match &session.to {
        Recipient::Local(outbox) => outbox,
        Recipient::Remote(_) => panic!("test sessions are local"),
    }
}

#[test]
fn only_an_automatic_rejoin_that_failed_for_a_moment_is_tried_again() {
    use super::state::{FailedJoin, failed_join};
    let to = Recipient::Local(Outbox::new(10));
    let automatic: Reply<()> = Reply::Session {
        to: to.clone(),
        session_id: 1,
        req_id: None,
    };
    let asked: Reply<()> = Reply::Session {
        to,
        session_id: 1,
        req_id: Some(3),
    };
    let down = ActorError::Store(voiceflow_schema::StoreError::Unavailable("restart".into()));
    assert_eq!(failed_join(&automatic, &down, false), FailedJoin::Retry);
    assert_eq!(
        failed_join(&automatic, &ActorError::Unavailable, false),
        FailedJoin::Retry
    );
    assert_eq!(failed_join(&automatic, &down, true), FailedJoin::Drop);
    // The client asked: it gets the error and retries itself.
    assert_eq!(failed_join(&asked, &down, false), FailedJoin::Refuse);
    // A refusal that stands is final.
    let forbidden = ActorError::Forbidden("not a member of this room");
    assert_eq!(
        failed_join(&automatic, &forbidden, false),
        FailedJoin::Refuse
    );
    assert_eq!(
        failed_join(&automatic, &ActorError::RoomNotFound, false),
        FailedJoin::Refuse
    );
}

#[tokio::test]
async fn a_node_context_is_freed_once_nothing_but_its_directories_refer_to_it() {
    let f = fixture(ActorConfig::default()).await;
    let weak = f.ctx.downgrade();
    // A room, which asks its members' presence actors (started here) to report.
    let room = f
        .ctx
        .directory
        .get_or_start(f.room.id)
        .await
        .expect("start");
    for _ in 0..200 {
        if f.ctx.presence.len().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.ctx.presence.len().await, 1, "alice's presence actor");
    room.stop(None);
    room.get_cell()
        .wait(Some(Duration::from_secs(5)))
        .await
        .expect("stopped");
    f.ctx.presence.stop_all().await;
    drop(f);
    // The directories inside hold the context weakly: no cycle keeps it (and the store, the
    // sessions, the media plane) alive.
    for _ in 0..200 {
        if weak.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the node context outlived every holder");
}
