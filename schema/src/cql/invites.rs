//! Community invites (`invites` by code, `community_invites` by community): codes are claimed
//! with `INSERT … IF NOT EXISTS`, uses are counted with `UPDATE … IF uses = ?` so that two
//! people racing for an invite's last use cannot both get it, and every later change of the
//! row is a lightweight transaction too (mixing plain writes with LWTs on one row is unsafe).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::community::InviteRecord;
use crate::store::{StoreError, StoreResult};

/// How many times a use is tried against concurrent uses of the same invite.
const USE_ATTEMPTS: usize = 16;

/// The statements of this module.
pub(crate) struct InviteStatements {
    claim: PreparedStatement,
    get: PreparedStatement,
    count_use: PreparedStatement,
    revoke: PreparedStatement,
    index_put: PreparedStatement,
    codes_of: PreparedStatement,
    index_delete: PreparedStatement,
    delete: PreparedStatement,
}

impl InviteStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<InviteStatements> {
        let p =
            |cql: &'static str, idempotent: bool| super::codec::prepare(session, cql, idempotent);
        Ok(InviteStatements {
            claim: p(
                "INSERT INTO invites (code, community_id, created_by, created_at, expires_at, \
                 max_uses, uses, revoked) VALUES (?, ?, ?, ?, ?, ?, 0, false) IF NOT EXISTS",
                false,
            )
            .await?,
            get: p(
                "SELECT community_id, created_by, created_at, expires_at, max_uses, uses, \
                 revoked FROM invites WHERE code = ?",
                true,
            )
            .await?,
            count_use: p(
                "UPDATE invites SET uses = ? WHERE code = ? IF uses = ? AND revoked = false",
                false,
            )
            .await?,
            revoke: p(
                "UPDATE invites SET revoked = true WHERE code = ? IF revoked = false",
                false,
            )
            .await?,
            index_put: p(
                "INSERT INTO community_invites (community_id, code) VALUES (?, ?)",
                true,
            )
            .await?,
            codes_of: p(
                "SELECT code FROM community_invites WHERE community_id = ?",
                true,
            )
            .await?,
            index_delete: p("DELETE FROM community_invites WHERE community_id = ?", true).await?,
            delete: p("DELETE FROM invites WHERE code = ? IF EXISTS", false).await?,
        })
    }
}

type InviteRow = (
    i64,
    i64,
    CqlTimestamp,
    Option<CqlTimestamp>,
    Option<i32>,
    Option<i32>,
    Option<bool>,
);

fn count(value: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("invite {what} {value}")))
}

impl Cql {
    /// `create_invite`: the code first (its claim), then the community's list.
    pub(crate) async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()> {
        let max_uses = invite
            .max_uses
            .map(|m| i32::try_from(m).unwrap_or(i32::MAX));
        let values = (
            invite.code.as_str(),
            id(invite.community_id)?,
            id(invite.created_by)?,
            to_cql_time(invite.created_at),
            invite.expires_at.map(to_cql_time),
            max_uses,
        );
        let claimed = self
            .lwt("create invite", &self.invites.claim, values)
            .await?;
        if !claimed.applied {
            // A retried create of the same invite finds its own row: not a conflict.
            let mine = self.invite(&invite.code).await?.is_some_and(|old| {
                old.community_id == invite.community_id && old.created_at == invite.created_at
            });
            if !mine {
                return Err(StoreError::Conflict { field: "code" });
            }
        }
        let index = (id(invite.community_id)?, invite.code.as_str());
        self.write("index invite", &self.invites.index_put, index)
            .await
    }

    /// `invite`.
    pub(crate) async fn invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        let row: Option<InviteRow> = self
            .first("read invite", &self.invites.get, (code,))
            .await?;
        let Some((community, by, at, expires, max_uses, uses, revoked)) = row else {
            return Ok(None);
        };
        Ok(Some(InviteRecord {
            code: code.to_owned(),
            community_id: snowflake(community)?,
            created_by: snowflake(by)?,
            created_at: from_cql_time(at),
            expires_at: expires.map(from_cql_time),
            max_uses: max_uses.map(|m| count(m, "max_uses")).transpose()?,
            uses: count(uses.unwrap_or(0), "uses")?,
            revoked: revoked.unwrap_or(false),
        }))
    }

    /// `community_invites`, by code.
    pub(crate) async fn community_invites(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<InviteRecord>> {
        let Ok(raw) = id(community_id) else {
            return Ok(Vec::new());
        };
        let codes: Vec<(String,)> = self
            .select_all("read community invites", &self.invites.codes_of, (raw,))
            .await?;
        let mut out = Vec::with_capacity(codes.len());
        for (code,) in codes {
            if let Some(invite) = self.invite(&code).await? {
                out.push(invite);
            }
        }
        Ok(out)
    }

    /// `use_invite`: read, check, compare-and-set the count; again if someone else's use
    /// came first.
    pub(crate) async fn use_invite(
        &self,
        code: &str,
        now_ms: u64,
    ) -> StoreResult<Option<InviteRecord>> {
        for _ in 0..USE_ATTEMPTS {
            let Some(mut invite) = self.invite(code).await? else {
                return Ok(None);
            };
            if !invite.usable(now_ms) {
                return Ok(None);
            }
            let (before, after) = (
                i32::try_from(invite.uses).unwrap_or(i32::MAX),
                i32::try_from(invite.uses + 1).unwrap_or(i32::MAX),
            );
            let counted = self
                .lwt("use invite", &self.invites.count_use, (after, code, before))
                .await?;
            if counted.applied {
                invite.uses += 1;
                return Ok(Some(invite));
            }
        }
        Err(StoreError::Unavailable(format!(
            "invite {code} is being used by too many people at once"
        )))
    }

    /// `revoke_invite`.
    pub(crate) async fn revoke_invite(&self, code: &str) -> StoreResult<()> {
        self.lwt("revoke invite", &self.invites.revoke, (code,))
            .await
            .map(|_| ())
    }

    /// Deletes every invite of a community (with the community).
    pub(crate) async fn delete_community_invites(&self, community: i64) -> StoreResult<()> {
        let codes: Vec<(String,)> = self
            .select_all(
                "read community invites",
                &self.invites.codes_of,
                (community,),
            )
            .await?;
        for (code,) in codes {
            self.lwt("delete invite", &self.invites.delete, (code.as_str(),))
                .await?;
        }
        self.write(
            "delete community invites",
            &self.invites.index_delete,
            (community,),
        )
        .await
    }
}
