//! What only the CQL backend has: connecting (and refusing a dead cluster), migrations, and
//! unique claims left over by a crashed node. Tests that need a server use the one in
//! `VOICEFLOW_TEST_CQL` with a fresh keyspace each, and skip loudly when it is unset.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use voiceflow_schema::cql::migrate::latest_version;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, test_config,
};
use voiceflow_schema::cql::{CqlConfig, CqlStore};
use voiceflow_schema::{Store, StoreError, UserRecord};
use voiceflow_wire::Snowflake;

/// A fresh keyspace config, or `None` (after the skip notice) without a server.
fn server(test: &str) -> Option<CqlConfig> {
    match contact_points_from_env() {
        Some(points) => Some(test_config(points, "vf_cqltest")),
        None => {
            announce_skip(test);
            None
        }
    }
}

/// A raw session on the test server, in `config`'s keyspace.
async fn raw_session(config: &CqlConfig) -> Session {
    let session = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .fetch_schema_metadata(false)
        .auto_await_schema_agreement(false)
        .build()
        .await
        .expect("raw session");
    session
        .use_keyspace(&config.keyspace, false)
        .await
        .expect("use keyspace");
    session
}

fn user(id: u64, name: &str) -> UserRecord {
    UserRecord {
        id: Snowflake(id),
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        password_hash: "x".to_owned(),
        avatar_url: Some("https://example.com/a.png".to_owned()),
        created_at: 1,
    }
}

#[tokio::test]
async fn a_dead_cluster_is_refused_quickly_with_the_contact_point_named() {
    // Nothing listens on a port we just released.
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr").port()
    };
    let config = CqlConfig {
        connect_timeout_ms: 2_000,
        ..CqlConfig::for_test_server(vec![format!("127.0.0.1:{port}")], "voiceflow")
    };
    let started = Instant::now();
    let err = CqlStore::connect(&config)
        .await
        .expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    match err {
        StoreError::Unavailable(message) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let invalid = CqlConfig {
        keyspace: "no-dashes".into(),
        ..CqlConfig::default()
    };
    assert!(matches!(
        CqlStore::connect(&invalid).await,
        Err(StoreError::Unavailable(m)) if m.contains("keyspace")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_idempotent_and_refuse_a_newer_schema() {
    let Some(config) = server("cql::migrations_are_recorded_idempotent_and_refuse_a_newer_schema")
    else {
        return;
    };
    let first = CqlStore::connect(&config).await.expect("first connect");
    first.create_user(&user(1, "alice")).await.expect("write");
    drop(first);
    // A second start applies nothing new and keeps the data.
    let second = CqlStore::connect(&config).await.expect("second connect");
    assert_eq!(
        second
            .user_by_username("ALICE")
            .await
            .expect("read")
            .map(|u| u.avatar_url),
        Some(Some("https://example.com/a.png".to_owned()))
    );
    drop(second);

    let session = raw_session(&config).await;
    let rows = session
        .query_unpaged("SELECT version, description FROM schema_version", ())
        .await
        .expect("read versions")
        .into_rows_result()
        .expect("rows");
    let mut versions: Vec<(i32, String)> = rows
        .rows::<(i32, String)>()
        .expect("typed")
        .map(|r| r.expect("row"))
        .collect();
    versions.sort();
    let expected: Vec<(i32, String)> = voiceflow_schema::cql::migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.description.to_owned()))
        .collect();
    assert_eq!(versions, expected);

    // A schema written by a newer binary is not touched.
    session
        .query_unpaged(
            "INSERT INTO schema_version (version, description) VALUES (?, ?)",
            (latest_version() + 1, "from the future"),
        )
        .await
        .expect("insert future version");
    let refused = CqlStore::connect(&config).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("newer")),
        "{refused:?}"
    );
    drop_keyspace(&config).await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_left_by_a_crash_are_taken_over_once_stale() {
    let Some(config) = server("cql::claims_left_by_a_crash_are_taken_over_once_stale") else {
        return;
    };
    let store = CqlStore::connect(&config).await.expect("connect");
    let session = raw_session(&config).await;
    // A node died after claiming "ghost" for user 9 (an hour ago) and "fresh" for user 8
    // (just now), before writing either user.
    let hour_ago_micros = (voiceflow_wire::ids::now_ms() as i64 - 3_600_000) * 1000;
    session
        .query_unpaged(
            format!(
                "INSERT INTO users_by_username (username, user_id) VALUES ('ghost', 9) \
                 USING TIMESTAMP {hour_ago_micros}"
            )
            .as_str(),
            (),
        )
        .await
        .expect("stale claim");
    session
        .query_unpaged(
            "INSERT INTO users_by_username (username, user_id) VALUES ('fresh', 8)",
            (),
        )
        .await
        .expect("fresh claim");
    assert_eq!(store.user_by_username("ghost").await.expect("read"), None);

    store
        .create_user(&user(1, "Ghost"))
        .await
        .expect("stale claim taken over");
    assert_eq!(
        store
            .user_by_username("ghost")
            .await
            .expect("read")
            .map(|u| u.id),
        Some(Snowflake(1))
    );
    let fresh = store.create_user(&user(2, "fresh")).await;
    assert!(
        matches!(fresh, Err(StoreError::Conflict { field: "username" })),
        "a recent claim may belong to a create in progress: {fresh:?}"
    );
    // A real owner's claim is never taken over, however old.
    let taken = store.create_user(&user(3, "GHOST")).await;
    assert!(matches!(
        taken,
        Err(StoreError::Conflict { field: "username" })
    ));
    drop(store);
    drop_keyspace(&config).await.expect("drop");
}

/// Migration 11 indexes the names of members stored before it (its code step runs before the
/// version is recorded): simulated by emptying the index and forgetting version 11.
#[tokio::test]
async fn migration_11_indexes_members_stored_before_it() {
    let Some(config) = server("migration_11_indexes_members_stored_before_it") else {
        return;
    };
    {
        let store = CqlStore::connect(&config).await.expect("connect");
        let community = voiceflow_schema::CommunityRecord {
            id: Snowflake(11_000),
            name: "Old".into(),
            description: String::new(),
            icon: None,
            owner_id: Snowflake(11_001),
            created_at: 1,
            updated_at: 1,
            require_approval: false,
        };
        let member = |user: u64| voiceflow_schema::CommunityMember {
            community_id: community.id,
            user_id: Snowflake(user),
            roles: Vec::new(),
            timed_out_until: None,
            joined_at: 1,
            voice_muted: false,
            voice_deafened: false,
        };
        let everyone = voiceflow_schema::RoleRecord {
            community_id: community.id,
            id: community.id,
            name: "@everyone".into(),
            color: 0,
            position: 0,
            permissions: voiceflow_wire::v1::permissions::Permissions::empty(),
            created_at: 1,
        };
        for (id, name) in [(11_001, "Owner"), (11_002, "Olga"), (11_003, "oscar")] {
            store.create_user(&user(id, name)).await.expect("user");
        }
        store
            .create_community(&community, &everyone, &member(11_001))
            .await
            .expect("community");
        for id in [11_002, 11_003] {
            store.put_community_member(&member(id)).await.expect("join");
        }
        drop(store);
        let raw = raw_session(&config).await;
        for cql in [
            "DELETE FROM community_member_names WHERE community_id = 11000",
            "DELETE FROM schema_version WHERE version = 11",
        ] {
            raw.query_unpaged(cql, ()).await.expect(cql);
        }
        let store = CqlStore::connect(&config).await.expect("reconnect");
        let found = store
            .community_members_by_name(
                community.id,
                &voiceflow_schema::NamePrefix::new("O"),
                None,
                10,
            )
            .await
            .expect("search");
        let names: Vec<&str> = found.iter().map(|m| m.username.as_str()).collect();
        assert_eq!(names, ["Olga", "oscar", "Owner"]);
    }
    drop_keyspace(&config).await.expect("drop");
}
