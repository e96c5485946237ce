//! Every statement the backend runs, prepared once at connect time (the backend never sends
//! an unprepared data statement). Table names are unqualified: the session uses the
//! configured keyspace.
//!
//! Plain reads and upserts are marked idempotent, so the driver's retry policy may retry them
//! on timeouts and broken connections; lightweight transactions are not.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::store::StoreResult;

/// Columns of `users`, in the order [`super::users`] decodes them.
pub(crate) const USER_COLUMNS: &str = "id, username, email, password_hash, avatar_url, created_at";
/// Columns of `rooms`, in the order [`super::rooms`] decodes them.
pub(crate) const ROOM_COLUMNS: &str = "id, name, description, max_users, is_public, allow_guests, \
     require_approval, record_messages, join_code, created_by, created_at, updated_at, kind, banned";
/// Columns of a membership row (both directions), in decode order.
pub(crate) const MEMBER_COLUMNS: &str = "room_id, user_id, role, joined_at";
/// Columns of `messages`, in the order [`super::messages`] decodes them.
pub(crate) const MESSAGE_COLUMNS: &str =
    "id, room_id, user_id, username, content, kind, nonce, created_at, deleted_at, extra";
/// Columns of `refresh_tokens`, in decode order.
pub(crate) const TOKEN_COLUMNS: &str = "id, user_id, family_id, expires_at, used, revoked";

/// The statements of one unique index table (`users_by_username`, `users_by_email`,
/// `rooms_by_code`): claim, read with write time, take over a stale claim, release.
pub(crate) struct UniqueIndex {
    /// `INSERT … IF NOT EXISTS` (key, owner).
    pub(crate) claim: PreparedStatement,
    /// `SELECT owner, writetime(owner)` (key).
    pub(crate) get: PreparedStatement,
    /// `UPDATE … SET owner = ? … IF owner = ?` (new owner, key, stale owner).
    pub(crate) take_over: PreparedStatement,
    /// `DELETE … IF owner = ?` (key, owner).
    pub(crate) release: PreparedStatement,
}

/// All prepared statements.
pub(crate) struct Statements {
    pub(crate) user_insert: PreparedStatement,
    pub(crate) user_get: PreparedStatement,
    pub(crate) usernames: UniqueIndex,
    pub(crate) emails: UniqueIndex,

    pub(crate) room_insert: PreparedStatement,
    pub(crate) room_get: PreparedStatement,
    pub(crate) room_delete: PreparedStatement,
    pub(crate) codes: UniqueIndex,
    pub(crate) public_insert: PreparedStatement,
    pub(crate) public_delete: PreparedStatement,
    pub(crate) public_count: PreparedStatement,
    pub(crate) public_ids: PreparedStatement,

    pub(crate) member_insert: PreparedStatement,
    pub(crate) member_insert_by_user: PreparedStatement,
    pub(crate) member_delete: PreparedStatement,
    pub(crate) member_delete_by_user: PreparedStatement,
    pub(crate) member_get: PreparedStatement,
    pub(crate) members_of_room: PreparedStatement,
    pub(crate) rooms_of_user: PreparedStatement,
    pub(crate) members_delete_room: PreparedStatement,

    /// Indexed by [`message_insert_variant`]: nulls are never written (they would be
    /// tombstones), so each combination of present optional columns has its statement.
    pub(crate) message_insert: [PreparedStatement; 4],
    pub(crate) message_get: PreparedStatement,
    pub(crate) messages_below: PreparedStatement,
    pub(crate) messages_newest: PreparedStatement,
    pub(crate) messages_above: PreparedStatement,
    pub(crate) messages_oldest: PreparedStatement,
    pub(crate) message_tombstone: PreparedStatement,
    pub(crate) messages_delete_bucket: PreparedStatement,
    pub(crate) bucket_insert: PreparedStatement,
    pub(crate) buckets_below: PreparedStatement,
    pub(crate) buckets_above: PreparedStatement,
    pub(crate) buckets_delete: PreparedStatement,
    pub(crate) by_id_insert: PreparedStatement,
    pub(crate) by_id_get: PreparedStatement,
    pub(crate) nonce_insert: PreparedStatement,
    pub(crate) nonce_get: PreparedStatement,

    pub(crate) token_insert: PreparedStatement,
    pub(crate) token_get: PreparedStatement,
    pub(crate) token_use: PreparedStatement,
    pub(crate) token_revoke: PreparedStatement,
    pub(crate) family_insert: PreparedStatement,
    pub(crate) family_delete: PreparedStatement,
    pub(crate) family_tokens: PreparedStatement,
}

/// Which `message_insert` statement writes a message with these optional columns.
pub(crate) fn message_insert_variant(has_nonce: bool, has_deleted_at: bool) -> usize {
    usize::from(has_nonce) | (usize::from(has_deleted_at) << 1)
}

/// Prepares statements on one session.
struct Preparer<'a> {
    session: &'a Session,
}

impl Preparer<'_> {
    /// Prepares `cql` with the given idempotence.
    async fn prepare(&self, cql: String, idempotent: bool) -> StoreResult<PreparedStatement> {
        super::codec::prepare(self.session, &cql, idempotent).await
    }

    /// A read or plain upsert/delete.
    async fn idem(&self, cql: impl Into<String>) -> StoreResult<PreparedStatement> {
        self.prepare(cql.into(), true).await
    }

    /// A lightweight transaction.
    async fn lwt(&self, cql: impl Into<String>) -> StoreResult<PreparedStatement> {
        self.prepare(cql.into(), false).await
    }

    /// The four statements of a unique index `table (key, owner)`.
    async fn unique(&self, table: &str, key: &str, owner: &str) -> StoreResult<UniqueIndex> {
        Ok(UniqueIndex {
            claim: self
                .lwt(format!(
                    "INSERT INTO {table} ({key}, {owner}) VALUES (?, ?) IF NOT EXISTS"
                ))
                .await?,
            get: self
                .idem(format!(
                    "SELECT {owner}, writetime({owner}) FROM {table} WHERE {key} = ?"
                ))
                .await?,
            take_over: self
                .lwt(format!(
                    "UPDATE {table} SET {owner} = ? WHERE {key} = ? IF {owner} = ?"
                ))
                .await?,
            release: self
                .lwt(format!(
                    "DELETE FROM {table} WHERE {key} = ? IF {owner} = ?"
                ))
                .await?,
        })
    }
}

impl Statements {
    /// Prepares everything; fails if the schema is missing or the cluster unreachable.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<Statements> {
        let p = Preparer { session };
        let msg = MESSAGE_COLUMNS;
        let mut message_insert = Vec::with_capacity(4);
        for variant in 0..4usize {
            let (has_nonce, has_deleted) = (variant & 1 != 0, variant & 2 != 0);
            let mut columns =
                "room_id, bucket, id, user_id, username, content, kind, created_at, extra"
                    .to_owned();
            let mut marks = "?, ?, ?, ?, ?, ?, ?, ?, ?".to_owned();
            for (present, column) in [(has_nonce, "nonce"), (has_deleted, "deleted_at")] {
                if present {
                    columns.push_str(", ");
                    columns.push_str(column);
                    marks.push_str(", ?");
                }
            }
            message_insert.push(
                p.idem(format!("INSERT INTO messages ({columns}) VALUES ({marks})"))
                    .await?,
            );
        }
        let message_insert: [PreparedStatement; 4] = message_insert
            .try_into()
            .map_err(|_| crate::store::StoreError::Corrupt("message statements".into()))?;
        Ok(Statements {
            user_insert: p
                .idem(format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                ))
                .await?,
            user_get: p
                .idem(format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
                .await?,
            usernames: p.unique("users_by_username", "username", "user_id").await?,
            emails: p.unique("users_by_email", "email", "user_id").await?,

            room_insert: p
                .idem(format!(
                    "INSERT INTO rooms ({ROOM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ))
                .await?,
            room_get: p
                .idem(format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?"))
                .await?,
            room_delete: p.idem("DELETE FROM rooms WHERE id = ?").await?,
            codes: p.unique("rooms_by_code", "join_code", "room_id").await?,
            public_insert: p
                .idem("INSERT INTO public_rooms (shard, room_id) VALUES (0, ?)")
                .await?,
            public_delete: p
                .idem("DELETE FROM public_rooms WHERE shard = 0 AND room_id = ?")
                .await?,
            public_count: p
                .idem("SELECT COUNT(*) FROM public_rooms WHERE shard = 0")
                .await?,
            public_ids: p
                .idem("SELECT room_id FROM public_rooms WHERE shard = 0 LIMIT ?")
                .await?,

            member_insert: p
                .idem(format!(
                    "INSERT INTO members_by_room ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?)"
                ))
                .await?,
            member_insert_by_user: p
                .idem(format!(
                    "INSERT INTO rooms_by_user ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?)"
                ))
                .await?,
            member_delete: p
                .idem("DELETE FROM members_by_room WHERE room_id = ? AND user_id = ?")
                .await?,
            member_delete_by_user: p
                .idem("DELETE FROM rooms_by_user WHERE user_id = ? AND room_id = ?")
                .await?,
            member_get: p
                .idem(format!(
                    "SELECT {MEMBER_COLUMNS} FROM members_by_room WHERE room_id = ? AND user_id = ?"
                ))
                .await?,
            members_of_room: p
                .idem(format!(
                    "SELECT {MEMBER_COLUMNS} FROM members_by_room WHERE room_id = ?"
                ))
                .await?,
            rooms_of_user: p
                .idem(format!(
                    "SELECT {MEMBER_COLUMNS} FROM rooms_by_user WHERE user_id = ?"
                ))
                .await?,
            members_delete_room: p
                .idem("DELETE FROM members_by_room WHERE room_id = ?")
                .await?,

            message_insert,
            message_get: p
                .idem(format!(
                    "SELECT {msg} FROM messages WHERE room_id = ? AND bucket = ? AND id = ?"
                ))
                .await?,
            messages_below: p
                .idem(format!(
                    "SELECT {msg} FROM messages WHERE room_id = ? AND bucket = ? AND id < ? LIMIT ?"
                ))
                .await?,
            messages_newest: p
                .idem(format!(
                    "SELECT {msg} FROM messages WHERE room_id = ? AND bucket = ? LIMIT ?"
                ))
                .await?,
            messages_above: p
                .idem(format!(
                    "SELECT {msg} FROM messages WHERE room_id = ? AND bucket = ? AND id > ? \
                     ORDER BY id ASC LIMIT ?"
                ))
                .await?,
            messages_oldest: p
                .idem(format!(
                    "SELECT {msg} FROM messages WHERE room_id = ? AND bucket = ? \
                     ORDER BY id ASC LIMIT ?"
                ))
                .await?,
            message_tombstone: p
                .idem(
                    "UPDATE messages SET content = '', deleted_at = ? \
                     WHERE room_id = ? AND bucket = ? AND id = ?",
                )
                .await?,
            messages_delete_bucket: p
                .idem("DELETE FROM messages WHERE room_id = ? AND bucket = ?")
                .await?,
            bucket_insert: p
                .idem("INSERT INTO message_buckets (room_id, bucket) VALUES (?, ?)")
                .await?,
            buckets_below: p
                .idem(
                    "SELECT bucket FROM message_buckets \
                     WHERE room_id = ? AND bucket < ? AND bucket >= ? LIMIT ?",
                )
                .await?,
            buckets_above: p
                .idem(
                    "SELECT bucket FROM message_buckets WHERE room_id = ? AND bucket > ? \
                     ORDER BY bucket ASC LIMIT ?",
                )
                .await?,
            buckets_delete: p
                .idem("DELETE FROM message_buckets WHERE room_id = ?")
                .await?,
            by_id_insert: p
                .idem("INSERT INTO messages_by_id (id, room_id) VALUES (?, ?)")
                .await?,
            by_id_get: p
                .idem("SELECT room_id FROM messages_by_id WHERE id = ?")
                .await?,
            nonce_insert: p
                .idem(
                    "INSERT INTO message_nonces (room_id, user_id, nonce, message_id) \
                     VALUES (?, ?, ?, ?)",
                )
                .await?,
            nonce_get: p
                .idem(
                    "SELECT message_id FROM message_nonces \
                     WHERE room_id = ? AND user_id = ? AND nonce = ?",
                )
                .await?,

            token_insert: p
                .idem(format!(
                    "INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                ))
                .await?,
            token_get: p
                .idem(format!(
                    "SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE id = ?"
                ))
                .await?,
            token_use: p
                .lwt(
                    "UPDATE refresh_tokens SET used = true WHERE id = ? \
                     IF used = false AND revoked = false",
                )
                .await?,
            token_revoke: p
                .idem("UPDATE refresh_tokens SET revoked = true WHERE id = ?")
                .await?,
            family_insert: p
                .idem("INSERT INTO refresh_tokens_by_family (family_id, token_id) VALUES (?, ?)")
                .await?,
            family_delete: p
                .idem("DELETE FROM refresh_tokens_by_family WHERE family_id = ? AND token_id = ?")
                .await?,
            family_tokens: p
                .idem("SELECT token_id FROM refresh_tokens_by_family WHERE family_id = ?")
                .await?,
        })
    }
}
