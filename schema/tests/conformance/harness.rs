//! Running a case against each backend, and the record fixtures every case uses.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, test_config,
};
use voiceflow_schema::cql::{CqlConfig, CqlStore};
use voiceflow_schema::*;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;

/// Where a case's stores live.
#[derive(Clone)]
enum Kind {
    /// A temporary directory for the embedded store.
    Embedded(Arc<tempfile::TempDir>),
    /// A throw-away keyspace on the CQL test server.
    Cql(CqlConfig),
}

/// A backend a case opens stores from; clones share the same data.
#[derive(Clone)]
pub struct Backend {
    kind: Kind,
}

impl Backend {
    /// Opens a store on this backend's data. Drop every handle before opening again.
    pub async fn open(&self) -> Arc<dyn Store> {
        match &self.kind {
            Kind::Embedded(dir) => {
                Arc::new(EmbeddedStore::open(dir.path()).expect("open embedded"))
            }
            Kind::Cql(config) => Arc::new(CqlStore::connect(config).await.expect("connect CQL")),
        }
    }
}

/// Runs `case` on a fresh embedded store directory.
pub async fn run_embedded<F, Fut>(case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    case(Backend {
        kind: Kind::Embedded(dir),
    })
    .await;
}

/// Runs `case` in a fresh keyspace on the CQL server of `VOICEFLOW_TEST_CQL`, dropping the
/// keyspace afterwards (also when the case fails); skips loudly when the variable is unset.
pub async fn run_cql<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(points) = contact_points_from_env() else {
        announce_skip(&format!("conformance cql::{name}"));
        return;
    };
    let config = test_config(points, "vf_conformance");
    let backend = Backend {
        kind: Kind::Cql(config.clone()),
    };
    let outcome = AssertUnwindSafe(case(backend)).catch_unwind().await;
    if let Err(e) = drop_keyspace(&config).await {
        eprintln!("could not drop keyspace {}: {e}", config.keyspace);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The ids of some messages.
pub fn ids(messages: &[MessageRecord]) -> Vec<u64> {
    messages.iter().map(|m| m.id.0).collect()
}

/// A user fixture.
pub fn user(id: u64, username: &str, email: &str) -> UserRecord {
    UserRecord {
        id: Snowflake(id),
        username: username.to_owned(),
        email: email.to_owned(),
        password_hash: "$argon2id$fake".to_owned(),
        avatar_url: None,
        created_at: 1_700_000_000_000 + id,
    }
}

/// A room fixture.
pub fn room(id: u64, code: &str, is_public: bool) -> RoomRecord {
    RoomRecord {
        id: Snowflake(id),
        name: format!("room {id}"),
        description: String::new(),
        max_users: 50,
        settings: RoomSettings {
            is_public,
            ..RoomSettings::default()
        },
        join_code: code.to_owned(),
        created_by: Snowflake(1),
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
    }
}

/// A membership fixture.
pub fn member(room_id: u64, user_id: u64, role: Role, joined_at: u64) -> Membership {
    Membership {
        room_id: Snowflake(room_id),
        user_id: Snowflake(user_id),
        role,
        joined_at,
    }
}

/// A text message fixture.
pub fn message(room_id: u64, id: Snowflake, nonce: Option<&str>) -> MessageRecord {
    MessageRecord {
        id,
        room_id: Snowflake(room_id),
        user_id: Snowflake(7),
        username: "alice".to_owned(),
        content: format!("message {}", id.0),
        kind: MessageType::Text,
        nonce: nonce.map(str::to_owned),
        created_at: id.timestamp_ms(),
        deleted_at: None,
    }
}

/// A refresh token fixture.
pub fn token(id: &str, family: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: id.to_owned(),
        user_id: Snowflake(7),
        family_id: family.to_owned(),
        expires_at: u64::MAX,
        used: false,
        revoked: false,
    }
}
