//! Blocks (`user_blocks`, one partition per user) and privacy settings (`user_settings`).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::contacts::{BlockRecord, ContactPolicy, UserSettings};
use crate::store::{StoreError, StoreResult};

/// The statements of this module.
pub(crate) struct ContactStatements {
    block_insert: PreparedStatement,
    block_delete: PreparedStatement,
    block_get: PreparedStatement,
    blocks_of: PreparedStatement,
    settings_put: PreparedStatement,
    settings_get: PreparedStatement,
}

impl ContactStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<ContactStatements> {
        let p = |cql: &'static str| super::codec::prepare(session, cql, true);
        Ok(ContactStatements {
            // A block that exists keeps its first time: the insert happens only without a
            // row (read first; two racing blocks of the same pair write nearly equal times).
            block_insert: p(
                "INSERT INTO user_blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)",
            )
            .await?,
            block_delete: p("DELETE FROM user_blocks WHERE user_id = ? AND blocked_id = ?").await?,
            block_get: p("SELECT blocked_id, created_at FROM user_blocks \
                 WHERE user_id = ? AND blocked_id = ?")
            .await?,
            blocks_of: p("SELECT blocked_id, created_at FROM user_blocks WHERE user_id = ?")
                .await?,
            settings_put: p("INSERT INTO user_settings (user_id, contact) VALUES (?, ?)").await?,
            settings_get: p("SELECT contact FROM user_settings WHERE user_id = ?").await?,
        })
    }
}

fn block_row(user_id: Snowflake, (blocked, at): (i64, CqlTimestamp)) -> StoreResult<BlockRecord> {
    Ok(BlockRecord {
        user_id,
        blocked_id: snowflake(blocked)?,
        created_at: from_cql_time(at),
    })
}

impl Cql {
    /// `put_block`.
    pub(crate) async fn put_block(&self, block: &BlockRecord) -> StoreResult<()> {
        if self.block(block.user_id, block.blocked_id).await?.is_some() {
            return Ok(());
        }
        let values = (
            id(block.user_id)?,
            id(block.blocked_id)?,
            to_cql_time(block.created_at),
        );
        self.write("write block", &self.contacts.block_insert, values)
            .await
    }

    /// `remove_block`.
    pub(crate) async fn remove_block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(user), Ok(blocked)) = (id(user_id), id(blocked_id)) else {
            return Ok(());
        };
        self.write("delete block", &self.contacts.block_delete, (user, blocked))
            .await
    }

    /// `block`.
    pub(crate) async fn block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<Option<BlockRecord>> {
        let (Ok(user), Ok(blocked)) = (id(user_id), id(blocked_id)) else {
            return Ok(None);
        };
        let row: Option<(i64, CqlTimestamp)> = self
            .first("read block", &self.contacts.block_get, (user, blocked))
            .await?;
        row.map(|row| block_row(user_id, row)).transpose()
    }

    /// `blocks`, by blocked id (the clustering order).
    pub(crate) async fn blocks(&self, user_id: Snowflake) -> StoreResult<Vec<BlockRecord>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, CqlTimestamp)> = self
            .select_all("read blocks", &self.contacts.blocks_of, (user,))
            .await?;
        rows.into_iter()
            .map(|row| block_row(user_id, row))
            .collect()
    }

    /// `user_settings`.
    pub(crate) async fn user_settings(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Option<UserSettings>> {
        let Ok(user) = id(user_id) else {
            return Ok(None);
        };
        let row: Option<(Option<String>,)> = self
            .first("read user settings", &self.contacts.settings_get, (user,))
            .await?;
        row.map(|(contact,)| {
            let contact = match contact.as_deref() {
                None => ContactPolicy::default(),
                Some(name) => ContactPolicy::parse(name)
                    .ok_or_else(|| StoreError::Corrupt(format!("contact policy `{name}`")))?,
            };
            Ok(UserSettings { user_id, contact })
        })
        .transpose()
    }

    /// `put_user_settings`.
    pub(crate) async fn put_user_settings(&self, settings: &UserSettings) -> StoreResult<()> {
        let values = (id(settings.user_id)?, settings.contact.as_str());
        self.write("write user settings", &self.contacts.settings_put, values)
            .await
    }
}
