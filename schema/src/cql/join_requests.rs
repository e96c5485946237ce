//! Requests to join a community (`community_join_requests`, one partition per community, by
//! user id). Rows are written with `INSERT … IF NOT EXISTS` and removed with
//! `DELETE … IF EXISTS`, so that of two moderators answering one request exactly one removes
//! it (and mixing plain writes with lightweight transactions on a row is unsafe).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::community::JoinRequest;
use crate::store::StoreResult;

/// The statements of this module.
pub(crate) struct JoinRequestStatements {
    put: PreparedStatement,
    get: PreparedStatement,
    take: PreparedStatement,
    first: PreparedStatement,
    after: PreparedStatement,
    delete_all: PreparedStatement,
}

impl JoinRequestStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<JoinRequestStatements> {
        let p =
            |cql: &'static str, idempotent: bool| super::codec::prepare(session, cql, idempotent);
        Ok(JoinRequestStatements {
            put: p(
                "INSERT INTO community_join_requests (community_id, user_id, invite_code, \
                 created_at) VALUES (?, ?, ?, ?) IF NOT EXISTS",
                false,
            )
            .await?,
            get: p(
                "SELECT user_id, invite_code, created_at FROM community_join_requests \
                 WHERE community_id = ? AND user_id = ?",
                true,
            )
            .await?,
            take: p(
                "DELETE FROM community_join_requests WHERE community_id = ? AND user_id = ? \
                 IF EXISTS",
                false,
            )
            .await?,
            first: p(
                "SELECT user_id, invite_code, created_at FROM community_join_requests \
                 WHERE community_id = ? LIMIT ?",
                true,
            )
            .await?,
            after: p(
                "SELECT user_id, invite_code, created_at FROM community_join_requests \
                 WHERE community_id = ? AND user_id > ? LIMIT ?",
                true,
            )
            .await?,
            delete_all: p(
                "DELETE FROM community_join_requests WHERE community_id = ?",
                true,
            )
            .await?,
        })
    }
}

type RequestRow = (i64, Option<String>, CqlTimestamp);

fn request_row(community_id: Snowflake, (user, code, at): RequestRow) -> StoreResult<JoinRequest> {
    Ok(JoinRequest {
        community_id,
        user_id: snowflake(user)?,
        invite_code: code.unwrap_or_default(),
        created_at: from_cql_time(at),
    })
}

impl Cql {
    /// `put_join_request`: an earlier pending request of the same user stays.
    pub(crate) async fn put_join_request(&self, request: &JoinRequest) -> StoreResult<()> {
        let values = (
            id(request.community_id)?,
            id(request.user_id)?,
            request.invite_code.clone(),
            to_cql_time(request.created_at),
        );
        self.lwt("request to join", &self.join_requests.put, values)
            .await?;
        Ok(())
    }

    /// `take_join_request`: read, then removed by whoever's `DELETE … IF EXISTS` applies.
    pub(crate) async fn take_join_request(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<JoinRequest>> {
        let (Ok(community), Ok(user)) = (id(community_id), id(user_id)) else {
            return Ok(None);
        };
        let row: Option<RequestRow> = self
            .first(
                "read join request",
                &self.join_requests.get,
                (community, user),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let request = request_row(community_id, row)?;
        let taken = self
            .lwt(
                "take join request",
                &self.join_requests.take,
                (community, user),
            )
            .await?;
        Ok(taken.applied.then_some(request))
    }

    /// `join_requests`: a page by user id.
    pub(crate) async fn join_requests(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<JoinRequest>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<RequestRow> = match after {
            None => {
                self.select(
                    "read join requests",
                    &self.join_requests.first,
                    (community, limit),
                )
                .await?
            }
            Some(after) => {
                let values = (community, id(after)?, limit);
                self.select("read join requests", &self.join_requests.after, values)
                    .await?
            }
        };
        rows.into_iter()
            .map(|row| request_row(community_id, row))
            .collect()
    }

    /// Deletes a community's requests (with the community).
    pub(crate) async fn delete_join_requests(&self, community: i64) -> StoreResult<()> {
        self.write(
            "delete join requests",
            &self.join_requests.delete_all,
            (community,),
        )
        .await
    }
}
