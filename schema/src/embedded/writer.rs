//! The single writer thread and group commit.
//!
//! Every mutation is sent to one dedicated `std::thread` as a [`Job`]. The thread blocks for
//! the first job, then drains whatever else is queued (up to [`MAX_GROUP`]) and applies the
//! whole group as one fjall write batch, persisted with `PersistMode::SyncAll` once. Only then
//! does it answer each caller's oneshot, so a resolved future means a durable write, and
//! concurrent writers share one fsync.
//!
//! Because this thread is the only writer, read-check-write sequences (uniqueness checks,
//! the refresh-token compare-and-set) are race-free. Ops of one group see each other: every op
//! stages its writes in a [`Staged`] view layered over the group's [`Overlay`] over the
//! committed data; a successful op's writes are merged into the overlay, a failed op's are
//! discarded, so each op is atomic on its own and the group is atomic on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use fjall::{Database, PersistMode};
use tokio::sync::oneshot;
use voiceflow_wire::Snowflake;

use super::tables::{Table, Tables, io};
use crate::contacts::{BlockRecord, UserSettings};
use crate::model::{
    Membership, MessageRecord, ReadMarker, RefreshTokenRecord, RoomEventRecord, RoomRecord,
    UserRecord,
};
use crate::store::{StoreError, StoreResult};

/// Most jobs folded into one group commit.
pub(crate) const MAX_GROUP: usize = 4096;

/// One mutation, as queued for the writer.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `create_user`.
    CreateUser(UserRecord),
    /// `update_user`.
    UpdateUser(UserRecord),
    /// `create_room`.
    CreateRoom(RoomRecord, Membership),
    /// `update_room`.
    UpdateRoom(RoomRecord),
    /// `delete_room`.
    DeleteRoom(Snowflake),
    /// `put_member`.
    PutMember(Membership),
    /// `remove_member`.
    RemoveMember(Snowflake, Snowflake),
    /// `append_messages`.
    AppendMessages(Vec<MessageRecord>),
    /// `tombstone_message`.
    Tombstone {
        /// Room of the message.
        room_id: Snowflake,
        /// The message.
        id: Snowflake,
        /// Deletion time.
        at: u64,
    },
    /// `commit_events`.
    CommitEvents(Vec<RoomEventRecord>),
    /// `claim_room`.
    ClaimRoom(Snowflake, Option<u64>),
    /// `put_read_marker`.
    PutReadMarker(ReadMarker),
    /// `put_refresh_token`.
    PutRefreshToken(RefreshTokenRecord),
    /// `use_refresh_token`.
    UseRefreshToken(String),
    /// `revoke_refresh_family`.
    RevokeFamily(String),
    /// `put_block` (kept if it exists).
    PutBlock(BlockRecord),
    /// `remove_block`: user, blocked user.
    RemoveBlock(Snowflake, Snowflake),
    /// `put_user_settings`.
    PutUserSettings(UserSettings),
    /// `put_notification_setting`.
    PutNotificationSetting(crate::notify::NotificationSettingRecord),
    /// VAPID keys and push subscriptions.
    Push(super::push::PushOp),
    /// Mention rows written apart from their message.
    Mentions(super::notify::MentionOp),
    /// A change to communities, their roles or members.
    Community(super::community::CommunityOp),
    /// `flush`: persist even if nothing else is written.
    Flush,
}

/// What an op answers besides success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Plain success.
    Done,
    /// The compare-and-set result of `use_refresh_token`.
    Bool(bool),
    /// A number (`claim_room`'s new ownership epoch).
    Number(u64),
}

/// A queued op and where to send its outcome.
pub(crate) struct Job {
    /// The mutation.
    pub(crate) op: Op,
    /// Completed once the group holding `op` is durable (or failed).
    pub(crate) reply: oneshot::Sender<StoreResult<Reply>>,
}

/// Group-commit counters, shared with the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Groups committed (≈ fsyncs).
    pub(crate) groups: AtomicU64,
    /// Ops applied.
    pub(crate) ops: AtomicU64,
}

/// Pending writes of a group: `Some` is an insert, `None` a removal.
pub(crate) type Overlay = BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>;

/// One op's read-your-writes view: its own staged writes over the group overlay over disk.
pub(crate) struct Staged<'a> {
    tables: &'a Tables,
    overlay: &'a Overlay,
    writes: Overlay,
}

impl<'a> Staged<'a> {
    /// A fresh view for one op.
    pub(crate) fn new(tables: &'a Tables, overlay: &'a Overlay) -> Staged<'a> {
        Staged {
            tables,
            overlay,
            writes: Overlay::new(),
        }
    }

    /// The current value of `key`, including pending writes.
    pub(crate) fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let probe = (table, key.to_vec());
        if let Some(v) = self.writes.get(&probe).or_else(|| self.overlay.get(&probe)) {
            return Ok(v.clone());
        }
        Ok(self
            .tables
            .get(table)
            .get(key)
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    /// Stages an insert.
    pub(crate) fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.writes.insert((table, key.into()), Some(value));
    }

    /// Stages a removal.
    pub(crate) fn remove(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.writes.insert((table, key.into()), None);
    }

    /// Every live key of `table` starting with `prefix`, including pending writes, ascending.
    pub(crate) fn keys_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> StoreResult<Vec<Vec<u8>>> {
        let mut keys = BTreeSet::new();
        for guard in self.tables.get(table).prefix(prefix) {
            keys.insert(guard.key().map_err(io)?.to_vec());
        }
        let lower = Bound::Included((table, prefix.to_vec()));
        for layer in [self.overlay, &self.writes] {
            for ((t, key), value) in layer.range((lower.clone(), Bound::Unbounded)) {
                if *t != table || !key.starts_with(prefix) {
                    break;
                }
                if value.is_some() {
                    keys.insert(key.clone());
                } else {
                    keys.remove(key);
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// The op's writes, to merge into the group overlay.
    pub(crate) fn into_writes(self) -> Overlay {
        self.writes
    }
}

/// Applies a group of ops in order, each seeing the earlier ones; returns the overlay to
/// commit and each op's outcome. Whether a persist is needed even without writes is `true`
/// when the group holds a `Flush`.
pub(crate) fn apply_group(
    tables: &Tables,
    ops: Vec<Op>,
) -> (Overlay, Vec<StoreResult<Reply>>, bool) {
    let mut overlay = Overlay::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut flush = false;
    for op in ops {
        flush |= matches!(op, Op::Flush);
        let mut staged = Staged::new(tables, &overlay);
        let result = super::ops::apply(&mut staged, op);
        if result.is_ok() {
            let writes = staged.into_writes();
            overlay.extend(writes);
        }
        results.push(result);
    }
    (overlay, results, flush)
}

/// Writes a group's overlay as one atomic batch and fsyncs it.
pub(crate) fn commit(
    db: &Database,
    tables: &Tables,
    overlay: Overlay,
    flush: bool,
) -> StoreResult<()> {
    if overlay.is_empty() {
        if flush {
            db.persist(PersistMode::SyncAll).map_err(io)?;
        }
        return Ok(());
    }
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    for ((table, key), value) in overlay {
        match value {
            Some(value) => batch.insert(tables.get(table), key, value),
            None => batch.remove(tables.get(table), key),
        }
    }
    batch.commit().map_err(io)
}

/// The writer thread body: runs until every sender is dropped and the queue is drained.
pub(crate) fn run(db: Database, tables: Tables, rx: Receiver<Job>, counters: Arc<Counters>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
        let count = ops.len() as u64;
        let (overlay, mut results, flush) = apply_group(&tables, ops);
        if let Err(err) = commit(&db, &tables, overlay, flush) {
            tracing::error!(error = %err, "group commit failed");
            let msg = match err {
                StoreError::Unavailable(msg) => msg,
                other => other.to_string(),
            };
            for result in &mut results {
                if result.is_ok() {
                    *result = Err(StoreError::Unavailable(msg.clone()));
                }
            }
        }
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters.ops.fetch_add(count, Ordering::Relaxed);
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone away (future dropped); the write stands regardless.
            let _ = reply.send(result);
        }
    }
    tracing::debug!("store writer stopped");
}
