//! The message log: partitions of (room, ten-day bucket), clustered by id descending.
//!
//! History walks use `message_buckets` (the room's non-empty buckets, newest first) to go
//! from one partition to the next without probing empty buckets, never below the bucket of
//! the room's creation (the room id's snowflake timestamp): `messages_before` first reads the
//! cursor's own bucket, then the buckets below it, newest first, until `limit` messages are
//! found; `messages_after` walks the other way. A bucket's index row is acknowledged before
//! any message row of that bucket is written, so a walk never skips a stored message.

use futures_util::future::try_join_all;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::codec::{bucket, from_cql_time, id, kind, kind_name, snowflake, to_cql_time};
use super::statements::message_insert_variant;
use super::{BatchEntry, Cql};
use crate::model::{MessageExtra, MessageRecord};
use crate::store::{StoreError, StoreResult};

/// A `messages` row, in [`super::statements::MESSAGE_COLUMNS`] order.
type MessageRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    CqlTimestamp,
    Option<CqlTimestamp>,
    Option<String>,
);

/// Buckets read from the index per request while walking.
const BUCKET_PAGE: i32 = 16;
/// Most partitions read concurrently while walking.
const MAX_WINDOW: usize = 8;

/// Decodes a message row.
fn decode(row: MessageRow) -> StoreResult<MessageRecord> {
    let (id, room_id, user_id, username, content, k, nonce, created_at, deleted_at, extra) = row;
    let extra = match extra.as_deref() {
        None | Some("") => MessageExtra::default(),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("message extra: {e}")))?,
    };
    Ok(MessageRecord {
        id: snowflake(id)?,
        room_id: snowflake(room_id)?,
        user_id: snowflake(user_id)?,
        username,
        content,
        kind: kind(&k)?,
        nonce,
        created_at: from_cql_time(created_at),
        deleted_at: deleted_at.map(from_cql_time),
        extra,
    })
}

/// `limit` as a CQL `int`.
fn cql_limit(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Adds `entry` to the group of `key`, keeping groups in first-seen order.
fn group_into<'a, K: PartialEq>(
    groups: &mut Vec<(K, Vec<BatchEntry<'a>>)>,
    key: K,
    entry: BatchEntry<'a>,
) {
    match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, group)) => group.push(entry),
        None => groups.push((key, vec![entry])),
    }
}

/// Checks that a message can be stored (its ids fit a `bigint`).
pub(crate) fn check(message: &MessageRecord) -> StoreResult<()> {
    id(message.id)?;
    id(message.room_id)?;
    id(message.user_id)?;
    Ok(())
}

impl Cql {
    /// Appends `messages` (any rooms). First their index rows (by id, by nonce, the buckets)
    /// are written, all at once; then, once every index row is acknowledged, each (room,
    /// bucket) partition's rows as one single-partition batch, which is atomic and isolated.
    /// So a message becomes visible only after its index rows exist, and a failed append
    /// leaves at most index rows pointing at no message, which lookups ignore (they check
    /// the message exists). No multi-partition batch (and no batch log) is needed.
    pub(crate) async fn append(&self, messages: &[MessageRecord]) -> StoreResult<()> {
        let mut index: Vec<Vec<BatchEntry<'_>>> = Vec::with_capacity(messages.len() + 2);
        let mut nonces: Vec<((i64, i64), Vec<BatchEntry<'_>>)> = Vec::new();
        let mut partitions: Vec<((i64, i32), Vec<BatchEntry<'_>>)> = Vec::new();
        for m in messages {
            let (room, mid, user) = (id(m.room_id)?, id(m.id)?, id(m.user_id)?);
            let b = bucket(m.id);
            index.push(vec![(&self.st.by_id_insert, Box::new((mid, room)))]);
            // Index rows are written before the message's own row, so a mention is stored
            // whenever its message is (readers check the message, so one without is unseen).
            for mention in crate::notify::MentionRecord::of(m) {
                let row = (id(mention.user_id)?, mid, room);
                index.push(vec![(&self.notify.mention_insert, Box::new(row))]);
            }
            if let Some(nonce) = &m.nonce {
                let entry: BatchEntry<'_> = (
                    &self.st.nonce_insert,
                    Box::new((room, user, nonce.clone(), mid)),
                );
                group_into(&mut nonces, (room, user), entry);
            }
            let st = &self.st.message_insert
                [message_insert_variant(m.nonce.is_some(), m.deleted_at.is_some())];
            let (name, content) = (m.username.clone(), m.content.clone());
            let (k, at) = (kind_name(m.kind), to_cql_time(m.created_at));
            let extra = serde_json::to_string(&m.extra)
                .map_err(|e| StoreError::Corrupt(format!("message extra: {e}")))?;
            let head = (room, b, mid, user, name, content, k, at, extra);
            let row: Box<dyn SerializeRow + Send + Sync> = match (&m.nonce, m.deleted_at) {
                (None, None) => Box::new(head),
                (Some(n), None) => {
                    let (r, b, i, u, na, c, k, a, e) = head;
                    Box::new((r, b, i, u, na, c, k, a, e, n.clone()))
                }
                (None, Some(d)) => {
                    let (r, b, i, u, na, c, k, a, e) = head;
                    Box::new((r, b, i, u, na, c, k, a, e, to_cql_time(d)))
                }
                (Some(n), Some(d)) => {
                    let (r, b, i, u, na, c, k, a, e) = head;
                    Box::new((r, b, i, u, na, c, k, a, e, n.clone(), to_cql_time(d)))
                }
            };
            group_into(&mut partitions, (room, b), (st, row));
        }
        for ((room, b), _) in &partitions {
            index.push(vec![(&self.st.bucket_insert, Box::new((*room, *b)))]);
        }
        index.extend(nonces.into_iter().map(|(_, group)| group));
        try_join_all(
            index
                .into_iter()
                .map(|group| self.batch("append message index", BatchType::Unlogged, group)),
        )
        .await?;
        try_join_all(
            partitions
                .into_iter()
                .map(|(_, rows)| self.batch("append messages", BatchType::Unlogged, rows)),
        )
        .await?;
        Ok(())
    }

    /// `message`.
    pub(crate) async fn message(
        &self,
        room_id: Snowflake,
        message_id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        let (Ok(room), Ok(mid)) = (id(room_id), id(message_id)) else {
            return Ok(None);
        };
        let row: Option<MessageRow> = self
            .first(
                "read message",
                &self.st.message_get,
                (room, bucket(message_id), mid),
            )
            .await?;
        row.map(decode).transpose()
    }

    /// `message_room`: the by-id entry, if its message still exists.
    pub(crate) async fn message_room(
        &self,
        message_id: Snowflake,
    ) -> StoreResult<Option<Snowflake>> {
        let Ok(mid) = id(message_id) else {
            return Ok(None);
        };
        let row: Option<(i64,)> = self
            .first("read message room", &self.st.by_id_get, (mid,))
            .await?;
        let Some((room,)) = row else {
            return Ok(None);
        };
        let room = snowflake(room)?;
        Ok(self.message(room, message_id).await?.map(|_| room))
    }

    /// `message_by_nonce`: the nonce entry, if its message still exists.
    pub(crate) async fn message_by_nonce(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
        nonce: &str,
    ) -> StoreResult<Option<Snowflake>> {
        let (Ok(room), Ok(user)) = (id(room_id), id(user_id)) else {
            return Ok(None);
        };
        let row: Option<(i64,)> = self
            .first("read nonce", &self.st.nonce_get, (room, user, nonce))
            .await?;
        let Some((mid,)) = row else {
            return Ok(None);
        };
        let mid = snowflake(mid)?;
        Ok(self.message(room_id, mid).await?.map(|_| mid))
    }

    /// Reads the partitions `buckets` of `room` in order with `st` (`LIMIT` = what is still
    /// wanted) until `out` holds `limit` messages. Partitions are read `window` at a time,
    /// concurrently, the window doubling up to [`MAX_WINDOW`] after each round: a dense
    /// history is served by its first partition, a sparse one in a few round trips.
    async fn read_buckets(
        &self,
        st: &PreparedStatement,
        room: i64,
        buckets: &[i32],
        window: &mut usize,
        limit: usize,
        out: &mut Vec<MessageRecord>,
    ) -> StoreResult<()> {
        let mut rest = buckets;
        while !rest.is_empty() && out.len() < limit {
            let (now, later) = rest.split_at((*window).min(rest.len()));
            let want = cql_limit(limit - out.len());
            let pages = try_join_all(
                now.iter()
                    .map(|b| self.select::<MessageRow>("read history", st, (room, *b, want))),
            )
            .await?;
            for row in pages.into_iter().flatten() {
                if out.len() >= limit {
                    break;
                }
                out.push(decode(row)?);
            }
            rest = later;
            *window = (*window * 2).min(MAX_WINDOW);
        }
        Ok(())
    }

    /// `messages_before`, newest first.
    pub(crate) async fn messages_before(
        &self,
        room_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let Ok(room) = id(room_id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        let floor = bucket(room_id);
        // Exclusive upper bound of the buckets still to read.
        let mut upper = i32::MAX;
        let mut window = 1;
        // A cursor beyond every storable id reads like no cursor at all.
        if let Some(before) = before
            && let Ok(cursor) = id(before)
        {
            let b = bucket(before);
            if b >= floor {
                let rows: Vec<MessageRow> = self
                    .select(
                        "read history",
                        &self.st.messages_below,
                        (room, b, cursor, cql_limit(limit)),
                    )
                    .await?;
                for row in rows {
                    out.push(decode(row)?);
                }
                window = 2;
            }
            upper = b;
        }
        while out.len() < limit {
            let buckets: Vec<i32> = self
                .select::<(i32,)>(
                    "read message buckets",
                    &self.st.buckets_below,
                    (room, upper, floor, BUCKET_PAGE),
                )
                .await?
                .into_iter()
                .map(|(b,)| b)
                .collect();
            let Some(&last) = buckets.last() else {
                break;
            };
            let st = &self.st.messages_newest;
            self.read_buckets(st, room, &buckets, &mut window, limit, &mut out)
                .await?;
            upper = last;
        }
        Ok(out)
    }

    /// `messages_after`, oldest first.
    pub(crate) async fn messages_after(
        &self,
        room_id: Snowflake,
        after: Snowflake,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let (Ok(room), Ok(cursor)) = (id(room_id), id(after)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        let mut lower = bucket(after);
        let rows: Vec<MessageRow> = self
            .select(
                "read history",
                &self.st.messages_above,
                (room, lower, cursor, cql_limit(limit)),
            )
            .await?;
        for row in rows {
            out.push(decode(row)?);
        }
        let mut window = 2;
        while out.len() < limit {
            let buckets: Vec<i32> = self
                .select::<(i32,)>(
                    "read message buckets",
                    &self.st.buckets_above,
                    (room, lower, BUCKET_PAGE),
                )
                .await?
                .into_iter()
                .map(|(b,)| b)
                .collect();
            let Some(&last) = buckets.last() else {
                break;
            };
            let st = &self.st.messages_oldest;
            self.read_buckets(st, room, &buckets, &mut window, limit, &mut out)
                .await?;
            lower = last;
        }
        Ok(out)
    }

    /// `tombstone_message`: unknown messages are a no-op and the first deletion time stays.
    pub(crate) async fn tombstone_message(
        &self,
        room_id: Snowflake,
        message_id: Snowflake,
        at: u64,
    ) -> StoreResult<()> {
        let Some(message) = self.message(room_id, message_id).await? else {
            return Ok(());
        };
        if message.deleted_at.is_some() {
            return Ok(());
        }
        let values = (
            to_cql_time(at),
            id(room_id)?,
            bucket(message_id),
            id(message_id)?,
        );
        self.write("tombstone message", &self.st.message_tombstone, values)
            .await
    }
}
