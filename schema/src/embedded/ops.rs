//! How each mutation reads and stages writes. Runs only on the writer thread, against a
//! [`Staged`] view, so checks and writes of one op are atomic with respect to every other op.
//!
//! Unique indexes (`users_by_username`, `users_by_email`, `rooms_by_code`) are claimed with
//! [`claim`]: an entry pointing at a different id is a conflict, one pointing at the same id
//! is not (so a retried create is idempotent).

use voiceflow_wire::Snowflake;

use super::tables::{
    META_PUBLIC_COUNT, Table, decode, decode_counter, decode_id, encode, event_key, family_key,
    family_prefix, fold, id_bytes, message_key, nonce_key, owner_key, pair_key, public_key,
    trailing_id,
};
use super::writer::{Op, Reply, Staged};
use crate::contacts::BlockRecord;
use crate::model::{
    Membership, MessageRecord, RefreshTokenRecord, RoomEventRecord, RoomRecord, UserRecord,
};
use crate::store::{StoreError, StoreResult};

/// Applies one op to `s`.
pub(crate) fn apply(s: &mut Staged<'_>, op: Op) -> StoreResult<Reply> {
    match op {
        Op::CreateUser(user) => {
            let old = load::<UserRecord>(s, Table::Users, &id_bytes(user.id))?;
            put_user(s, &user, old.as_ref())?;
        }
        Op::UpdateUser(user) => {
            // Users are never deleted; updating an unknown id is a no-op rather than a
            // half-indexed insert.
            if let Some(old) = load::<UserRecord>(s, Table::Users, &id_bytes(user.id))? {
                put_user(s, &user, Some(&old))?;
                super::member_names::rename(s, &old, &user)?;
            }
        }
        Op::CreateRoom(room, creator) => {
            let old = load::<RoomRecord>(s, Table::Rooms, &id_bytes(room.id))?;
            put_room(s, &room, old.as_ref())?;
            put_member(s, &creator)?;
        }
        Op::UpdateRoom(room) => {
            // A room deleted concurrently stays deleted.
            if let Some(old) = load::<RoomRecord>(s, Table::Rooms, &id_bytes(room.id))? {
                put_room(s, &room, Some(&old))?;
            }
        }
        Op::DeleteRoom(room_id) => delete_room(s, room_id)?,
        Op::PutMember(member) => put_member(s, &member)?,
        Op::RemoveMember(room_id, user_id) => {
            s.remove(Table::MembersByRoom, pair_key(room_id, user_id));
            s.remove(Table::RoomsByUser, pair_key(user_id, room_id));
        }
        Op::AppendMessages(messages) => {
            for message in &messages {
                append_message(s, message)?;
            }
        }
        Op::Tombstone { room_id, id, at } => {
            let key = message_key(room_id, id);
            if let Some(mut message) = load::<MessageRecord>(s, Table::Messages, &key)? {
                message.content.clear();
                message.deleted_at.get_or_insert(at);
                s.put(Table::Messages, key, encode(&message)?);
            }
        }
        Op::ClaimRoom(room_id, after) => {
            let key = owner_key(room_id);
            let current = decode_counter(s.get(Table::Meta, &key)?.as_deref())?;
            if let Some(mine) = after.filter(|mine| *mine != current) {
                return Err(StoreError::Fenced {
                    room: room_id,
                    mine,
                    current,
                });
            }
            let next = current.saturating_add(1);
            s.put(Table::Meta, key, next.to_be_bytes().to_vec());
            return Ok(Reply::Number(next));
        }
        Op::CommitEvents(events) => {
            // Fencing first, for the whole call: nothing of a stale owner's call is written.
            for event in &events {
                let current =
                    decode_counter(s.get(Table::Meta, &owner_key(event.room_id))?.as_deref())?;
                let key = event_key(event.room_id, event.seq);
                let stored = load::<RoomEventRecord>(s, Table::RoomEvents, &key)?
                    .map_or(0, |e| e.owner_epoch);
                let newest = current.max(stored);
                if event.owner_epoch < newest {
                    return Err(StoreError::Fenced {
                        room: event.room_id,
                        mine: event.owner_epoch,
                        current: newest,
                    });
                }
            }
            for event in &events {
                s.put(
                    Table::RoomEvents,
                    event_key(event.room_id, event.seq),
                    encode(event)?,
                );
                if let Some(message) = &event.message {
                    append_message(s, message)?;
                }
            }
        }
        Op::PutReadMarker(marker) => {
            s.put(
                Table::ReadMarkers,
                pair_key(marker.user_id, marker.room_id),
                encode(&marker)?,
            );
        }
        Op::PutRefreshToken(token) => {
            let old = load::<RefreshTokenRecord>(s, Table::RefreshTokens, token.id.as_bytes())?;
            if let Some(old) = old.filter(|old| old.family_id != token.family_id) {
                s.remove(
                    Table::RefreshTokensByFamily,
                    family_key(&old.family_id, &old.id),
                );
            }
            s.put(Table::RefreshTokens, token.id.as_bytes(), encode(&token)?);
            s.put(
                Table::RefreshTokensByFamily,
                family_key(&token.family_id, &token.id),
                Vec::new(),
            );
        }
        Op::UseRefreshToken(id) => {
            let Some(mut token) =
                load::<RefreshTokenRecord>(s, Table::RefreshTokens, id.as_bytes())?
            else {
                return Ok(Reply::Bool(false));
            };
            if token.used || token.revoked {
                return Ok(Reply::Bool(false));
            }
            token.used = true;
            s.put(Table::RefreshTokens, id.as_bytes(), encode(&token)?);
            return Ok(Reply::Bool(true));
        }
        Op::RevokeFamily(family_id) => revoke_family(s, &family_id)?,
        Op::PutBlock(block) => {
            let key = pair_key(block.user_id, block.blocked_id);
            if load::<BlockRecord>(s, Table::UserBlocks, &key)?.is_none() {
                s.put(Table::UserBlocks, key, encode(&block)?);
            }
        }
        Op::RemoveBlock(user_id, blocked_id) => {
            s.remove(Table::UserBlocks, pair_key(user_id, blocked_id));
        }
        Op::PutUserSettings(settings) => {
            s.put(
                Table::UserSettings,
                id_bytes(settings.user_id).to_vec(),
                encode(&settings)?,
            );
        }
        Op::PutNotificationSetting(row) => {
            let key = pair_key(row.user_id, row.scope_id);
            if row.setting.is_inherit() {
                s.remove(Table::NotificationSettings, key);
            } else {
                s.put(Table::NotificationSettings, key, encode(&row)?);
            }
        }
        Op::Community(op) => return super::community::apply(s, op),
        Op::Push(op) => return super::push::apply(s, op),
        Op::Mentions(op) => return super::notify::apply(s, op),
        Op::Flush => {}
    }
    Ok(Reply::Done)
}

/// Reads and decodes one record through the staged view.
fn load<T: serde::de::DeserializeOwned>(
    s: &Staged<'_>,
    table: Table,
    key: &[u8],
) -> StoreResult<Option<T>> {
    s.get(table, key)?.map(|bytes| decode(&bytes)).transpose()
}

/// Fails with `Conflict{field}` if `key` in the unique index `table` belongs to another id.
fn claim(
    s: &Staged<'_>,
    table: Table,
    field: &'static str,
    key: &[u8],
    id: Snowflake,
) -> StoreResult<()> {
    match s.get(table, key)? {
        Some(owner) if decode_id(&owner)? != id => Err(StoreError::Conflict { field }),
        _ => Ok(()),
    }
}

/// Whether the id-valued entry `key` of `table` exists and names `id`.
fn owned_by(s: &Staged<'_>, table: Table, key: &[u8], id: Snowflake) -> StoreResult<bool> {
    match s.get(table, key)? {
        Some(owner) => Ok(decode_id(&owner)? == id),
        None => Ok(false),
    }
}

/// Points the unique index `table` at `id` under `new`, releasing `old` if it moved.
fn move_index(
    s: &mut Staged<'_>,
    table: Table,
    old: Option<Vec<u8>>,
    new: Vec<u8>,
    id: Snowflake,
) -> StoreResult<()> {
    if let Some(old) = old.filter(|old| *old != new)
        && owned_by(s, table, &old, id)?
    {
        s.remove(table, old);
    }
    s.put(table, new, id_bytes(id).to_vec());
    Ok(())
}

/// Writes a user and its username/email indexes, checking both for conflicts.
fn put_user(s: &mut Staged<'_>, user: &UserRecord, old: Option<&UserRecord>) -> StoreResult<()> {
    let username = fold(&user.username);
    let email = fold(&user.email);
    claim(s, Table::UsersByUsername, "username", &username, user.id)?;
    claim(s, Table::UsersByEmail, "email", &email, user.id)?;
    move_index(
        s,
        Table::UsersByUsername,
        old.map(|o| fold(&o.username)),
        username,
        user.id,
    )?;
    move_index(
        s,
        Table::UsersByEmail,
        old.map(|o| fold(&o.email)),
        email,
        user.id,
    )?;
    s.put(Table::Users, id_bytes(user.id), encode(user)?);
    Ok(())
}

/// Writes a room, its code index and its public-listing entry.
fn put_room(s: &mut Staged<'_>, room: &RoomRecord, old: Option<&RoomRecord>) -> StoreResult<()> {
    let code = fold(&room.join_code);
    claim(s, Table::RoomsByCode, "join_code", &code, room.id)?;
    move_index(
        s,
        Table::RoomsByCode,
        old.map(|o| fold(&o.join_code)),
        code,
        room.id,
    )?;
    set_public(s, room.id, room.settings.is_public)?;
    s.put(Table::Rooms, id_bytes(room.id), encode(room)?);
    Ok(())
}

/// Adds or removes a room's `public_rooms` entry, keeping the exact count in `meta`.
fn set_public(s: &mut Staged<'_>, room_id: Snowflake, public: bool) -> StoreResult<()> {
    let key = public_key(room_id);
    let listed = s.get(Table::PublicRooms, &key)?.is_some();
    if listed == public {
        return Ok(());
    }
    let count = decode_counter(s.get(Table::Meta, META_PUBLIC_COUNT)?.as_deref())?;
    let count = if public {
        s.put(Table::PublicRooms, key, id_bytes(room_id).to_vec());
        count.saturating_add(1)
    } else {
        s.remove(Table::PublicRooms, key);
        count.saturating_sub(1)
    };
    s.put(Table::Meta, META_PUBLIC_COUNT, count.to_be_bytes().to_vec());
    Ok(())
}

/// Writes a membership in both directions.
fn put_member(s: &mut Staged<'_>, member: &Membership) -> StoreResult<()> {
    let value = encode(member)?;
    s.put(
        Table::MembersByRoom,
        pair_key(member.room_id, member.user_id),
        value.clone(),
    );
    s.put(
        Table::RoomsByUser,
        pair_key(member.user_id, member.room_id),
        value,
    );
    Ok(())
}

/// Writes one message, its by-id entry and its nonce entry.
fn append_message(s: &mut Staged<'_>, message: &MessageRecord) -> StoreResult<()> {
    s.put(
        Table::Messages,
        message_key(message.room_id, message.id),
        encode(message)?,
    );
    s.put(
        Table::MessagesById,
        id_bytes(message.id),
        id_bytes(message.room_id).to_vec(),
    );
    if let Some(nonce) = &message.nonce {
        s.put(
            Table::MessageNonces,
            nonce_key(message.room_id, message.user_id, nonce),
            id_bytes(message.id).to_vec(),
        );
    }
    // In the same batch as the message: a mention is durable exactly when its message is.
    for row in crate::notify::MentionRecord::of(message) {
        s.put(
            Table::UserMentions,
            pair_key(row.user_id, row.message_id),
            encode(&row)?,
        );
    }
    Ok(())
}

/// Removes a room with its code, listing, memberships (both directions), messages, by-id
/// entries and nonces. Idempotent.
fn delete_room(s: &mut Staged<'_>, room_id: Snowflake) -> StoreResult<()> {
    let room_key = id_bytes(room_id);
    if let Some(room) = load::<RoomRecord>(s, Table::Rooms, &room_key)? {
        let code = fold(&room.join_code);
        if owned_by(s, Table::RoomsByCode, &code, room_id)? {
            s.remove(Table::RoomsByCode, code);
        }
        s.remove(Table::Rooms, room_key);
    }
    set_public(s, room_id, false)?;
    for key in s.keys_with_prefix(Table::MembersByRoom, &room_key)? {
        let user_id = trailing_id(&key)?;
        s.remove(Table::RoomsByUser, pair_key(user_id, room_id));
        s.remove(Table::MembersByRoom, key);
    }
    for key in s.keys_with_prefix(Table::Messages, &room_key)? {
        let id = trailing_id(&key)?;
        if owned_by(s, Table::MessagesById, &id_bytes(id), room_id)? {
            s.remove(Table::MessagesById, id_bytes(id));
        }
        s.remove(Table::Messages, key);
    }
    for key in s.keys_with_prefix(Table::MessageNonces, &room_key)? {
        s.remove(Table::MessageNonces, key);
    }
    for key in s.keys_with_prefix(Table::RoomEvents, &room_key)? {
        s.remove(Table::RoomEvents, key);
    }
    Ok(())
}

/// Marks every token of a family revoked.
fn revoke_family(s: &mut Staged<'_>, family_id: &str) -> StoreResult<()> {
    let prefix = family_prefix(family_id);
    for key in s.keys_with_prefix(Table::RefreshTokensByFamily, &prefix)? {
        let token_id = key
            .get(prefix.len()..)
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .ok_or_else(|| StoreError::Corrupt("refresh token family key".into()))?;
        let Some(mut token) =
            load::<RefreshTokenRecord>(s, Table::RefreshTokens, token_id.as_bytes())?
        else {
            continue;
        };
        if token.family_id == family_id && !token.revoked {
            token.revoked = true;
            s.put(Table::RefreshTokens, token_id.as_bytes(), encode(&token)?);
        }
    }
    Ok(())
}
