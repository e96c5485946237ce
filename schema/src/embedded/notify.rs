//! `user_mentions` (user ‖ message → mention) and `notification_settings` (user ‖ scope →
//! setting), as in `schema/cql/012_mentions.cql`. Direct mention rows are written with their
//! message (`ops::append_message`), the others by [`MentionOp`]; settings by
//! `Op::PutNotificationSetting`.

use std::ops::Bound;

use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, decode, encode, id_bytes, io, pair_key};
use super::writer::{Reply, Staged};
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::store::StoreResult;

/// Writes of `user_mentions` besides those made with a message.
#[derive(Debug, Clone)]
pub(crate) enum MentionOp {
    /// `put_user_mentions`.
    Put(Vec<MentionRecord>),
    /// `delete_user_mentions`.
    Delete(Vec<MentionRecord>),
    /// `trim_user_mentions`: user, rows to keep.
    Trim(Snowflake, u32),
}

/// Applies one op; `Trim` answers how many rows it removed.
pub(crate) fn apply(s: &mut Staged<'_>, op: MentionOp) -> StoreResult<Reply> {
    match op {
        MentionOp::Put(rows) => {
            for row in rows {
                let key = pair_key(row.user_id, row.message_id);
                s.put(Table::UserMentions, key, encode(&row)?);
            }
        }
        MentionOp::Delete(rows) => {
            for row in rows {
                s.remove(Table::UserMentions, pair_key(row.user_id, row.message_id));
            }
        }
        MentionOp::Trim(user, keep) => {
            // Ascending by message id: everything before the newest `keep` goes.
            let keys = s.keys_with_prefix(Table::UserMentions, &id_bytes(user))?;
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            let excess = keys.len().saturating_sub(keep);
            for key in keys.into_iter().take(excess) {
                s.remove(Table::UserMentions, key);
            }
            return Ok(Reply::Number(excess as u64));
        }
    }
    Ok(Reply::Done)
}

/// The bound just past every key under `user`.
fn after_user(user: Snowflake) -> Bound<Vec<u8>> {
    match user.0.checked_add(1) {
        Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
        None => Bound::Unbounded,
    }
}

impl Reader {
    /// `user_mentions`: newest first, below `before`.
    pub(crate) fn user_mentions(
        &self,
        user: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MentionRecord>> {
        let start = Bound::Included(id_bytes(user).to_vec());
        let end = match before {
            Some(before) => Bound::Excluded(pair_key(user, before)),
            None => after_user(user),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::UserMentions)
            .range::<Vec<u8>, _>((start, end))
            .rev()
            .take(limit)
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `notification_settings`: by scope id.
    pub(crate) fn notification_settings(
        &self,
        user: Snowflake,
    ) -> StoreResult<Vec<NotificationSettingRecord>> {
        let start = Bound::Included(id_bytes(user).to_vec());
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::NotificationSettings)
            .range::<Vec<u8>, _>((start, after_user(user)))
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }
}
