//! Community bans (`community_bans`, one partition per community, by user id). A ban and the
//! removal of the membership go in one logged batch.

use scylla::client::session::Session;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use super::{BatchEntry, Cql};
use crate::community::BanRecord;
use crate::store::StoreResult;

/// The statements of this module.
pub(crate) struct BanStatements {
    put: PreparedStatement,
    delete: PreparedStatement,
    get: PreparedStatement,
    first: PreparedStatement,
    after: PreparedStatement,
    delete_all: PreparedStatement,
    member_delete: PreparedStatement,
    index_delete: PreparedStatement,
}

impl BanStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<BanStatements> {
        let p = |cql: &'static str| super::codec::prepare(session, cql, true);
        Ok(BanStatements {
            put: p(
                "INSERT INTO community_bans (community_id, user_id, reason, banned_by, \
                 created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .await?,
            delete: p("DELETE FROM community_bans WHERE community_id = ? AND user_id = ?").await?,
            get: p(
                "SELECT user_id, reason, banned_by, created_at FROM community_bans \
                 WHERE community_id = ? AND user_id = ?",
            )
            .await?,
            first: p(
                "SELECT user_id, reason, banned_by, created_at FROM community_bans \
                 WHERE community_id = ? LIMIT ?",
            )
            .await?,
            after: p(
                "SELECT user_id, reason, banned_by, created_at FROM community_bans \
                 WHERE community_id = ? AND user_id > ? LIMIT ?",
            )
            .await?,
            delete_all: p("DELETE FROM community_bans WHERE community_id = ?").await?,
            member_delete: p(
                "DELETE FROM community_members WHERE community_id = ? AND user_id = ?",
            )
            .await?,
            index_delete: p("DELETE FROM user_communities WHERE user_id = ? AND community_id = ?")
                .await?,
        })
    }
}

type BanRow = (i64, Option<String>, i64, CqlTimestamp);

fn ban_row(community_id: Snowflake, (user, reason, by, at): BanRow) -> StoreResult<BanRecord> {
    Ok(BanRecord {
        community_id,
        user_id: snowflake(user)?,
        reason,
        banned_by: snowflake(by)?,
        created_at: from_cql_time(at),
    })
}

impl Cql {
    /// `put_ban`: the ban and the end of the membership, together.
    pub(crate) async fn put_ban(&self, ban: &BanRecord) -> StoreResult<()> {
        let (community, user) = (id(ban.community_id)?, id(ban.user_id)?);
        let values = (
            community,
            user,
            ban.reason.clone(),
            id(ban.banned_by)?,
            to_cql_time(ban.created_at),
        );
        let mut entries: Vec<BatchEntry<'_>> = vec![
            (&self.bans.put, Box::new(values)),
            (&self.bans.member_delete, Box::new((community, user))),
            (&self.bans.index_delete, Box::new((user, community))),
        ];
        if let Some(record) = self.user_by_id(ban.user_id).await? {
            entries.push(self.member_name_delete(ban.community_id, &record)?);
        }
        self.batch("ban", BatchType::Logged, entries).await
    }

    /// `remove_ban`.
    pub(crate) async fn remove_ban(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(community), Ok(user)) = (id(community_id), id(user_id)) else {
            return Ok(());
        };
        self.write("lift ban", &self.bans.delete, (community, user))
            .await
    }

    /// `ban`.
    pub(crate) async fn ban(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<BanRecord>> {
        let (Ok(community), Ok(user)) = (id(community_id), id(user_id)) else {
            return Ok(None);
        };
        let row: Option<BanRow> = self
            .first("read ban", &self.bans.get, (community, user))
            .await?;
        row.map(|row| ban_row(community_id, row)).transpose()
    }

    /// `community_bans`: a page by user id.
    pub(crate) async fn community_bans(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<BanRecord>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<BanRow> = match after {
            None => {
                self.select("read bans", &self.bans.first, (community, limit))
                    .await?
            }
            Some(after) => {
                let values = (community, id(after)?, limit);
                self.select("read bans", &self.bans.after, values).await?
            }
        };
        rows.into_iter()
            .map(|row| ban_row(community_id, row))
            .collect()
    }

    /// Deletes a community's bans (with the community).
    pub(crate) async fn delete_community_bans(&self, community: i64) -> StoreResult<()> {
        self.write("delete bans", &self.bans.delete_all, (community,))
            .await
    }
}
