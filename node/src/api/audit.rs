//! Communities' audit logs: every change made through the community API is appended here
//! (`record`), and `GET /communities/:id/audit-log?before&limit&action&actor` pages it,
//! newest first, for members with `VIEW_AUDIT_LOG`. Entries cannot be edited or deleted.
//! A reason rides in the `X-Audit-Log-Reason` header of the change (as in Discord's API).

use serde::{Deserialize, Serialize};
use voiceflow_schema::AuditEntry;
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::permissions::Permissions;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::communities::seen;
use super::scan::{self, ScanLimits};
use super::{authed, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, respond};
use crate::state::AppState;

/// Longest reason kept, in characters (longer ones are cut).
const MAX_REASON_CHARS: usize = 512;
/// Most entries one request scans for its filters before answering with what it found.
const MAX_SCAN: u32 = 5_000;
/// Most entries one page holds.
const MAX_PAGE: u32 = 100;

/// The reason header of a change, if any.
pub(super) fn reason() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("x-audit-log-reason")
}

/// One change about to be recorded.
pub(super) struct Change {
    community: Snowflake,
    actor: Snowflake,
    action: &'static str,
    target: Option<Snowflake>,
    reason: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl Change {
    /// `actor` did `action` in `community` (to `target`), for `reason`.
    pub(super) fn new(
        community: Snowflake,
        actor: Snowflake,
        action: &'static str,
        target: Option<Snowflake>,
        reason: Option<String>,
    ) -> Change {
        Change {
            community,
            actor,
            action,
            target,
            reason,
            before: None,
            after: None,
        }
    }

    /// The target before and after, as JSON.
    pub(super) fn states(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Change {
        self.before = before;
        self.after = after;
        self
    }
}

/// Appends `change` to its community's log. Called after the change is stored; if the entry
/// cannot be stored the request fails (and may be retried: the changes are idempotent).
pub(super) async fn record(s: &AppState, change: Change) -> Result<(), ApiError> {
    let entry = AuditEntry {
        community_id: change.community,
        id: s.ctx.ids.next_id(),
        actor_id: change.actor,
        action: change.action.to_owned(),
        target_id: change.target,
        reason: change
            .reason
            .map(|r| r.trim().chars().take(MAX_REASON_CHARS).collect::<String>())
            .filter(|r| !r.is_empty()),
        before: change.before.map(|v| v.to_string()),
        after: change.after.map(|v| v.to_string()),
        created_at: now_ms(),
    };
    s.ctx.store.append_audit(&entry).await?;
    Ok(())
}

/// An entry as the log shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryView {
    id: Snowflake,
    actor_id: Snowflake,
    action: String,
    target_id: Option<Snowflake>,
    reason: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    created_at: String,
}

impl From<AuditEntry> for EntryView {
    fn from(e: AuditEntry) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        EntryView {
            id: e.id,
            actor_id: e.actor_id,
            action: e.action,
            target_id: e.target_id,
            reason: e.reason,
            before: json(e.before),
            after: json(e.after),
            created_at: voiceflow_wire::time::rfc3339(e.created_at),
        }
    }
}

#[derive(Deserialize)]
struct LogQuery {
    before: Option<Snowflake>,
    limit: Option<u32>,
    action: Option<String>,
    actor: Option<Snowflake>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("communities" / Snowflake / "audit-log")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(warp::query::<LogQuery>())
        .then(|id, s: AppState, u: AuthUser, q: LogQuery| async move {
            respond(log(s, u, id, q).await)
        })
}

async fn log(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    q: LogQuery,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::VIEW_AUDIT_LOG, "read the audit log")?;
    let limit = super::validate::page_limit(q.limit, 50, MAX_PAGE)?;
    let limits = ScanLimits {
        limit: limit as usize,
        max_scan: MAX_SCAN,
        page: MAX_PAGE,
    };
    let mut index = AuditIndex {
        s: &s,
        community: id,
        query: &q,
    };
    scan::newest_first(&mut index, q.before, limits)
        .await?
        .into_page()
}

/// A community's log, filtered by action and actor.
struct AuditIndex<'a> {
    s: &'a AppState,
    community: Snowflake,
    query: &'a LogQuery,
}

impl scan::Filtered for AuditIndex<'_> {
    type Entry = AuditEntry;
    type Item = EntryView;

    async fn read(
        &mut self,
        before: Option<Snowflake>,
        n: u32,
    ) -> Result<Vec<AuditEntry>, ApiError> {
        Ok(self
            .s
            .ctx
            .store
            .audit_log(self.community, before, n)
            .await?)
    }

    fn id_of(entry: &AuditEntry) -> Snowflake {
        entry.id
    }

    async fn keep(&mut self, entry: AuditEntry) -> Result<Option<EntryView>, ApiError> {
        let q = self.query;
        let wanted = q.action.as_deref().is_none_or(|a| entry.action == a)
            && q.actor.is_none_or(|a| entry.actor_id == a);
        Ok(wanted.then(|| EntryView::from(entry)))
    }
}
