//! Reads. They run directly on the calling task (fjall point reads and short scans take
//! microseconds); lookups that touch several keyspaces read from one snapshot so they never
//! see half of a group commit.

use std::ops::Bound;

use fjall::{Database, Readable};
use voiceflow_wire::Snowflake;

use super::tables::{
    META_PUBLIC_COUNT, Table, Tables, decode, decode_counter, decode_id, event_key, fold, id_bytes,
    io, message_key, nonce_key, pair_key, room_messages_end, room_messages_start,
};
use crate::contacts::{BlockRecord, UserSettings};
use crate::model::{
    LogHead, Membership, MessageRecord, ReadMarker, RefreshTokenRecord, RoomEventRecord, RoomPage,
    RoomRecord, UserRecord,
};
use crate::store::StoreResult;

/// Read access to the layout.
#[derive(Clone)]
pub(crate) struct Reader {
    pub(crate) db: Database,
    pub(crate) tables: Tables,
}

impl Reader {
    /// Reads and decodes one record.
    pub(super) fn load<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        key: &[u8],
    ) -> StoreResult<Option<T>> {
        match self.tables.get(table).get(key).map_err(io)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Follows a unique index (`key` → id) to the record in `target`, within one snapshot.
    fn via_index<T: serde::de::DeserializeOwned>(
        &self,
        index: Table,
        key: &[u8],
        target: Table,
    ) -> StoreResult<Option<T>> {
        let snapshot = self.db.snapshot();
        let Some(id) = snapshot.get(self.tables.get(index), key).map_err(io)? else {
            return Ok(None);
        };
        let id = decode_id(&id)?;
        match snapshot
            .get(self.tables.get(target), id_bytes(id))
            .map_err(io)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// `user_by_id`.
    pub(crate) fn user_by_id(&self, id: Snowflake) -> StoreResult<Option<UserRecord>> {
        self.load(Table::Users, &id_bytes(id))
    }

    /// `user_by_email` (case-insensitive).
    pub(crate) fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.via_index(Table::UsersByEmail, &fold(email), Table::Users)
    }

    /// `user_by_username` (case-insensitive).
    pub(crate) fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.via_index(Table::UsersByUsername, &fold(username), Table::Users)
    }

    /// `room_by_id`.
    pub(crate) fn room_by_id(&self, id: Snowflake) -> StoreResult<Option<RoomRecord>> {
        self.load(Table::Rooms, &id_bytes(id))
    }

    /// `room_by_code` (case-insensitive).
    pub(crate) fn room_by_code(&self, code: &str) -> StoreResult<Option<RoomRecord>> {
        self.via_index(Table::RoomsByCode, &fold(code), Table::Rooms)
    }

    /// `list_public_rooms`: walks the newest-first index from one snapshot, so the page and
    /// the exact total agree.
    pub(crate) fn list_public_rooms(&self, offset: u64, limit: u32) -> StoreResult<RoomPage> {
        let snapshot = self.db.snapshot();
        let total = decode_counter(
            snapshot
                .get(self.tables.get(Table::Meta), META_PUBLIC_COUNT)
                .map_err(io)?
                .as_deref(),
        )?;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut rooms = Vec::with_capacity(take.min(256));
        for guard in snapshot
            .iter(self.tables.get(Table::PublicRooms))
            .skip(skip)
            .take(take)
        {
            let (_, id) = guard.into_inner().map_err(io)?;
            let id = decode_id(&id)?;
            match snapshot
                .get(self.tables.get(Table::Rooms), id_bytes(id))
                .map_err(io)?
            {
                Some(bytes) => rooms.push(decode(&bytes)?),
                None => tracing::warn!(room = %id, "public room index points at a missing room"),
            }
        }
        Ok(RoomPage { rooms, total })
    }

    /// `member`.
    pub(crate) fn member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<Membership>> {
        self.load(Table::MembersByRoom, &pair_key(room_id, user_id))
    }

    /// Every membership under `prefix` of `table`.
    fn memberships(&self, table: Table, prefix: Snowflake) -> StoreResult<Vec<Membership>> {
        let mut out = Vec::new();
        for guard in self.tables.get(table).prefix(id_bytes(prefix)) {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `room_members`, in join order (ties broken by user id).
    pub(crate) fn room_members(&self, room_id: Snowflake) -> StoreResult<Vec<Membership>> {
        let mut members = self.memberships(Table::MembersByRoom, room_id)?;
        members.sort_by_key(|m| (m.joined_at, m.user_id));
        Ok(members)
    }

    /// `user_rooms`, in room id order.
    pub(crate) fn user_rooms(&self, user_id: Snowflake) -> StoreResult<Vec<Membership>> {
        self.memberships(Table::RoomsByUser, user_id)
    }

    /// `message`.
    pub(crate) fn message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.load(Table::Messages, &message_key(room_id, id))
    }

    /// `message_room`.
    pub(crate) fn message_room(&self, id: Snowflake) -> StoreResult<Option<Snowflake>> {
        match self
            .tables
            .get(Table::MessagesById)
            .get(id_bytes(id))
            .map_err(io)?
        {
            Some(room) => decode_id(&room).map(Some),
            None => Ok(None),
        }
    }

    /// `messages_before`: a reverse scan from just below `before` (or the room's last key)
    /// down to the start of the room's first partition, crossing bucket boundaries.
    pub(crate) fn messages_before(
        &self,
        room_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let upper = match before {
            Some(before) => Bound::Excluded(message_key(room_id, before)),
            None => Bound::Included(room_messages_end(room_id)),
        };
        let range = (Bound::Included(room_messages_start(room_id)), upper);
        let iter = self
            .tables
            .get(Table::Messages)
            .range::<Vec<u8>, _>(range)
            .rev();
        collect(iter, limit)
    }

    /// `messages_after`: a forward scan from just above `after` to the room's last key.
    pub(crate) fn messages_after(
        &self,
        room_id: Snowflake,
        after: Snowflake,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let range = (
            Bound::Excluded(message_key(room_id, after)),
            Bound::Included(room_messages_end(room_id)),
        );
        let iter = self.tables.get(Table::Messages).range::<Vec<u8>, _>(range);
        collect(iter, limit)
    }

    /// `message_by_nonce`.
    pub(crate) fn message_by_nonce(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
        nonce: &str,
    ) -> StoreResult<Option<Snowflake>> {
        let key = nonce_key(room_id, user_id, nonce);
        match self.tables.get(Table::MessageNonces).get(key).map_err(io)? {
            Some(id) => decode_id(&id).map(Some),
            None => Ok(None),
        }
    }

    /// `log_head`: the room's last log entry. Entries and the messages they leave behind are
    /// written in one atomic batch here, so there is nothing to repair; and a stale owner's
    /// batch is refused whole (fencing is checked in the same batch), so the last entry is
    /// the log's end.
    pub(crate) fn log_head(&self, room_id: Snowflake) -> StoreResult<Option<LogHead>> {
        let last = self
            .tables
            .get(Table::RoomEvents)
            .prefix(id_bytes(room_id))
            .next_back();
        let Some(guard) = last else {
            return Ok(None);
        };
        let event: RoomEventRecord = decode(&guard.value().map_err(io)?)?;
        Ok(Some(LogHead {
            epoch: event.epoch,
            seq: event.seq,
            message: event.message.as_ref().map(|m| m.id),
        }))
    }

    /// `events_after`: a forward scan from just above `after`, resolved by ownership epoch
    /// from the entry at `after`.
    pub(crate) fn events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        let floor = match after {
            0 => 0,
            _ => match self
                .tables
                .get(Table::RoomEvents)
                .get(event_key(room_id, after))
                .map_err(io)?
            {
                Some(raw) => decode::<RoomEventRecord>(&raw)?.owner_epoch,
                None => 0,
            },
        };
        Ok(crate::fence::resolve(
            self.raw_events_after(room_id, after, limit)?,
            floor,
        ))
    }

    /// Log entries with seq > `after`, as stored.
    fn raw_events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let range = (
            Bound::Included(event_key(room_id, start)),
            Bound::Included(event_key(room_id, u64::MAX)),
        );
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for guard in self
            .tables
            .get(Table::RoomEvents)
            .range::<Vec<u8>, _>(range)
            .take(limit)
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `read_markers`.
    pub(crate) fn read_markers(&self, user_id: Snowflake) -> StoreResult<Vec<ReadMarker>> {
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::ReadMarkers)
            .prefix(id_bytes(user_id))
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `refresh_token`.
    pub(crate) fn refresh_token(&self, id: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        self.load(Table::RefreshTokens, id.as_bytes())
    }

    /// `block`.
    pub(crate) fn block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<Option<BlockRecord>> {
        self.load(Table::UserBlocks, &pair_key(user_id, blocked_id))
    }

    /// `blocks`, by blocked id.
    pub(crate) fn blocks(&self, user_id: Snowflake) -> StoreResult<Vec<BlockRecord>> {
        let mut out = Vec::new();
        for guard in self.tables.get(Table::UserBlocks).prefix(id_bytes(user_id)) {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `user_settings`.
    pub(crate) fn user_settings(&self, user_id: Snowflake) -> StoreResult<Option<UserSettings>> {
        self.load(Table::UserSettings, &id_bytes(user_id))
    }
}

/// Decodes up to `limit` messages from a scan.
fn collect(
    iter: impl Iterator<Item = fjall::Guard>,
    limit: u32,
) -> StoreResult<Vec<MessageRecord>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(limit.min(1024));
    for guard in iter.take(limit) {
        out.push(decode(&guard.value().map_err(io)?)?);
    }
    Ok(out)
}
