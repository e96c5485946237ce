//! Record builders for tests and benchmarks of any [`crate::Store`]: the embedded store's
//! unit tests and the conformance suite in `schema/tests/conformance/` share them, so both
//! stores are exercised with the same data.

use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;

use crate::model::*;

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
        kind: Default::default(),
        banned: Vec::new(),
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
        extra: Default::default(),
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
