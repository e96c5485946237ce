//! `POST /dms {userId}`: the direct conversation between the caller and another user, a
//! private two-member room of kind `dm` (where their 1:1 calls happen). Its join code is
//! derived from the pair, so the store's unique code makes creation idempotent even when both
//! people open the conversation at the same moment; such codes cannot be used to join.

use bytes::Bytes;
use voiceflow_schema::{Membership, Role, RoomKind, RoomRecord, RoomSettings, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::call::OpenDm;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::rooms::{RoomView, current_username};
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::rest_limits::UserBucket;
use crate::state::AppState;

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    warp::path!("dms")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            match s.rest.user(UserBucket::DmOpen, u.id) {
                Ok(()) => respond(open(s, u, b).await),
                Err(limited) => limited.response(UserBucket::DmOpen.what()),
            }
        })
}

/// The join code of the pair's conversation (not alphanumeric: join-by-code refuses it).
fn dm_code(a: Snowflake, b: Snowflake) -> String {
    let (lo, hi) = if a.0 < b.0 { (a, b) } else { (b, a) };
    format!("dm-{lo}-{hi}")
}

async fn open(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let b: OpenDm = parse(&body)?;
    if b.user_id == user.id {
        return Err(ApiError::field(
            "userId",
            "a conversation needs another person",
        ));
    }
    let other = s
        .ctx
        .store
        .user_by_id(b.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // Blocks and the other person's contact setting (also for a conversation that exists).
    voiceflow_actors::contacts::may_contact(s.ctx.store.as_ref(), user.id, other.id).await?;
    let code = dm_code(user.id, other.id);
    if let Some(room) = s.ctx.store.room_by_code(&code).await? {
        ensure_members(&s, &room, &[user.id, other.id]).await?;
        return Ok(ok(StatusCode::OK, &RoomView::from(&room)));
    }
    let me = current_username(&s, &user).await?;
    let mut names = [(user.id, me), (other.id, other.username)];
    names.sort_by_key(|(id, _)| id.0);
    let now = now_ms();
    let room = RoomRecord {
        id: s.ctx.ids.next_id(),
        name: format!("{}, {}", names[0].1, names[1].1),
        description: String::new(),
        max_users: 2,
        settings: RoomSettings {
            is_public: false,
            ..RoomSettings::default()
        },
        join_code: code.clone(),
        created_by: user.id,
        created_at: now,
        updated_at: now,
        kind: RoomKind::Dm,
        banned: Vec::new(),
    };
    let creator = membership(room.id, user.id, now);
    match s.ctx.store.create_room(&room, &creator).await {
        Ok(()) => {
            ensure_members(&s, &room, &[other.id]).await?;
            Ok(ok(StatusCode::CREATED, &RoomView::from(&room)))
        }
        Err(StoreError::Conflict { field: "join_code" }) => {
            // The other side created it a moment ago.
            let room = s
                .ctx
                .store
                .room_by_code(&code)
                .await?
                .ok_or_else(|| ApiError::internal("conversation vanished while opened"))?;
            ensure_members(&s, &room, &[user.id, other.id]).await?;
            Ok(ok(StatusCode::OK, &RoomView::from(&room)))
        }
        Err(e) => Err(e.into()),
    }
}

fn membership(room_id: Snowflake, user_id: Snowflake, joined_at: u64) -> Membership {
    Membership {
        room_id,
        user_id,
        role: Role::Member,
        joined_at,
    }
}

/// Both people are members (a creation cut short may have written only the first). Rooms
/// load their members when they start; a new conversation's room has not started yet.
async fn ensure_members(
    s: &AppState,
    room: &RoomRecord,
    users: &[Snowflake],
) -> Result<(), ApiError> {
    for user in users {
        if s.ctx.store.member(room.id, *user).await?.is_none() {
            let m = membership(room.id, *user, now_ms());
            s.ctx.store.put_member(&m).await?;
        }
    }
    Ok(())
}
