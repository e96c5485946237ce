//! The on-disk layout: one fjall keyspace per access path (mirroring the CQL tables in
//! `schema/cql/001_initial.cql`), the key encodings, and the value codec.
//!
//! All integers in keys are big-endian so that byte order equals numeric order; strings in
//! keys are lower-cased where the lookup is case-insensitive. Values are JSON-encoded records
//! (compact, self-describing, and the snowflake type only deserializes from self-describing
//! formats).

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use voiceflow_wire::Snowflake;

use crate::bucket::bucket_of;
use crate::store::{StoreError, StoreResult};

/// The current on-disk layout version, stored under [`META_SCHEMA_VERSION`].
pub(crate) const SCHEMA_VERSION: u32 = 1;
/// Meta key holding the layout version (u32 BE).
pub(crate) const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// Meta key holding the exact number of public rooms (u64 BE).
pub(crate) const META_PUBLIC_COUNT: &[u8] = b"public_rooms_count";

/// Names one keyspace; used by the writer's overlay to address pending writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Table {
    /// `users`: user id → `UserRecord`.
    Users,
    /// `users_by_email`: lower-cased email → user id.
    UsersByEmail,
    /// `users_by_username`: lower-cased username → user id.
    UsersByUsername,
    /// `rooms`: room id → `RoomRecord`.
    Rooms,
    /// `rooms_by_code`: lower-cased join code → room id.
    RoomsByCode,
    /// `public_rooms`: `!room_id` (newest first) → room id.
    PublicRooms,
    /// `members_by_room`: room ‖ user → `Membership`.
    MembersByRoom,
    /// `rooms_by_user`: user ‖ room → `Membership`.
    RoomsByUser,
    /// `messages`: room ‖ bucket ‖ id → `MessageRecord`.
    Messages,
    /// `messages_by_id`: id → room id.
    MessagesById,
    /// `message_nonces`: room ‖ user ‖ nonce → message id.
    MessageNonces,
    /// `refresh_tokens`: token id → `RefreshTokenRecord`.
    RefreshTokens,
    /// `refresh_tokens_by_family`: len ‖ family ‖ token id → empty.
    RefreshTokensByFamily,
    /// `meta`: counters, the layout version and each room's ownership epoch.
    Meta,
    /// `room_events`: room ‖ seq → `RoomEventRecord`.
    RoomEvents,
    /// `read_markers`: user ‖ room → `ReadMarker`.
    ReadMarkers,
    /// `user_blocks`: user ‖ blocked user → `BlockRecord`.
    UserBlocks,
    /// `user_settings`: user id → `UserSettings`.
    UserSettings,
    /// `communities`: community id → `CommunityRecord`.
    Communities,
    /// `community_roles`: community ‖ role → `RoleRecord`.
    CommunityRoles,
    /// `community_members`: community ‖ user → `CommunityMember`.
    CommunityMembers,
    /// `user_communities`: user ‖ community → empty.
    UserCommunities,
    /// `invites`: code → `InviteRecord`.
    Invites,
    /// `community_invites`: community ‖ code → empty.
    CommunityInvites,
    /// `community_audit`: community ‖ entry id → `AuditEntry`.
    CommunityAudit,
    /// `community_bans`: community ‖ user → `BanRecord`.
    CommunityBans,
    /// `community_channels`: community ‖ channel → `ChannelRecord`.
    CommunityChannels,
    /// `channel_communities`: channel → community id.
    ChannelCommunities,
    /// `channel_overwrites`: channel ‖ target → `ChannelOverwriteRecord`.
    ChannelOverwrites,
    /// `community_categories`: community ‖ category → `CategoryRecord`.
    CommunityCategories,
    /// `community_join_requests`: community ‖ user → `JoinRequest`.
    CommunityJoinRequests,
    /// `community_member_names`: community ‖ lower-cased username ‖ 0 ‖ user → username.
    CommunityMemberNames,
    /// `user_mentions`: user ‖ message → `MentionRecord`.
    UserMentions,
    /// `notification_settings`: user ‖ scope → `NotificationSettingRecord`.
    NotificationSettings,
    /// `deployment_keys`: name → value (`vapid` → `VapidKeyRecord`).
    DeploymentKeys,
    /// `push_subscriptions`: user ‖ endpoint → `PushSubscriptionRecord`.
    PushSubscriptions,
}

impl Table {
    /// Every table, in declaration order.
    pub(crate) const ALL: [Table; 36] = [
        Table::Users,
        Table::UsersByEmail,
        Table::UsersByUsername,
        Table::Rooms,
        Table::RoomsByCode,
        Table::PublicRooms,
        Table::MembersByRoom,
        Table::RoomsByUser,
        Table::Messages,
        Table::MessagesById,
        Table::MessageNonces,
        Table::RefreshTokens,
        Table::RefreshTokensByFamily,
        Table::Meta,
        Table::RoomEvents,
        Table::ReadMarkers,
        Table::UserBlocks,
        Table::UserSettings,
        Table::Communities,
        Table::CommunityRoles,
        Table::CommunityMembers,
        Table::UserCommunities,
        Table::Invites,
        Table::CommunityInvites,
        Table::CommunityAudit,
        Table::CommunityBans,
        Table::CommunityChannels,
        Table::ChannelCommunities,
        Table::ChannelOverwrites,
        Table::CommunityCategories,
        Table::CommunityJoinRequests,
        Table::CommunityMemberNames,
        Table::UserMentions,
        Table::NotificationSettings,
        Table::DeploymentKeys,
        Table::PushSubscriptions,
    ];

    /// The keyspace name on disk (same as the CQL table name).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::UsersByEmail => "users_by_email",
            Table::UsersByUsername => "users_by_username",
            Table::Rooms => "rooms",
            Table::RoomsByCode => "rooms_by_code",
            Table::PublicRooms => "public_rooms",
            Table::MembersByRoom => "members_by_room",
            Table::RoomsByUser => "rooms_by_user",
            Table::Messages => "messages",
            Table::MessagesById => "messages_by_id",
            Table::MessageNonces => "message_nonces",
            Table::RefreshTokens => "refresh_tokens",
            Table::RefreshTokensByFamily => "refresh_tokens_by_family",
            Table::Meta => "meta",
            Table::RoomEvents => "room_events",
            Table::ReadMarkers => "read_markers",
            Table::UserBlocks => "user_blocks",
            Table::UserSettings => "user_settings",
            Table::Communities => "communities",
            Table::CommunityRoles => "community_roles",
            Table::CommunityMembers => "community_members",
            Table::UserCommunities => "user_communities",
            Table::Invites => "invites",
            Table::CommunityInvites => "community_invites",
            Table::CommunityAudit => "community_audit",
            Table::CommunityBans => "community_bans",
            Table::CommunityChannels => "community_channels",
            Table::ChannelCommunities => "channel_communities",
            Table::ChannelOverwrites => "channel_overwrites",
            Table::CommunityCategories => "community_categories",
            Table::CommunityJoinRequests => "community_join_requests",
            Table::CommunityMemberNames => "community_member_names",
            Table::UserMentions => "user_mentions",
            Table::NotificationSettings => "notification_settings",
            Table::DeploymentKeys => "deployment_keys",
            Table::PushSubscriptions => "push_subscriptions",
        }
    }
}

/// Open handles to every keyspace. Cheap to clone (each handle is reference-counted).
#[derive(Clone)]
pub(crate) struct Tables {
    handles: Vec<Keyspace>,
}

impl Tables {
    /// Opens (creating if needed) every keyspace of the layout.
    pub(crate) fn open(db: &Database) -> Result<Tables, StoreError> {
        let mut handles = Vec::with_capacity(Table::ALL.len());
        for table in Table::ALL {
            handles.push(
                db.keyspace(table.name(), KeyspaceCreateOptions::default)
                    .map_err(io)?,
            );
        }
        Ok(Tables { handles })
    }

    /// The keyspace of `table`.
    pub(crate) fn get(&self, table: Table) -> &Keyspace {
        // `handles` is built from `Table::ALL` in order, so the discriminant is the index.
        &self.handles[table as usize]
    }
}

/// Writes the layout version on first open; refuses a newer one.
pub(crate) fn check_version(db: &Database, tables: &Tables) -> StoreResult<()> {
    let meta = tables.get(Table::Meta);
    match meta.get(META_SCHEMA_VERSION).map_err(io)? {
        Some(raw) => {
            let raw: [u8; 4] = raw
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema_version is not a u32".into()))?;
            let found = u32::from_be_bytes(raw);
            if found > SCHEMA_VERSION {
                return Err(StoreError::Corrupt(format!(
                    "layout version {found} is newer than supported {SCHEMA_VERSION}"
                )));
            }
            Ok(())
        }
        None => {
            let mut batch = db.batch().durability(Some(fjall::PersistMode::SyncAll));
            batch.insert(
                meta,
                META_SCHEMA_VERSION,
                SCHEMA_VERSION.to_be_bytes().to_vec(),
            );
            batch.commit().map_err(io)
        }
    }
}

/// Maps a fjall error to [`StoreError::Unavailable`].
pub(crate) fn io(err: fjall::Error) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Encodes a record.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

/// Decodes a record read from disk.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The meta key of a room's ownership epoch (u64 BE; absent: 0).
pub(crate) fn owner_key(room_id: Snowflake) -> Vec<u8> {
    let mut key = b"room_owner:".to_vec();
    key.extend_from_slice(&id_bytes(room_id));
    key
}

/// Encodes an id as an 8-byte big-endian value or key.
pub(crate) fn id_bytes(id: Snowflake) -> [u8; 8] {
    id.0.to_be_bytes()
}

/// Decodes an 8-byte big-endian id.
pub(crate) fn decode_id(bytes: &[u8]) -> Result<Snowflake, StoreError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("id of {} bytes", bytes.len())))?;
    Ok(Snowflake(u64::from_be_bytes(raw)))
}

/// Decodes the trailing 8-byte id of a composite key.
pub(crate) fn trailing_id(key: &[u8]) -> Result<Snowflake, StoreError> {
    let start = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Corrupt(format!("key of {} bytes", key.len())))?;
    decode_id(key.get(start..).unwrap_or_default())
}

/// Case-folds a unique lookup value (username, email, join code).
pub(crate) fn fold(s: &str) -> Vec<u8> {
    s.to_lowercase().into_bytes()
}

/// Concatenates two ids (`members_by_room`, `rooms_by_user`).
pub(crate) fn pair_key(a: Snowflake, b: Snowflake) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id_bytes(a));
    key.extend_from_slice(&id_bytes(b));
    key
}

/// `public_rooms` key: the bit-inverted id, so ascending key order is newest first.
pub(crate) fn public_key(room_id: Snowflake) -> [u8; 8] {
    (!room_id.0).to_be_bytes()
}

/// `messages` key: room ‖ bucket ‖ id.
pub(crate) fn message_key(room_id: Snowflake, id: Snowflake) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(&id_bytes(room_id));
    key.extend_from_slice(&bucket_of(id).to_be_bytes());
    key.extend_from_slice(&id_bytes(id));
    key
}

/// The first possible `messages` key of a room.
pub(crate) fn room_messages_start(room_id: Snowflake) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(&id_bytes(room_id));
    key.extend_from_slice(&[0u8; 12]);
    key
}

/// The last possible `messages` key of a room (the end of its partitions).
pub(crate) fn room_messages_end(room_id: Snowflake) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(&id_bytes(room_id));
    key.extend_from_slice(&[0xffu8; 12]);
    key
}

/// `room_events` key: room ‖ seq.
pub(crate) fn event_key(room_id: Snowflake, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id_bytes(room_id));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `message_nonces` key: room ‖ user ‖ nonce.
pub(crate) fn nonce_key(room_id: Snowflake, user_id: Snowflake, nonce: &str) -> Vec<u8> {
    let mut key = pair_key(room_id, user_id);
    key.extend_from_slice(nonce.as_bytes());
    key
}

/// Prefix of every `refresh_tokens_by_family` key of a family (u16 length ‖ family).
pub(crate) fn family_prefix(family_id: &str) -> Vec<u8> {
    let bytes = family_id.as_bytes();
    // Family ids are short; a longer one is truncated in the length field only, which keeps
    // the prefix unambiguous for every realistic id and never panics.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + bytes.len());
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(bytes);
    key
}

/// `refresh_tokens_by_family` key: family prefix ‖ token id.
pub(crate) fn family_key(family_id: &str, token_id: &str) -> Vec<u8> {
    let mut key = family_prefix(family_id);
    key.extend_from_slice(token_id.as_bytes());
    key
}

/// Decodes a u64 counter (missing → 0).
pub(crate) fn decode_counter(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => {
            let raw: [u8; 8] = b
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("counter of {} bytes", b.len())))?;
            Ok(u64::from_be_bytes(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_order_by_id_across_buckets() {
        let room = Snowflake(42);
        let day = 24 * 60 * 60 * 1000;
        let a = Snowflake::lower_bound_for(voiceflow_wire::ids::EPOCH_MS + 9 * day);
        let b = Snowflake::lower_bound_for(voiceflow_wire::ids::EPOCH_MS + 11 * day);
        assert_ne!(bucket_of(a), bucket_of(b));
        assert!(message_key(room, a) < message_key(room, b));
        assert!(room_messages_start(room) <= message_key(room, a));
        assert!(message_key(room, b) <= room_messages_end(room));
        assert!(room_messages_end(room) < room_messages_start(Snowflake(43)));
    }

    #[test]
    fn public_keys_put_newest_first() {
        assert!(public_key(Snowflake(10)) < public_key(Snowflake(9)));
    }

    #[test]
    fn bad_ids_are_corrupt_not_panics() {
        assert!(matches!(decode_id(b"short"), Err(StoreError::Corrupt(_))));
        assert!(matches!(trailing_id(b"abc"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode_counter(Some(b"x")),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(decode_counter(None).expect("missing counter"), 0);
    }
}
