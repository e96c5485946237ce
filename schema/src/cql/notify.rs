//! Mentions (`user_mentions`, one partition per user, newest first) and notification
//! settings (`notification_settings`, one partition per user), migration 12.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::notify::{NotificationLevel, NotificationSetting};

use futures_util::future::try_join_all;

use super::Cql;
use super::codec::{id, snowflake};
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::store::{StoreError, StoreResult};

/// Most single-row writes in flight at once for one call.
const WRITES_AT_ONCE: usize = 64;

/// The statements of this module.
pub(crate) struct NotifyStatements {
    /// One mention row; written among the index rows of `Cql::append`.
    pub(crate) mention_insert: PreparedStatement,
    mention_delete: PreparedStatement,
    mention_ids: PreparedStatement,
    mentions_first: PreparedStatement,
    mentions_before: PreparedStatement,
    setting_put: PreparedStatement,
    setting_delete: PreparedStatement,
    settings_of: PreparedStatement,
}

impl NotifyStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<NotifyStatements> {
        let p = |cql: &'static str| super::codec::prepare(session, cql, true);
        Ok(NotifyStatements {
            mention_insert: p(
                "INSERT INTO user_mentions (user_id, message_id, room_id) VALUES (?, ?, ?)",
            )
            .await?,
            mention_delete: p("DELETE FROM user_mentions WHERE user_id = ? AND message_id = ?")
                .await?,
            mention_ids: p("SELECT message_id FROM user_mentions WHERE user_id = ?").await?,
            mentions_first: p(
                "SELECT message_id, room_id FROM user_mentions WHERE user_id = ? LIMIT ?",
            )
            .await?,
            mentions_before: p("SELECT message_id, room_id FROM user_mentions \
                 WHERE user_id = ? AND message_id < ? LIMIT ?")
            .await?,
            setting_put: p(
                "INSERT INTO notification_settings (user_id, scope_id, level, \
                 mute_until) VALUES (?, ?, ?, ?)",
            )
            .await?,
            setting_delete: p(
                "DELETE FROM notification_settings WHERE user_id = ? AND scope_id = ?",
            )
            .await?,
            settings_of: p(
                "SELECT scope_id, level, mute_until FROM notification_settings \
                 WHERE user_id = ?",
            )
            .await?,
        })
    }
}

impl Cql {
    /// `user_mentions`.
    pub(crate) async fn user_mentions(
        &self,
        user_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MentionRecord>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<(i64, i64)> = match before {
            None => {
                let values = (user, limit);
                self.select("read mentions", &self.notify.mentions_first, values)
                    .await?
            }
            Some(before) => {
                // An id past i64::MAX is above every stored one.
                let before = id(before).unwrap_or(i64::MAX);
                let values = (user, before, limit);
                self.select("read mentions", &self.notify.mentions_before, values)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(message, room)| {
                Ok(MentionRecord {
                    user_id,
                    message_id: snowflake(message)?,
                    room_id: snowflake(room)?,
                })
            })
            .collect()
    }

    /// `put_user_mentions`: each row on its own (they are in different partitions), a
    /// bounded number at a time.
    pub(crate) async fn put_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        for chunk in rows.chunks(WRITES_AT_ONCE) {
            let mut values = Vec::with_capacity(chunk.len());
            for row in chunk {
                values.push((id(row.user_id)?, id(row.message_id)?, id(row.room_id)?));
            }
            try_join_all(
                values
                    .into_iter()
                    .map(|v| self.write("write mention", &self.notify.mention_insert, v)),
            )
            .await?;
        }
        Ok(())
    }

    /// `delete_user_mentions`.
    pub(crate) async fn delete_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        for chunk in rows.chunks(WRITES_AT_ONCE) {
            // An id that does not fit a bigint was never stored.
            let values: Vec<(i64, i64)> = chunk
                .iter()
                .filter_map(|r| Some((id(r.user_id).ok()?, id(r.message_id).ok()?)))
                .collect();
            try_join_all(
                values
                    .into_iter()
                    .map(|v| self.write("delete mention", &self.notify.mention_delete, v)),
            )
            .await?;
        }
        Ok(())
    }

    /// `trim_user_mentions`: reads the partition's ids (newest first, paged) and deletes
    /// every row past the newest `keep`. Cassandra before 3.0 has no range deletion on a
    /// clustering column, so rows are deleted one by one.
    pub(crate) async fn trim_user_mentions(
        &self,
        user_id: Snowflake,
        keep: u32,
    ) -> StoreResult<u64> {
        let Ok(user) = id(user_id) else {
            return Ok(0);
        };
        let ids: Vec<(i64,)> = self
            .select_all("read mention ids", &self.notify.mention_ids, (user,))
            .await?;
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let old: Vec<(i64, i64)> = ids.into_iter().skip(keep).map(|(m,)| (user, m)).collect();
        let deleted = old.len() as u64;
        for chunk in old.chunks(WRITES_AT_ONCE) {
            try_join_all(
                chunk
                    .iter()
                    .map(|v| self.write("trim mentions", &self.notify.mention_delete, *v)),
            )
            .await?;
        }
        Ok(deleted)
    }

    /// `put_notification_setting`.
    pub(crate) async fn put_notification_setting(
        &self,
        row: &NotificationSettingRecord,
    ) -> StoreResult<()> {
        let (user, scope) = (id(row.user_id)?, id(row.scope_id)?);
        if row.setting.is_inherit() {
            return self
                .write(
                    "delete notification setting",
                    &self.notify.setting_delete,
                    (user, scope),
                )
                .await;
        }
        let level = row.setting.level.map(NotificationLevel::as_str);
        let mute = match row.setting.mute_until {
            Some(ms) => Some(
                i64::try_from(ms)
                    .map_err(|_| StoreError::Corrupt(format!("mute_until {ms} out of range")))?,
            ),
            None => None,
        };
        self.write(
            "write notification setting",
            &self.notify.setting_put,
            (user, scope, level, mute),
        )
        .await
    }

    /// `notification_settings`.
    pub(crate) async fn notification_settings(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<NotificationSettingRecord>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, Option<String>, Option<i64>)> = self
            .select_all(
                "read notification settings",
                &self.notify.settings_of,
                (user,),
            )
            .await?;
        rows.into_iter()
            .map(|(scope, level, mute)| {
                let level = match level.as_deref() {
                    None => None,
                    Some(name) => Some(NotificationLevel::parse(name).ok_or_else(|| {
                        StoreError::Corrupt(format!("notification level `{name}`"))
                    })?),
                };
                Ok(NotificationSettingRecord {
                    user_id,
                    scope_id: Snowflake(
                        u64::try_from(scope).map_err(|_| {
                            StoreError::Corrupt(format!("notification scope {scope}"))
                        })?,
                    ),
                    setting: NotificationSetting {
                        level,
                        mute_until: mute.and_then(|m| u64::try_from(m).ok()),
                    },
                })
            })
            .collect()
    }
}
