//! The room actor running, against a real embedded store: typing timers (paused time), a
//! crashed room restarting from storage, which failed automatic re-joins are tried again,
//! and the node context freed once nothing refers to it.

use std::time::Duration;

use ractor::Actor;
use voiceflow_schema::{Membership, Role, UserRecord};

use super::tests::{drain, fixture, link, outbox_of, post};
use super::*;
use crate::context::ActorConfig;
use crate::outbox::Outbox;
use crate::remote::Recipient;

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
