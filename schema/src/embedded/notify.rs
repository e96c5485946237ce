//! Reads of `user_mentions` (user ‖ message → mention) and `notification_settings`
//! (user ‖ scope → setting), as in `schema/cql/012_mentions.cql`. Mention rows are written
//! with their message (`ops::append_message`), settings by `Op::PutNotificationSetting`.

use std::ops::Bound;

use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, decode, id_bytes, io, pair_key};
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::store::StoreResult;

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
