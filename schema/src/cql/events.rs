//! Room event logs (the read markers prepared beside them are in `read_markers.rs`).
//!
//! A room's log lives in partitions of 16384 seqs (`room_events`, bucket = seq >> 14). A
//! commit writes, in this order: the log entries (one single-partition batch per bucket,
//! buckets in seq order), then the messages the entries leave behind (`Cql::append`, the
//! room's newest entry's message last), then the `room_log` hint of where the log ends.
//! The log is the commit point: a crash after it leaves messages behind the log, and
//! [`Cql::log_head`] (which every new owner of the room calls before serving it) re-applies
//! the last batch's messages when the newest entry's message does not show its seq. Only one
//! commit per room is in flight at a time (the room actor's rule), so "the last batch" is
//! the last [`REPAIR_WINDOW`] entries at most.
//!
//! Storage-level fencing: `claim_room` bumps the room's ownership epoch in `room_owner` with
//! one lightweight transaction. Entries are written `USING TIMESTAMP` 1 + the writer's epoch,
//! so for one seq the newest owner's entry wins whenever an older one arrives. After its log
//! entries are acknowledged a commit reads `room_owner`: if a newer owner took over it fails
//! with `Fenced` before any message is written (the entries it left are skipped by readers,
//! [`crate::fence::resolve`], unless the new owner read them as the log's end before writing,
//! like any failed write that landed). If the epoch is still the writer's, the entries were
//! stored before any newer owner could read the log's end, so that owner continues after them.

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::codec::{driver_error, from_cql_time, id, to_cql_time};
use super::{BatchEntry, Cql};
use crate::fence::resolve;
use crate::model::{LogHead, MessageRecord, RoomEventRecord};
use crate::store::{StoreError, StoreResult};

/// Seqs per `room_events` partition, as a shift.
const BUCKET_SHIFT: u32 = 14;
/// Most entries a room commits at once; the repair re-applies this many.
pub const REPAIR_WINDOW: u64 = 256;
/// Most bytes of entries in one batch.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How many entries from the log's physical end `log_head` resolves: stale entries of fenced
/// owners sit at most one batch beyond the end of the log.
const TAIL_WINDOW: u64 = REPAIR_WINDOW + 1;
/// Attempts of a takeover's compare-and-set before giving up (others kept bumping meanwhile).
const CLAIM_ATTEMPTS: usize = 16;

/// A `room_events` row: seq, epoch, owner_epoch, event, data, message, at.
type EventRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    Option<String>,
    CqlTimestamp,
);

/// The statements of this module.
pub(crate) struct EventStatements {
    insert: PreparedStatement,
    after: PreparedStatement,
    /// `after` with only the seq and the ownership epoch: resolving the log's tail needs no
    /// payloads (a takeover reads 258 entries of every room it starts).
    epochs_after: PreparedStatement,
    last: PreparedStatement,
    delete_bucket: PreparedStatement,
    head_put: PreparedStatement,
    head_get: PreparedStatement,
    /// Read markers' (`read_markers.rs`).
    pub(super) marker_put: PreparedStatement,
    pub(super) markers_get: PreparedStatement,
    owner_get: PreparedStatement,
    owner_create: PreparedStatement,
    owner_bump: PreparedStatement,
}

impl EventStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<EventStatements> {
        let p = |cql: &'static str| super::codec::prepare(session, cql, true);
        Ok(EventStatements {
            insert: p(
                "INSERT INTO room_events (room_id, bucket, seq, epoch, owner_epoch, event, \
                 data, message, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            )
            .await?,
            after: p(
                "SELECT seq, epoch, owner_epoch, event, data, message, at FROM room_events \
                 WHERE room_id = ? AND bucket = ? AND seq > ? LIMIT ?",
            )
            .await?,
            epochs_after: p("SELECT seq, owner_epoch FROM room_events \
                 WHERE room_id = ? AND bucket = ? AND seq > ? LIMIT ?")
            .await?,
            last: p(
                "SELECT seq, epoch, owner_epoch, event, data, message, at FROM room_events \
                 WHERE room_id = ? AND bucket = ? ORDER BY seq DESC LIMIT ?",
            )
            .await?,
            delete_bucket: p("DELETE FROM room_events WHERE room_id = ? AND bucket = ?").await?,
            head_put: p("INSERT INTO room_log (room_id, epoch, seq) VALUES (?, ?, ?)").await?,
            head_get: p("SELECT epoch, seq FROM room_log WHERE room_id = ?").await?,
            marker_put: p(
                "INSERT INTO read_markers (user_id, room_id, message_id, at) \
                 VALUES (?, ?, ?, ?)",
            )
            .await?,
            markers_get: p("SELECT room_id, message_id, at FROM read_markers WHERE user_id = ?")
                .await?,
            owner_get: p("SELECT epoch FROM room_owner WHERE room_id = ?").await?,
            // Compare-and-sets are not idempotent: a retried one that had applied would see
            // its own bump as someone else's.
            owner_create: lwt(
                session,
                "INSERT INTO room_owner (room_id, epoch) VALUES (?, ?) IF NOT EXISTS",
            )
            .await?,
            owner_bump: lwt(
                session,
                "UPDATE room_owner SET epoch = ? WHERE room_id = ? IF epoch = ?",
            )
            .await?,
        })
    }
}

/// Prepares a lightweight transaction (not idempotent, so never retried by the driver).
async fn lwt(session: &Session, cql: &'static str) -> StoreResult<PreparedStatement> {
    let mut st = session
        .prepare(cql)
        .await
        .map_err(|e| driver_error(&format!("prepare `{cql}`"), e))?;
    st.set_is_idempotent(false);
    Ok(st)
}

/// The partition of a seq.
fn bucket_of(seq: u64) -> i32 {
    i32::try_from(seq >> BUCKET_SHIFT).unwrap_or(i32::MAX)
}

/// A seq as a `bigint`.
fn seq_value(seq: u64) -> StoreResult<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq} out of range")))
}

fn decode(room_id: Snowflake, row: EventRow) -> StoreResult<RoomEventRecord> {
    let (seq, epoch, owner_epoch, event, data, message, at) = row;
    let message = match message.as_deref() {
        None | Some("") => None,
        Some(json) => Some(
            serde_json::from_str::<MessageRecord>(json)
                .map_err(|e| StoreError::Corrupt(format!("event message: {e}")))?,
        ),
    };
    Ok(RoomEventRecord {
        room_id,
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
        epoch: u64::try_from(epoch).map_err(|_| StoreError::Corrupt("negative epoch".into()))?,
        owner_epoch: u64::try_from(owner_epoch.unwrap_or(0))
            .map_err(|_| StoreError::Corrupt("negative owner epoch".into()))?,
        event,
        data,
        message,
        at: from_cql_time(at),
    })
}

/// The messages `events` leave behind, the newest state of each, in seq order of that state.
fn messages_of(events: &[RoomEventRecord]) -> Vec<MessageRecord> {
    let mut out: Vec<MessageRecord> = Vec::new();
    for m in events.iter().filter_map(|e| e.message.as_ref()) {
        out.retain(|old| old.id != m.id);
        out.push(m.clone());
    }
    out
}

impl Cql {
    /// `commit_events`, see the module docs.
    pub(crate) async fn commit_events(&self, events: &[RoomEventRecord]) -> StoreResult<()> {
        let ev = &self.ev;
        let mut groups: Vec<((i64, i32), usize, Vec<BatchEntry<'_>>)> = Vec::new();
        let mut heads: Vec<(i64, i64, i64)> = Vec::new();
        // Each room's oldest writer epoch in the call, checked once its entries are stored.
        let mut owners: Vec<(Snowflake, u64)> = Vec::new();
        for e in events {
            let (room, seq, epoch) = (id(e.room_id)?, seq_value(e.seq)?, seq_value(e.epoch)?);
            let owner = seq_value(e.owner_epoch)?;
            match owners.iter_mut().find(|(r, _)| *r == e.room_id) {
                Some((_, oldest)) => *oldest = (*oldest).min(e.owner_epoch),
                None => owners.push((e.room_id, e.owner_epoch)),
            }
            let b = bucket_of(e.seq);
            let message = match &e.message {
                Some(m) => Some(
                    serde_json::to_string(m)
                        .map_err(|err| StoreError::Corrupt(format!("event message: {err}")))?,
                ),
                None => None,
            };
            let weight = e.data.len() + message.as_ref().map_or(0, String::len) + 64;
            let row: BatchEntry<'_> = (
                &ev.insert,
                Box::new((
                    room,
                    b,
                    seq,
                    epoch,
                    owner,
                    e.event.clone(),
                    e.data.clone(),
                    message,
                    to_cql_time(e.at),
                    owner.saturating_add(1),
                )),
            );
            match groups.last_mut() {
                Some((key, bytes, rows))
                    if *key == (room, b) && *bytes + weight <= MAX_BATCH_BYTES =>
                {
                    *bytes += weight;
                    rows.push(row);
                }
                _ => groups.push(((room, b), weight, vec![row])),
            }
            heads.retain(|(r, _, _)| *r != room);
            heads.push((room, epoch, seq));
        }
        // In seq order, one after another: the log never has a hole a reader could skip.
        for (_, _, rows) in groups {
            self.batch("append room log", BatchType::Unlogged, rows)
                .await?;
        }
        // The entries are stored: if no newer owner exists now, none read the log's end
        // before they landed. Otherwise stop before any message is written.
        for (room, mine) in owners {
            let current = self.owner_epoch(room).await?;
            if current > mine {
                return Err(StoreError::Fenced {
                    room,
                    mine,
                    current,
                });
            }
        }
        let mut messages = messages_of(events);
        if let Some(last) = messages.pop() {
            self.append(&messages).await?;
            self.append(std::slice::from_ref(&last)).await?;
        }
        for head in heads {
            self.write("write room log head", &ev.head_put, head)
                .await?;
        }
        Ok(())
    }

    /// The newest entry of a room's log (resolved by ownership epoch), from the head hint
    /// onwards.
    async fn last_event(&self, room_id: Snowflake) -> StoreResult<Option<RoomEventRecord>> {
        match self.physical_last(room_id).await? {
            Some(last) => self.resolve_end(room_id, last, None).await,
            None => Ok(None),
        }
    }

    /// The newest entry as stored (a fenced owner's stale entry included), from the head
    /// hint onwards. Partitions are read two at a time: the hint is at most one commit
    /// behind, so the end is almost always in the hint's partition or the next.
    async fn physical_last(&self, room_id: Snowflake) -> StoreResult<Option<RoomEventRecord>> {
        let room = id(room_id)?;
        let hint: Option<(i64, i64)> = self
            .first("read room log head", &self.ev.head_get, (room,))
            .await?;
        if hint.is_some_and(|(_, seq)| seq < 0) {
            // Deleted with its room (reading the deleted partitions would only scan tombstones).
            return Ok(None);
        }
        let mut b = hint.map_or(0, |(_, seq)| bucket_of(u64::try_from(seq).unwrap_or(0)));
        let mut last: Option<EventRow> = None;
        loop {
            let next = b.saturating_add(1);
            let (this, after): (Option<EventRow>, Option<EventRow>) = tokio::try_join!(
                self.first("read room log end", &self.ev.last, (room, b, 1i32)),
                self.first("read room log end", &self.ev.last, (room, next, 1i32)),
            )?;
            // An empty partition is the end (the hint is at most one commit behind).
            match (this, after) {
                (None, _) => break,
                (Some(row), None) => {
                    last = Some(row);
                    break;
                }
                (Some(_), Some(row)) => {
                    last = Some(row);
                    if next == i32::MAX {
                        break;
                    }
                    b = next + 1;
                }
            }
        }
        last.map(|row| decode(room_id, row)).transpose()
    }

    /// Where the fencing rule ends the log whose physical end is `last`.
    async fn resolve_end(
        &self,
        room_id: Snowflake,
        last: RoomEventRecord,
        claimed: Option<u64>,
    ) -> StoreResult<Option<RoomEventRecord>> {
        // Written by the owner the caller just took over from: nothing newer precedes it.
        if claimed.is_some_and(|c| last.owner_epoch.saturating_add(1) == c) {
            return Ok(Some(last));
        }
        // The window's first entry is at least one batch before the physical end, so it is
        // part of the log and gives the epoch the rest may not fall below. Only seqs and
        // epochs are read; the entry the rule ends at is read whole unless it is `last`.
        let from = last.seq.saturating_sub(TAIL_WINDOW);
        let mut rows = self
            .epochs_after(room_id, from.saturating_sub(1), TAIL_WINDOW as u32 + 1)
            .await?;
        let floor = match rows.first() {
            Some(first) if from > 0 && first.seq == from => rows.remove(0).owner_epoch,
            _ => 0,
        };
        let end = match resolve(rows, floor).pop() {
            Some(end) => end.seq,
            None if from > 0 => from,
            None => return Ok(None),
        };
        if end == last.seq {
            return Ok(Some(last));
        }
        let entry = self.raw_after(room_id, end.saturating_sub(1), 1).await?;
        Ok(entry.into_iter().find(|e| e.seq == end))
    }

    /// Seqs and ownership epochs of the log rows with seq > `after`, as stored (for
    /// [`resolve`]: the records carry no event).
    async fn epochs_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        let rows: Vec<(i64, Option<i64>)> = self
            .rows_after(
                "read room log epochs",
                &self.ev.epochs_after,
                room_id,
                after,
                limit,
                |r: &(i64, Option<i64>)| r.0,
            )
            .await?;
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(rows
            .into_iter()
            .map(|(seq, owner_epoch)| RoomEventRecord {
                room_id,
                seq: unsigned(seq),
                epoch: 0,
                owner_epoch: owner_epoch.map_or(0, unsigned),
                event: String::new(),
                data: String::new(),
                message: None,
                at: 0,
            })
            .collect())
    }

    /// A room's current ownership epoch (0 if never claimed).
    async fn owner_epoch(&self, room_id: Snowflake) -> StoreResult<u64> {
        let row: Option<(Option<i64>,)> = self
            .first("read room owner", &self.ev.owner_get, (id(room_id)?,))
            .await?;
        Ok(row
            .and_then(|(e,)| e)
            .map_or(0, |e| u64::try_from(e).unwrap_or(0)))
    }

    /// `claim_room`: a compare-and-set on `room_owner`.
    pub(crate) async fn claim_room(
        &self,
        room_id: Snowflake,
        after: Option<u64>,
    ) -> StoreResult<u64> {
        let room = id(room_id)?;
        if let Some(mine) = after {
            let next = mine.saturating_add(1);
            let lwt = self
                .lwt(
                    "renew room ownership",
                    &self.ev.owner_bump,
                    (seq_value(next)?, room, seq_value(mine)?),
                )
                .await?;
            if lwt.applied {
                return Ok(next);
            }
            let current = self.owner_epoch(room_id).await?;
            return Err(StoreError::Fenced {
                room: room_id,
                mine,
                current,
            });
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let current: Option<(Option<i64>,)> = self
                .first("read room owner", &self.ev.owner_get, (room,))
                .await?;
            let lwt = match current.and_then(|(e,)| e) {
                None => {
                    let lwt = self
                        .lwt("claim room", &self.ev.owner_create, (room, 1i64))
                        .await?;
                    if lwt.applied {
                        return Ok(1);
                    }
                    lwt
                }
                Some(epoch) => {
                    let next = epoch.saturating_add(1);
                    let lwt = self
                        .lwt("take room over", &self.ev.owner_bump, (next, room, epoch))
                        .await?;
                    if lwt.applied {
                        return u64::try_from(next)
                            .map_err(|_| StoreError::Corrupt("negative owner epoch".into()));
                    }
                    lwt
                }
            };
            tracing::debug!(room = %room_id, existing = ?lwt.existing, "room claim raced; retrying");
        }
        Err(StoreError::Unavailable(format!(
            "room {room_id}: ownership claim kept racing"
        )))
    }

    /// The stored state of the message a log entry carries (`None` if it carries none, or
    /// the message is missing).
    async fn stored_message_of(
        &self,
        entry: &RoomEventRecord,
    ) -> StoreResult<Option<MessageRecord>> {
        match &entry.message {
            Some(m) => self.message(m.room_id, m.id).await,
            None => Ok(None),
        }
    }

    /// `log_head`, repairing messages a crashed commit left behind the log.
    /// `claimed`: see [`crate::Store::log_head_after_claim`].
    pub(crate) async fn log_head(
        &self,
        room_id: Snowflake,
        claimed: Option<u64>,
    ) -> StoreResult<Option<LogHead>> {
        let Some(physical) = self.physical_last(room_id).await? else {
            return Ok(None);
        };
        // A new owner waits for this read: the repair check of the physical end runs beside
        // the fencing rule's window, and is read again only when the rule ends elsewhere.
        let (last, stored) = tokio::try_join!(
            self.resolve_end(room_id, physical.clone(), claimed),
            self.stored_message_of(&physical)
        )?;
        let Some(last) = last else {
            return Ok(None);
        };
        let stored = if last.seq == physical.seq {
            stored
        } else {
            self.stored_message_of(&last).await?
        };
        if let Some(m) = &last.message
            && stored.is_none_or(|s| s.extra.seq < m.extra.seq)
        {
            let from = last.seq.saturating_sub(REPAIR_WINDOW);
            let window = self
                .events_after(room_id, from, REPAIR_WINDOW as u32)
                .await?;
            tracing::warn!(room = %room_id, seq = last.seq, "repairing messages from the room log");
            let messages = messages_of(&window);
            self.append(&messages).await?;
        }
        Ok(Some(LogHead {
            epoch: last.epoch,
            seq: last.seq,
            message: last.message.as_ref().map(|m| m.id),
        }))
    }

    /// `events_after`: partitions in order from `after`'s, until `limit` or a partition that
    /// does not run to its end; resolved by ownership epoch from the entry at `after`.
    pub(crate) async fn events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        // The entry at `after` itself gives the epoch the rest may not fall below.
        let (from, want) = match after.checked_sub(1) {
            Some(before) => (before, limit.saturating_add(1)),
            None => (0, limit),
        };
        let mut rows = self.raw_after(room_id, from, want).await?;
        let floor = match rows.first() {
            Some(first) if after > 0 && first.seq == after => rows.remove(0).owner_epoch,
            _ => 0,
        };
        rows.truncate(limit as usize);
        Ok(resolve(rows, floor))
    }

    /// Log rows with seq > `after`, as stored.
    async fn raw_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        let rows: Vec<EventRow> = self
            .rows_after(
                "read room log",
                &self.ev.after,
                room_id,
                after,
                limit,
                |r: &EventRow| r.0,
            )
            .await?;
        rows.into_iter().map(|row| decode(room_id, row)).collect()
    }

    /// Rows of `st` (`room_id, bucket, seq > ?, LIMIT ?`) with seq > `after`, partition after
    /// partition until `limit` or a partition that does not run to its end.
    async fn rows_after<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        room_id: Snowflake,
        after: u64,
        limit: u32,
        seq_of: impl Fn(&R) -> i64,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let room = id(room_id)?;
        let mut out = Vec::new();
        let mut cursor = after;
        let mut b = bucket_of(after.saturating_add(1));
        while out.len() < limit as usize {
            let want = i32::try_from(limit as usize - out.len()).unwrap_or(i32::MAX);
            let rows: Vec<R> = self
                .select(what, st, (room, b, seq_value(cursor)?, want))
                .await?;
            let got = rows.len();
            if let Some(last) = rows.last() {
                cursor = u64::try_from(seq_of(last))
                    .map_err(|_| StoreError::Corrupt("negative log seq".into()))?;
            }
            out.extend(rows);
            let bucket_end = (u64::try_from(b).unwrap_or(0) + 1) << BUCKET_SHIFT;
            if got == 0 || cursor + 1 < bucket_end {
                break;
            }
            b += 1;
        }
        Ok(out)
    }

    /// Drops a room's log (with the room).
    pub(crate) async fn delete_events(&self, room_id: Snowflake) -> StoreResult<()> {
        let room = id(room_id)?;
        if let Some(last) = self.last_event(room_id).await? {
            for b in 0..=bucket_of(last.seq) {
                self.write("delete room log", &self.ev.delete_bucket, (room, b))
                    .await?;
            }
        }
        // The hint stays, marking the log deleted (room ids are never reused).
        self.write(
            "mark room log deleted",
            &self.ev.head_put,
            (room, -1i64, -1i64),
        )
        .await
    }
}
