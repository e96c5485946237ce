//! What a room's admins do to its membership: rotate the join code
//! (`POST /rooms/:id/join-code`: the old code stops working at once) and remove a member
//! (`DELETE /rooms/:id/members/:userId`: their live sessions leave the room and get
//! `room:removed`).

use voiceflow_actors::room::RoomMsg;
use voiceflow_schema::{Role, RoomKind, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::rooms::{RoomView, join_code, require_admin};
use super::{authed, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let rotate = warp::path!("rooms" / Snowflake / "join-code")
        .and(warp::post())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(rotate(s, u, id).await) });
    let remove = warp::path!("rooms" / Snowflake / "members" / Snowflake)
        .and(warp::delete())
        .and(s())
        .then(|id, member, s: AppState, u: AuthUser| async move {
            respond(remove(s, u, id, member).await)
        });
    rotate.or(remove).unify()
}

/// A new join code for the room (admins only); answers the room with it.
async fn rotate(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let mut room = require_admin(&s, &user, id).await?;
    if room.kind == RoomKind::Dm {
        return Err(ApiError::field(
            "roomId",
            "a direct conversation has no join code",
        ));
    }
    for _ in 0..8 {
        room.join_code = join_code();
        room.updated_at = now_ms();
        match s.ctx.store.update_room(&room).await {
            Ok(()) => {
                s.ctx
                    .directory
                    .send_if_running(id, RoomMsg::Updated(Box::new(room.clone())));
                metrics::counter!("voiceflow_join_codes_rotated_total").increment(1);
                return Ok(ok(StatusCode::OK, &RoomView::from(&room)));
            }
            Err(StoreError::Conflict { field: "join_code" }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("could not find a free join code"))
}

/// Removes `member` from the room (admins only; not another admin, not yourself: leave).
async fn remove(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    member: Snowflake,
) -> Result<Response, ApiError> {
    let room = require_admin(&s, &user, id).await?;
    if room.kind == RoomKind::Dm {
        return Err(ApiError::field(
            "roomId",
            "nobody can be removed from a direct conversation",
        ));
    }
    if member == user.id {
        return Err(ApiError::field(
            "userId",
            "to leave a room yourself, use POST /rooms/:id/leave",
        ));
    }
    match s.ctx.store.member(id, member).await? {
        None => return Err(ApiError::not_found("member")),
        Some(m) if m.role == Role::Admin => {
            return Err(ApiError::forbidden("a room admin cannot be removed"));
        }
        Some(_) => {}
    }
    s.ctx
        .directory
        .call(id, |reply| RoomMsg::RemoveMember {
            user_id: member,
            removed_by: Some(user.id),
            reply,
        })
        .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "roomId": id, "userId": member, "removed": true }),
    ))
}
