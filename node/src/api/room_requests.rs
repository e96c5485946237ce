//! Approval of joins in rooms outside communities: a room with `requireApproval` turns
//! `POST /rooms/:code/join` into a request ([`request`]) that its admins list
//! (`GET /rooms/:id/join-requests`), accept (`PUT …/join-requests/:userId`: the room adds the
//! member as a join by code does) or decline (`DELETE`; the requester may withdraw their
//! own). The requests are stored as a community's are (`community_join_requests`, keyed by
//! the room's id: ids never collide). Admins hear `room:join_request`, the requester and the
//! admins `room:join_decided`.

use voiceflow_actors::remote::notify_user;
use voiceflow_actors::room::{Author, RoomMsg};
use voiceflow_schema::{JoinRequest, Role, RoomRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::v1::community::{RoomJoinDecided, RoomJoinRequested, events};
use voiceflow_wire::v1::frame::{self, Frame};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::join_requests::{PageQuery, requests_page};
use super::rooms::require_admin;
use super::{authed, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let list = warp::path!("rooms" / Snowflake / "join-requests")
        .and(warp::get())
        .and(s())
        .and(warp::query::<PageQuery>())
        .then(|id, s: AppState, u: AuthUser, q: PageQuery| async move {
            respond(list(s, u, id, q).await)
        });
    let accept = warp::path!("rooms" / Snowflake / "join-requests" / Snowflake)
        .and(warp::put())
        .and(s())
        .then(|id, target, s: AppState, u: AuthUser| async move {
            respond(answer(s, u, (id, target), true).await)
        });
    let decline = warp::path!("rooms" / Snowflake / "join-requests" / Snowflake)
        .and(warp::delete())
        .and(s())
        .then(|id, target, s: AppState, u: AuthUser| async move {
            respond(answer(s, u, (id, target), false).await)
        });
    list.or(accept).unify().or(decline).unify()
}

/// `POST /rooms/:code/join` on a room that requires approval, by a non-member: the request
/// is stored (an earlier pending one stays), its admins are told, and the caller gets 202.
pub(super) async fn request(
    s: &AppState,
    user: &AuthUser,
    room: &RoomRecord,
    username: String,
) -> Result<Response, ApiError> {
    let request = JoinRequest {
        community_id: room.id,
        user_id: user.id,
        invite_code: room.join_code.clone(),
        created_at: now_ms(),
    };
    s.ctx.store.put_join_request(&request).await?;
    let event = RoomJoinRequested {
        room_id: room.id,
        user_id: user.id,
        username,
        created_at: rfc3339(request.created_at),
    };
    tell_admins(s, room.id, &frame::event(events::ROOM_JOIN_REQUEST, &event)).await?;
    Ok(ok(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "roomId": room.id, "joined": false, "requested": true }),
    ))
}

/// Sends `frame` to every admin of `room` (a room has at most `maxUsers` members).
async fn tell_admins(s: &AppState, room: Snowflake, frame: &Frame) -> Result<(), ApiError> {
    for member in s.ctx.store.room_members(room).await? {
        if member.role == Role::Admin {
            notify_user(&s.ctx, member.user_id, frame);
        }
    }
    Ok(())
}

async fn list(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    q: PageQuery,
) -> Result<Response, ApiError> {
    require_admin(&s, &user, id).await?;
    requests_page(&s, id, q).await
}

/// Accepts (the room adds the member, as a join by code does; refused like one, e.g. when
/// the room is full) or declines `target`'s request; a requester may withdraw their own.
async fn answer(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    accept: bool,
) -> Result<Response, ApiError> {
    let withdrawal = !accept && target == user.id;
    if !withdrawal {
        require_admin(&s, &user, id).await?;
    }
    let Some(_) = s.ctx.store.take_join_request(id, target).await? else {
        return Err(ApiError::not_found("request"));
    };
    if accept {
        let Some(account) = s.ctx.store.user_by_id(target).await? else {
            return Err(ApiError::not_found("user"));
        };
        let author = Author {
            user_id: target,
            username: account.username,
        };
        s.ctx
            .directory
            .call(id, |reply| RoomMsg::AddMember { author, reply })
            .await?;
    }
    let event = RoomJoinDecided {
        room_id: id,
        user_id: target,
        accepted: accept,
        by: user.id,
    };
    let frame = frame::event(events::ROOM_JOIN_DECIDED, &event);
    notify_user(&s.ctx, target, &frame);
    tell_admins(&s, id, &frame).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "roomId": id, "userId": target, "accepted": accept }),
    ))
}
