//! Approval of joins: a community with `requireApproval` turns `POST /invites/:code/join`
//! into a request ([`request`]), listed by `GET /communities/:id/join-requests`, accepted by
//! `PUT …/join-requests/:userId` and declined by `DELETE` (the requester may withdraw their
//! own). Answering needs `kick_members` (Discord's rule for member applications). Both sides
//! hear of it live: `community:join_request` goes to the owner and the members whose roles
//! grant `kick_members` (or `administrator`), `community:join_decided` to them and to the
//! requester.
//!
//! Finding those members reads the member list in pages when a role grants the permission
//! (there is no index by role): one page read per [`AUDIENCE_PAGE`] members, done after the
//! request is stored, off the request's path. Requests are bounded like joins, by
//! `[limits] joins_per_min` per user and address.

use serde::Deserialize;
use voiceflow_actors::remote::notify_user;
use voiceflow_schema::{CommunityMember, JoinRequest};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::v1::community::{JoinDecided, JoinRequested, events};
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::communities::{page_reply, seen, usernames};
use super::{authed, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// Members read per page when looking for who may answer a request.
const AUDIENCE_PAGE: u32 = 1000;
/// Most requests one page lists.
const MAX_PAGE: u32 = 1000;

/// `?after=<userId>&limit=`.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    after: Option<Snowflake>,
    limit: Option<u32>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let list = warp::path!("communities" / Snowflake / "join-requests")
        .and(warp::get())
        .and(s())
        .and(warp::query::<PageQuery>())
        .then(|id, s: AppState, u: AuthUser, q: PageQuery| async move {
            respond(list(s, u, id, q).await)
        });
    let accept = warp::path!("communities" / Snowflake / "join-requests" / Snowflake)
        .and(warp::put())
        .and(s())
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(answer(s, u, (id, target), true, r).await)
            },
        );
    let decline = warp::path!("communities" / Snowflake / "join-requests" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(answer(s, u, (id, target), false, r).await)
            },
        );
    list.or(accept).unify().or(decline).unify()
}

/// `POST /invites/:code/join` on a community that requires approval: the request is stored
/// (an earlier pending one stays), those who may answer are told, and the caller gets 202.
pub(super) async fn request(
    s: &AppState,
    user: &AuthUser,
    community: Snowflake,
    code: &str,
) -> Result<Response, ApiError> {
    let request = JoinRequest {
        community_id: community,
        user_id: user.id,
        invite_code: code.to_owned(),
        created_at: now_ms(),
    };
    s.ctx.store.put_join_request(&request).await?;
    let event = JoinRequested {
        community_id: community,
        user_id: user.id,
        username: user.username.clone(),
        created_at: rfc3339(request.created_at),
    };
    let frame = frame::event(events::JOIN_REQUEST, &event);
    let state = s.clone();
    tokio::spawn(async move {
        if let Err(e) = tell_answerers(&state, community, &frame, None).await {
            tracing::warn!(community = %community, error = %e.0.message, "join request not announced");
        }
    });
    Ok(ok(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "communityId": community, "joined": false, "requested": true }),
    ))
}

/// Sends `frame` to the owner and every member whose roles grant `kick_members` or
/// `administrator` (but not to `skip`, who was told already).
async fn tell_answerers(
    s: &AppState,
    community: Snowflake,
    frame: &Frame,
    skip: Option<Snowflake>,
) -> Result<(), ApiError> {
    let store = &s.ctx.store;
    let Some(record) = store.community_by_id(community).await? else {
        return Ok(());
    };
    let roles = store.community_roles(community).await?;
    let answering: Vec<Snowflake> = roles
        .iter()
        .filter(|r| !r.is_everyone())
        .filter(|r| {
            r.permissions
                .intersects(Permissions::KICK_MEMBERS | Permissions::ADMINISTRATOR)
        })
        .map(|r| r.id)
        .collect();
    let mut told = vec![record.owner_id];
    if !answering.is_empty() {
        let mut after = None;
        loop {
            let page = store
                .community_members(community, after, AUDIENCE_PAGE)
                .await?;
            let full = u32::try_from(page.len()).is_ok_and(|n| n == AUDIENCE_PAGE);
            after = page.last().map(|m| m.user_id);
            told.extend(
                page.iter()
                    .filter(|m| m.roles.iter().any(|r| answering.contains(r)))
                    .map(|m| m.user_id),
            );
            if !full {
                break;
            }
        }
    }
    told.sort_unstable();
    told.dedup();
    for user in told.into_iter().filter(|u| Some(*u) != skip) {
        notify_user(&s.ctx, user, frame);
    }
    Ok(())
}

async fn list(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    q: PageQuery,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::KICK_MEMBERS, "see requests to join")?;
    requests_page(&s, id, q).await
}

/// A page of the requests to join `scope` (a community, or a room outside communities):
/// `[{userId, username, createdAt}]` by user id, `hasMore`.
pub(super) async fn requests_page(
    s: &AppState,
    scope: Snowflake,
    q: PageQuery,
) -> Result<Response, ApiError> {
    let limit = validate::page_limit(q.limit, 100, MAX_PAGE)?;
    let page = s.ctx.store.join_requests(scope, q.after, limit).await?;
    let has_more = u32::try_from(page.len()).is_ok_and(|n| n == limit);
    let names = usernames(s, page.iter().map(|r| r.user_id)).await?;
    let views: Vec<serde_json::Value> = page
        .iter()
        .zip(names)
        .map(|(r, username)| {
            serde_json::json!({
                "userId": r.user_id,
                "username": username,
                "createdAt": rfc3339(r.created_at),
            })
        })
        .collect();
    page_reply(&views, has_more)
}

/// Accepts or declines `target`'s request; a requester may decline (withdraw) their own.
async fn answer(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    accept: bool,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let store = &s.ctx.store;
    let withdrawal = !accept && target == user.id;
    if withdrawal {
        // The requester is no member: they see only their own request.
        if store.community_by_id(id).await?.is_none() {
            return Err(ApiError::not_found("request"));
        }
    } else {
        let seen = seen(&s, &user, id).await?;
        seen.require(Permissions::KICK_MEMBERS, "answer requests to join")?;
    }
    let Some(request) = store.take_join_request(id, target).await? else {
        return Err(ApiError::not_found("request"));
    };
    // Banned meanwhile: the request goes, nobody joins.
    let accepted = accept && store.ban(id, target).await?.is_none();
    if accepted && store.community_member(id, target).await?.is_none() {
        let member = CommunityMember {
            community_id: id,
            user_id: target,
            roles: Vec::new(),
            timed_out_until: None,
            joined_at: now_ms(),
            voice_muted: false,
            voice_deafened: false,
        };
        store.put_community_member(&member).await?;
    }
    if !withdrawal {
        let action = match accepted {
            true => "member.join_accept",
            false => "member.join_decline",
        };
        let after = serde_json::json!({ "inviteCode": request.invite_code });
        let change = Change::new(id, user.id, action, Some(target), reason);
        record(&s, change.states(None, Some(after))).await?;
    }
    let event = JoinDecided {
        community_id: id,
        user_id: target,
        accepted,
        by: user.id,
    };
    let frame = frame::event(events::JOIN_DECIDED, &event);
    notify_user(&s.ctx, target, &frame);
    let state = s.clone();
    tokio::spawn(async move {
        if let Err(e) = tell_answerers(&state, id, &frame, Some(target)).await {
            tracing::warn!(community = %id, error = %e.0.message, "join decision not announced");
        }
    });
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "communityId": id, "userId": target, "accepted": accepted }),
    ))
}
