//! Mentions (`user_mentions`, one partition per user, newest first) and notification
//! settings (`notification_settings`, one partition per user), migration 12.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::notify::{NotificationLevel, NotificationSetting};

use super::Cql;
use super::codec::{id, snowflake};
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::store::{StoreError, StoreResult};

/// The statements of this module.
pub(crate) struct NotifyStatements {
    /// One mention row; written among the index rows of `Cql::append`.
    pub(crate) mention_insert: PreparedStatement,
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
