//! Community invites over REST: `POST`/`GET /communities/:id/invites`,
//! `DELETE /communities/:id/invites/:code`, `GET /invites/:code` (a preview) and
//! `POST /invites/:code/join`. Creating an invite needs `CREATE_INVITE`; listing and revoking
//! them `MANAGE_COMMUNITY` (an invite's creator may revoke their own). A join spends one use
//! (counted by compare-and-set in storage) and the join bucket of `[limits] joins_per_min`,
//! per client address and user, so codes cannot be guessed faster than that. In a community
//! with `requireApproval` the join becomes a request (`join_requests.rs`): 202
//! `{joined: false, requested: true}`, the use spent once.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::{CommunityMember, InviteRecord, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::accounts::forwarded_for;
use super::audit::{Change, reason, record};
use super::communities::{CommunityView, seen};
use super::join_requests;
use super::rooms::join_code;
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// Longest an invite may live: 30 days.
const MAX_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// Most uses one invite may allow.
const MAX_USES: u32 = 10_000;

/// An invite as its community's managers see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InviteView {
    code: String,
    community_id: Snowflake,
    created_by: Snowflake,
    created_at: String,
    expires_at: Option<String>,
    max_uses: Option<u32>,
    uses: u32,
    revoked: bool,
}

impl From<&InviteRecord> for InviteView {
    fn from(i: &InviteRecord) -> Self {
        InviteView {
            code: i.code.clone(),
            community_id: i.community_id,
            created_by: i.created_by,
            created_at: rfc3339(i.created_at),
            expires_at: i.expires_at.map(rfc3339),
            max_uses: i.max_uses,
            uses: i.uses,
            revoked: i.revoked,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    max_uses: Option<u32>,
    expires_in_secs: Option<u64>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let create = warp::path!("communities" / Snowflake / "invites")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(create(s, u, id, b, r).await)
            },
        );
    let list = warp::path!("communities" / Snowflake / "invites")
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(list(s, u, id).await) });
    let revoke = warp::path!("communities" / Snowflake / "invites" / String)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, code: String, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(revoke(s, u, id, code, r).await)
            },
        );
    let preview =
        warp::path!("invites" / String)
            .and(warp::get())
            .and(s())
            .then(|code: String, s: AppState, _u: AuthUser| async move {
                respond(preview(s, code).await)
            });
    let join = warp::path!("invites" / String / "join")
        .and(warp::post())
        .and(s())
        .and(crate::server::remote())
        .and(warp::header::headers_cloned())
        .then(
            |code: String, s: AppState, u: AuthUser, addr, headers: HeaderMap| async move {
                match s.rest.join(u.id, addr, forwarded_for(&headers)) {
                    Ok(()) => respond(join(s, u, code).await),
                    Err(limited) => limited.response("join attempts"),
                }
            },
        );
    create
        .or(list)
        .unify()
        .or(revoke)
        .unify()
        .or(preview)
        .unify()
        .or(join)
        .unify()
}

/// Codes are shown in capitals and read in any case.
fn normalized(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// The invite if it may be used now; NOT_FOUND otherwise (unknown, revoked, expired or used
/// up: which one is not said to a stranger).
async fn usable(s: &AppState, code: &str) -> Result<InviteRecord, ApiError> {
    match s.ctx.store.invite(code).await? {
        Some(invite) if invite.usable(now_ms()) => Ok(invite),
        _ => Err(ApiError::not_found("invite (or it expired or was used up)")),
    }
}

async fn create(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: CreateBody = parse(&body)?;
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::CREATE_INVITE, "create invites")?;
    if b.max_uses.is_some_and(|m| !(1..=MAX_USES).contains(&m)) {
        return Err(ApiError::field(
            "maxUses",
            format!("maxUses must be 1-{MAX_USES}"),
        ));
    }
    if b.expires_in_secs
        .is_some_and(|e| !(60..=MAX_LIFETIME_SECS).contains(&e))
    {
        return Err(ApiError::field(
            "expiresInSecs",
            format!("expiresInSecs must be 60-{MAX_LIFETIME_SECS}"),
        ));
    }
    let now = now_ms();
    let mut invite = InviteRecord {
        code: String::new(),
        community_id: id,
        created_by: user.id,
        created_at: now,
        expires_at: b.expires_in_secs.map(|secs| now + secs * 1000),
        max_uses: b.max_uses,
        uses: 0,
        revoked: false,
    };
    for _ in 0..8 {
        invite.code = join_code();
        match s.ctx.store.create_invite(&invite).await {
            Ok(()) => {
                let view = InviteView::from(&invite);
                let change = Change::new(id, user.id, "invite.create", None, reason)
                    .states(None, serde_json::to_value(&view).ok());
                record(&s, change).await?;
                return Ok(ok(StatusCode::CREATED, &view));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("no free invite code in 8 tries"))
}

async fn list(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(
        Permissions::MANAGE_COMMUNITY,
        "see this community's invites",
    )?;
    let invites = s.ctx.store.community_invites(id).await?;
    let views: Vec<InviteView> = invites.iter().map(InviteView::from).collect();
    Ok(ok(StatusCode::OK, &views))
}

async fn revoke(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    code: String,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let code = normalized(&code);
    let invite = match s.ctx.store.invite(&code).await? {
        Some(invite) if invite.community_id == id => invite,
        _ => return Err(ApiError::not_found("invite")),
    };
    if invite.created_by != user.id {
        seen.require(
            Permissions::MANAGE_COMMUNITY,
            "revoke other people's invites",
        )?;
    }
    s.ctx.store.revoke_invite(&code).await?;
    let change = Change::new(id, user.id, "invite.revoke", None, reason)
        .states(serde_json::to_value(InviteView::from(&invite)).ok(), None);
    record(&s, change).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "code": code, "revoked": true }),
    ))
}

async fn preview(s: AppState, code: String) -> Result<Response, ApiError> {
    let invite = usable(&s, &normalized(&code)).await?;
    let Some(community) = s.ctx.store.community_by_id(invite.community_id).await? else {
        return Err(ApiError::not_found("invite (or it expired or was used up)"));
    };
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({
            "code": invite.code,
            "community": CommunityView::from(&community),
            "expiresAt": invite.expires_at.map(rfc3339),
        }),
    ))
}

async fn join(s: AppState, user: AuthUser, code: String) -> Result<Response, ApiError> {
    let code = normalized(&code);
    let invite = usable(&s, &code).await?;
    let id = invite.community_id;
    if s.ctx.store.ban(id, user.id).await?.is_some() {
        return Err(ApiError::forbidden("you are banned from this community"));
    }
    if s.ctx.store.community_member(id, user.id).await?.is_some() {
        // Already in: no use is spent.
        return Ok(ok(
            StatusCode::OK,
            &serde_json::json!({ "communityId": id, "joined": false }),
        ));
    }
    let approval = s
        .ctx
        .store
        .community_by_id(id)
        .await?
        .is_some_and(|c| c.require_approval);
    if approval && pending(&s, id, user.id).await? {
        // Asked already: no second use is spent.
        return join_requests::request(&s, &user, id, &code).await;
    }
    if s.ctx.store.use_invite(&code, now_ms()).await?.is_none() {
        return Err(ApiError::not_found("invite (or it expired or was used up)"));
    }
    if approval {
        return join_requests::request(&s, &user, id, &code).await;
    }
    let member = CommunityMember {
        community_id: id,
        user_id: user.id,
        roles: Vec::new(),
        timed_out_until: None,
        joined_at: now_ms(),
        voice_muted: false,
        voice_deafened: false,
    };
    s.ctx.store.put_community_member(&member).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "communityId": id, "joined": true }),
    ))
}

/// Whether `user` has a pending request to join `community` (the page of requests starting
/// at their id).
async fn pending(s: &AppState, community: Snowflake, user: Snowflake) -> Result<bool, ApiError> {
    let from = Snowflake(user.0.saturating_sub(1));
    let page = s.ctx.store.join_requests(community, Some(from), 1).await?;
    Ok(page.first().is_some_and(|r| r.user_id == user))
}
