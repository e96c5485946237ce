//! The member name index on CQL (`community_member_names`, `schema/cql/011_member_names.cql`):
//! its statements, the rows the membership writes add to their batches, the search, and the
//! one-time fill of migration 11 for members stored before the index existed.
//!
//! A membership write reads the user's name first (one point read) and writes the index row in
//! the same logged batch as the membership. A rename moves the user's row in each of their
//! communities after the user record is written; a rename racing a join of the same user can
//! leave a row under the old name, which the REST search drops (it shows members by their
//! current name and skips rows whose member is gone), and the next write of that membership
//! rewrites it.

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use voiceflow_wire::Snowflake;

use super::codec::{corrupt, driver_error, id, snowflake};
use super::{BatchEntry, Cql};
use crate::member_names::{
    MemberName, NameCursor, NamePrefix, SearchStart, fold_name, search_start,
};
use crate::model::UserRecord;
use crate::store::StoreResult;

/// Members indexed at once by the fill of migration 11.
const FILL_CONCURRENCY: usize = 32;

/// The statements of this module.
pub(crate) struct MemberNameStatements {
    put: PreparedStatement,
    delete: PreparedStatement,
    delete_all: PreparedStatement,
    from: PreparedStatement,
    after: PreparedStatement,
}

impl MemberNameStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<MemberNameStatements> {
        let p = |cql: &'static str| async move { super::codec::prepare(session, cql, true).await };
        Ok(MemberNameStatements {
            put: p(
                "INSERT INTO community_member_names (community_id, name, user_id, username) \
                 VALUES (?, ?, ?, ?)",
            )
            .await?,
            delete: p("DELETE FROM community_member_names \
                 WHERE community_id = ? AND name = ? AND user_id = ?")
            .await?,
            delete_all: p("DELETE FROM community_member_names WHERE community_id = ?").await?,
            from: p(
                "SELECT name, user_id, username FROM community_member_names \
                 WHERE community_id = ? AND name >= ? LIMIT ?",
            )
            .await?,
            after: p(
                "SELECT name, user_id, username FROM community_member_names \
                 WHERE community_id = ? AND (name, user_id) > (?, ?) LIMIT ?",
            )
            .await?,
        })
    }
}

type NameRow = (String, i64, Option<String>);

impl Cql {
    /// The index row of `user` in `community`.
    pub(crate) fn member_name_put(
        &self,
        community: Snowflake,
        user: &UserRecord,
    ) -> StoreResult<BatchEntry<'_>> {
        let values = (
            id(community)?,
            fold_name(&user.username),
            id(user.id)?,
            user.username.clone(),
        );
        Ok((&self.member_names.put, Box::new(values)))
    }

    /// The deletion of `user`'s index row in `community`.
    pub(crate) fn member_name_delete(
        &self,
        community: Snowflake,
        user: &UserRecord,
    ) -> StoreResult<BatchEntry<'_>> {
        let values = (id(community)?, fold_name(&user.username), id(user.id)?);
        Ok((&self.member_names.delete, Box::new(values)))
    }

    /// The deletion of a community's whole index.
    pub(crate) fn member_names_drop(&self, community: i64) -> BatchEntry<'_> {
        (&self.member_names.delete_all, Box::new((community,)))
    }

    /// Moves a renamed user's rows in each of their communities (one logged batch each: the
    /// old row never outlives the new one).
    pub(crate) async fn rename_member_names(
        &self,
        old: &UserRecord,
        new: &UserRecord,
    ) -> StoreResult<()> {
        if old.username == new.username {
            return Ok(());
        }
        for community in self.user_communities(new.id).await? {
            let entries = vec![
                self.member_name_delete(community, old)?,
                self.member_name_put(community, new)?,
            ];
            self.batch("rename member", BatchType::Logged, entries)
                .await?;
        }
        Ok(())
    }

    /// `community_members_by_name`: one slice from the prefix (or the cursor) of at most
    /// `limit` rows, cut at the first name without the prefix.
    pub(crate) async fn community_members_by_name(
        &self,
        community_id: Snowflake,
        prefix: &NamePrefix,
        after: Option<&NameCursor>,
        limit: u32,
    ) -> StoreResult<Vec<MemberName>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let what = "search members by name";
        let rows: Vec<NameRow> = match search_start(prefix, after) {
            None => return Ok(Vec::new()),
            Some(SearchStart::From(name)) => {
                let values = (community, name, limit);
                self.select(what, &self.member_names.from, values).await?
            }
            Some(SearchStart::After(c)) => {
                let values = (community, c.name, id(c.user_id)?, limit);
                self.select(what, &self.member_names.after, values).await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for (name, user, username) in rows {
            if !prefix.matches(&name) {
                break;
            }
            out.push(MemberName {
                community_id,
                user_id: snowflake(user)?,
                username: username.unwrap_or(name),
            });
        }
        Ok(out)
    }
}

/// Migration 11's code step: indexes every member stored before the index existed (read in
/// pages from `community_members`, each name from `users`). Runs before the version is
/// recorded, so a node that dies part-way fills again at its next start; the rows are the
/// same, so two nodes filling at once agree. Expects the session to use the keyspace.
pub(crate) async fn fill(session: &Session) -> StoreResult<u64> {
    let prepare = |cql: &'static str| super::codec::prepare(session, cql, true);
    let scan = prepare("SELECT community_id, user_id FROM community_members").await?;
    let name = prepare("SELECT username FROM users WHERE id = ?").await?;
    let put = prepare(
        "INSERT INTO community_member_names (community_id, name, user_id, username) \
         VALUES (?, ?, ?, ?)",
    )
    .await?;
    let what = "fill member names";
    let members = session
        .execute_iter(scan, ())
        .await
        .map_err(|e| driver_error(what, e))?
        .rows_stream::<(i64, i64)>()
        .map_err(|e| corrupt(what, e))?;
    let (name, put) = (&name, &put);
    members
        .map_err(|e| driver_error(what, e))
        .map_ok(|(community, user)| async move {
            let row = session
                .execute_unpaged(name, (user,))
                .await
                .map_err(|e| driver_error(what, e))?
                .into_rows_result()
                .map_err(|e| corrupt(what, e))?;
            let username = row
                .maybe_first_row::<(Option<String>,)>()
                .map_err(|e| corrupt(what, e))?
                .and_then(|(n,)| n);
            let Some(username) = username else {
                return Ok(0u64);
            };
            let values = (community, fold_name(&username), user, username);
            session
                .execute_unpaged(put, values)
                .await
                .map_err(|e| driver_error(what, e))?;
            Ok(1u64)
        })
        .try_buffer_unordered(FILL_CONCURRENCY)
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await
}
