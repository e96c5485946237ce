//! Communities' audit logs (`community_audit`, one partition per community, newest first).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::community::AuditEntry;
use crate::store::StoreResult;

const COLUMNS: &str = "id, actor_id, action, target_id, reason, before, after, created_at";

/// The statements of this module.
pub(crate) struct AuditStatements {
    put: PreparedStatement,
    newest: PreparedStatement,
    before: PreparedStatement,
    delete: PreparedStatement,
}

impl AuditStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<AuditStatements> {
        let p = |cql: String| async move { super::codec::prepare(session, &cql, true).await };
        Ok(AuditStatements {
            put: p(format!(
                "INSERT INTO community_audit (community_id, {COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            newest: p(format!(
                "SELECT {COLUMNS} FROM community_audit WHERE community_id = ? LIMIT ?"
            ))
            .await?,
            before: p(format!(
                "SELECT {COLUMNS} FROM community_audit WHERE community_id = ? AND id < ? LIMIT ?"
            ))
            .await?,
            delete: p("DELETE FROM community_audit WHERE community_id = ?".to_owned()).await?,
        })
    }
}

type AuditRow = (
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    CqlTimestamp,
);

impl Cql {
    /// `append_audit`.
    pub(crate) async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let values = (
            id(e.community_id)?,
            id(e.id)?,
            id(e.actor_id)?,
            e.action.as_str(),
            e.target_id.map(id).transpose()?,
            e.reason.as_deref(),
            e.before.as_deref(),
            e.after.as_deref(),
            to_cql_time(e.created_at),
        );
        self.write("append audit entry", &self.audit.put, values)
            .await
    }

    /// `audit_log`: newest first.
    pub(crate) async fn audit_log(
        &self,
        community_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let what = "read audit log";
        let rows: Vec<AuditRow> = match before {
            None => {
                self.select(what, &self.audit.newest, (community, limit))
                    .await?
            }
            Some(before) => {
                let values = (community, id(before)?, limit);
                self.select(what, &self.audit.before, values).await?
            }
        };
        rows.into_iter()
            .map(
                |(entry, actor, action, target, reason, before, after, at)| {
                    Ok(AuditEntry {
                        community_id,
                        id: snowflake(entry)?,
                        actor_id: snowflake(actor)?,
                        action: action.unwrap_or_default(),
                        target_id: target.map(snowflake).transpose()?,
                        reason,
                        before,
                        after,
                        created_at: from_cql_time(at),
                    })
                },
            )
            .collect()
    }

    /// Deletes a community's audit log (with the community).
    pub(crate) async fn delete_audit_log(&self, community: i64) -> StoreResult<()> {
        self.write("delete audit log", &self.audit.delete, (community,))
            .await
    }
}
