//! Rooms, the public listing and memberships.
//!
//! A room's record, its listing entry and its creator's membership (both directions) are
//! written in one logged batch after the join code was claimed. Updates and deletes read the
//! room first: an unknown room is a no-op, so an update does not resurrect a deleted room
//! (a delete racing an update in the same millisecond can still lose; room edits are rare and
//! made by one admin). Deleting a room removes its record, code, listing entry, memberships
//! and message partitions; `messages_by_id` and `message_nonces` entries of a deleted room
//! are left to lookups, which check the message still exists.

use futures_util::StreamExt;
use scylla::statement::batch::BatchType;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::codec::{fold, from_cql_time, id, role, snowflake, to_cql_time};
use super::users::Unique;
use super::{BatchEntry, Cql};
use crate::model::{Membership, RoomKind, RoomPage, RoomRecord, RoomSettings};
use crate::store::{StoreError, StoreResult};

/// A `rooms` row, in [`super::statements::ROOM_COLUMNS`] order.
type RoomRow = (
    i64,
    String,
    String,
    i32,
    bool,
    bool,
    bool,
    bool,
    String,
    i64,
    CqlTimestamp,
    CqlTimestamp,
    Option<String>,
    Option<String>,
);

/// A membership row, in [`super::statements::MEMBER_COLUMNS`] order.
type MemberRow = (i64, i64, String, CqlTimestamp);

/// Rooms fetched concurrently when listing.
const LIST_CONCURRENCY: usize = 16;
/// Statements per batch when deleting many rows.
const DELETE_BATCH: usize = 100;

/// Decodes a membership row.
fn membership((room_id, user_id, r, joined_at): MemberRow) -> StoreResult<Membership> {
    Ok(Membership {
        room_id: snowflake(room_id)?,
        user_id: snowflake(user_id)?,
        role: role(&r)?,
        joined_at: from_cql_time(joined_at),
    })
}

impl Cql {
    /// The statements that write a room record and its listing entry.
    fn room_entries(&self, room: &RoomRecord) -> StoreResult<Vec<BatchEntry<'_>>> {
        let room_id = id(room.id)?;
        let max_users = i32::try_from(room.max_users)
            .map_err(|_| StoreError::Corrupt(format!("max_users {}", room.max_users)))?;
        let s = room.settings;
        let record = (
            room_id,
            room.name.clone(),
            room.description.clone(),
            max_users,
            s.is_public,
            s.allow_guests,
            s.require_approval,
            s.record_messages,
            room.join_code.clone(),
            id(room.created_by)?,
            to_cql_time(room.created_at),
            to_cql_time(room.updated_at),
            room.kind.as_str(),
            serde_json::to_string(&room.banned)
                .map_err(|e| StoreError::Corrupt(format!("banned: {e}")))?,
        );
        let listing = if s.is_public {
            &self.st.public_insert
        } else {
            &self.st.public_delete
        };
        Ok(vec![
            (&self.st.room_insert, Box::new(record)),
            (listing, Box::new((room_id,))),
        ])
    }

    /// The statements that write a membership in both directions.
    fn member_entries(&self, m: &Membership) -> StoreResult<Vec<BatchEntry<'_>>> {
        let (room_id, user_id) = (id(m.room_id)?, id(m.user_id)?);
        let role = m.role.as_str().to_owned();
        let joined = to_cql_time(m.joined_at);
        Ok(vec![
            (
                &self.st.member_insert,
                Box::new((room_id, user_id, role.clone(), joined)),
            ),
            (
                &self.st.member_insert_by_user,
                Box::new((room_id, user_id, role, joined)),
            ),
        ])
    }

    /// Claims the code, writes `extra` with the room in one batch, releases a moved code.
    async fn put_room(
        &self,
        room: &RoomRecord,
        old: Option<&RoomRecord>,
        extra: Vec<BatchEntry<'_>>,
    ) -> StoreResult<()> {
        let code = fold(&room.join_code);
        self.claim(Unique::JoinCode, &code, room.id).await?;
        let mut entries = self.room_entries(room)?;
        entries.extend(extra);
        self.batch("write room", BatchType::Logged, entries).await?;
        if let Some(old_code) = old.map(|o| fold(&o.join_code)).filter(|c| *c != code) {
            self.release(Unique::JoinCode, &old_code, room.id).await?;
        }
        Ok(())
    }

    /// `create_room`.
    pub(crate) async fn create_room(
        &self,
        room: &RoomRecord,
        creator: &Membership,
    ) -> StoreResult<()> {
        let old = self.room_by_id(room.id).await?;
        let creator = self.member_entries(creator)?;
        self.put_room(room, old.as_ref(), creator).await
    }

    /// `update_room`: an unknown room is a no-op.
    pub(crate) async fn update_room(&self, room: &RoomRecord) -> StoreResult<()> {
        match self.room_by_id(room.id).await? {
            Some(old) => self.put_room(room, Some(&old), Vec::new()).await,
            None => Ok(()),
        }
    }

    /// `room_by_id`.
    pub(crate) async fn room_by_id(&self, room_id: Snowflake) -> StoreResult<Option<RoomRecord>> {
        let Ok(raw) = id(room_id) else {
            return Ok(None);
        };
        let row: Option<RoomRow> = self.first("read room", &self.st.room_get, (raw,)).await?;
        let Some((
            id,
            name,
            description,
            max_users,
            is_public,
            allow_guests,
            require_approval,
            record_messages,
            join_code,
            created_by,
            created_at,
            updated_at,
            kind,
            banned,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(RoomRecord {
            id: snowflake(id)?,
            name,
            description,
            max_users: u32::try_from(max_users)
                .map_err(|_| StoreError::Corrupt(format!("max_users {max_users}")))?,
            settings: RoomSettings {
                is_public,
                allow_guests,
                require_approval,
                record_messages,
            },
            join_code,
            created_by: snowflake(created_by)?,
            created_at: from_cql_time(created_at),
            updated_at: from_cql_time(updated_at),
            kind: match kind.as_deref() {
                None | Some("") => RoomKind::Text,
                Some(k) => RoomKind::parse(k)
                    .ok_or_else(|| StoreError::Corrupt(format!("room kind {k}")))?,
            },
            banned: match banned.as_deref() {
                None | Some("") => Vec::new(),
                Some(json) => serde_json::from_str(json)
                    .map_err(|e| StoreError::Corrupt(format!("banned: {e}")))?,
            },
        }))
    }

    /// `room_by_code` (case-insensitive), checking the room still holds the code.
    pub(crate) async fn room_by_code(&self, code: &str) -> StoreResult<Option<RoomRecord>> {
        let code = fold(code);
        let Some(owner) = self.code_owner(&code).await? else {
            return Ok(None);
        };
        Ok(self
            .room_by_id(owner)
            .await?
            .filter(|r| fold(&r.join_code) == code))
    }

    /// `delete_room`: idempotent; each step can be repeated after a failure.
    pub(crate) async fn delete_room(&self, room_id: Snowflake) -> StoreResult<()> {
        let Ok(raw) = id(room_id) else {
            return Ok(());
        };
        if let Some(room) = self.room_by_id(room_id).await? {
            self.release(Unique::JoinCode, &fold(&room.join_code), room_id)
                .await?;
        }
        self.batch(
            "delete room",
            BatchType::Logged,
            vec![
                (&self.st.room_delete, Box::new((raw,))),
                (&self.st.public_delete, Box::new((raw,))),
            ],
        )
        .await?;

        let members: Vec<MemberRow> = self
            .select_all("read members", &self.st.members_of_room, (raw,))
            .await?;
        for chunk in members.chunks(DELETE_BATCH) {
            let entries: Vec<BatchEntry<'_>> = chunk
                .iter()
                .map(|(_, user_id, _, _)| -> BatchEntry<'_> {
                    (&self.st.member_delete_by_user, Box::new((*user_id, raw)))
                })
                .collect();
            self.batch("delete memberships", BatchType::Logged, entries)
                .await?;
        }
        self.write("delete members", &self.st.members_delete_room, (raw,))
            .await?;

        let buckets: Vec<(i32,)> = self
            .select_all(
                "read message buckets",
                &self.st.buckets_below,
                (raw, i32::MAX, i32::MIN, i32::MAX),
            )
            .await?;
        for (bucket,) in buckets {
            self.write(
                "delete messages",
                &self.st.messages_delete_bucket,
                (raw, bucket),
            )
            .await?;
        }
        self.write("delete message buckets", &self.st.buckets_delete, (raw,))
            .await
    }

    /// `list_public_rooms`: the newest-first listing partition, skipped to `offset`.
    pub(crate) async fn list_public_rooms(&self, offset: u64, limit: u32) -> StoreResult<RoomPage> {
        let count: Option<(i64,)> = self
            .first("count public rooms", &self.st.public_count, ())
            .await?;
        let total = u64::try_from(count.map_or(0, |(c,)| c)).unwrap_or(0);
        if limit == 0 || offset >= total {
            return Ok(RoomPage {
                rooms: Vec::new(),
                total,
            });
        }
        let want = offset.saturating_add(u64::from(limit));
        let want = i32::try_from(want).unwrap_or(i32::MAX);
        let ids: Vec<(i64,)> = self
            .select_all("list public rooms", &self.st.public_ids, (want,))
            .await?;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut page = Vec::with_capacity(take.min(ids.len()));
        for (raw,) in ids.into_iter().skip(skip).take(take) {
            page.push(snowflake(raw)?);
        }
        let fetched: Vec<StoreResult<Option<RoomRecord>>> = futures_util::stream::iter(page)
            .map(|room_id| self.room_by_id(room_id))
            .buffered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut rooms = Vec::with_capacity(fetched.len());
        for room in fetched {
            match room? {
                Some(room) => rooms.push(room),
                None => tracing::warn!("public room listing points at a missing room"),
            }
        }
        Ok(RoomPage { rooms, total })
    }

    /// `put_member`: both directions in one batch.
    pub(crate) async fn put_member(&self, member: &Membership) -> StoreResult<()> {
        let entries = self.member_entries(member)?;
        self.batch("write membership", BatchType::Logged, entries)
            .await
    }

    /// `remove_member`: both directions in one batch.
    pub(crate) async fn remove_member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(room), Ok(user)) = (id(room_id), id(user_id)) else {
            return Ok(());
        };
        self.batch(
            "remove membership",
            BatchType::Logged,
            vec![
                (&self.st.member_delete, Box::new((room, user))),
                (&self.st.member_delete_by_user, Box::new((user, room))),
            ],
        )
        .await
    }

    /// `member`.
    pub(crate) async fn member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<Membership>> {
        let (Ok(room), Ok(user)) = (id(room_id), id(user_id)) else {
            return Ok(None);
        };
        let row: Option<MemberRow> = self
            .first("read membership", &self.st.member_get, (room, user))
            .await?;
        row.map(membership).transpose()
    }

    /// `room_members`, in join order (ties broken by user id).
    pub(crate) async fn room_members(&self, room_id: Snowflake) -> StoreResult<Vec<Membership>> {
        let Ok(raw) = id(room_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<MemberRow> = self
            .select_all("read members", &self.st.members_of_room, (raw,))
            .await?;
        let mut members = rows
            .into_iter()
            .map(membership)
            .collect::<StoreResult<Vec<_>>>()?;
        members.sort_by_key(|m| (m.joined_at, m.user_id));
        Ok(members)
    }

    /// `user_rooms`, in room id order (the clustering order).
    pub(crate) async fn user_rooms(&self, user_id: Snowflake) -> StoreResult<Vec<Membership>> {
        let Ok(raw) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<MemberRow> = self
            .select_all("read rooms of user", &self.st.rooms_of_user, (raw,))
            .await?;
        rows.into_iter().map(membership).collect()
    }
}
