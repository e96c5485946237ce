//! Message history and REST posting: `GET /rooms/:id/messages`, `POST /messages`,
//! `DELETE /messages/:id`. Posting goes through the room actor like a WebSocket send, so REST
//! and live clients share one order and one durability rule.

use std::collections::HashMap;

use bytes::Bytes;
use voiceflow_actors::room::{Author, Reply, RoomMsg, view_of};
use voiceflow_schema::MessageRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::SendMessage;
use voiceflow_wire::v1::server::MessageView;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::rooms::current_username;
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, ok_page, respond};
use crate::state::AppState;

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
    before: Option<String>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let history = warp::path!("rooms" / Snowflake / "messages")
        .and(warp::get())
        .and(s())
        .and(warp::query::<HistoryQuery>())
        .then(|id, s: AppState, u: AuthUser, q: HistoryQuery| async move {
            respond(history(s, u, id, q).await)
        });
    let post = warp::path!("messages")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            // The same per-user bucket as `message:send`.
            match s.limits.message(u.id) {
                Ok(()) => respond(post(s, u, b).await),
                Err(limited) => limited.response("messages"),
            }
        });
    let delete = warp::path!("messages" / Snowflake)
        .and(warp::delete())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move {
            // The same per-user bucket as `message:delete` (edits, deletions, reactions).
            match s.limits.action(u.id) {
                Ok(()) => respond(delete(s, u, id).await),
                Err(limited) => limited.response("edits, deletions and reactions"),
            }
        });
    history.or(post).unify().or(delete).unify()
}

async fn history(
    s: AppState,
    user: AuthUser,
    room: Snowflake,
    q: HistoryQuery,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "limit must be 1-100"));
    }
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            Snowflake::parse(text)
                .ok_or_else(|| ApiError::field("before", "before must be a message id"))?,
        ),
    };
    let Some(record) = s.ctx.store.room_by_id(room).await? else {
        return Err(ApiError::not_found("room"));
    };
    // A community channel: whoever may view it (NOT_FOUND for anyone else).
    let channel = super::channels::channel_access(&s, &user, room).await?;
    if channel.is_none() && !member_or_guest(&s, &user, &record).await? {
        return Err(ApiError::forbidden(
            "only members may read a room's history",
        ));
    }
    let mut page = s.ctx.store.messages_before(room, before, limit + 1).await?;
    let has_more = page.len() > limit as usize;
    page.truncate(limit as usize);
    hide_deleted_parents(&s, room, &mut page).await?;
    let views: Vec<MessageView> = page.iter().map(view_of).collect();
    let mut fields = serde_json::Map::new();
    fields.insert(
        "data".into(),
        serde_json::to_value(views).map_err(ApiError::internal)?,
    );
    fields.insert("hasMore".into(), has_more.into());
    Ok(ok_page(fields))
}

/// Whether `user` may read `room`'s messages (history, search): in a community channel,
/// whoever may view it; in another room, its members, and guests if it takes them (not those
/// it banned).
pub(super) async fn may_read(
    s: &AppState,
    user: &AuthUser,
    room: &voiceflow_schema::RoomRecord,
) -> Result<bool, ApiError> {
    match super::channels::channel_access(s, user, room.id).await {
        Ok(Some(_)) => Ok(true),
        Ok(None) => member_or_guest(s, user, room).await,
        Err(e) if e.0.code == voiceflow_wire::ErrorCode::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A room that is not a community channel: its members, and guests if it takes them.
async fn member_or_guest(
    s: &AppState,
    user: &AuthUser,
    room: &voiceflow_schema::RoomRecord,
) -> Result<bool, ApiError> {
    let guest = room.settings.allow_guests && !room.banned.contains(&user.id);
    Ok(guest || s.ctx.store.member(room.id, user.id).await?.is_some())
}

/// A reply quotes a snippet of its parent as it was when the reply was sent; once the parent
/// is deleted, the snippet goes too (the reply still says what it answered).
async fn hide_deleted_parents(
    s: &AppState,
    room: Snowflake,
    page: &mut [MessageRecord],
) -> Result<(), ApiError> {
    let mut deleted: HashMap<Snowflake, bool> = page
        .iter()
        .map(|m| (m.id, m.deleted_at.is_some()))
        .collect();
    for message in page.iter_mut() {
        let Some(parent) = message.extra.reply_to.as_ref().map(|r| r.id) else {
            continue;
        };
        let gone = match deleted.get(&parent) {
            Some(gone) => *gone,
            None => {
                let stored = s.ctx.store.message(room, parent).await?;
                let gone = stored.is_none_or(|p| p.deleted_at.is_some());
                deleted.insert(parent, gone);
                gone
            }
        };
        if gone && let Some(reply) = message.extra.reply_to.as_mut() {
            reply.snippet.clear();
        }
    }
    Ok(())
}

async fn post(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let post: SendMessage = parse(&body)?;
    let room = post.room_id;
    let author = Author {
        user_id: user.id,
        username: current_username(&s, &user).await?,
    };
    let sent = s
        .ctx
        .directory
        .call(room, |port| RoomMsg::Post {
            author,
            post,
            reply: Reply::Port(port),
        })
        .await?;
    Ok(ok(StatusCode::CREATED, &sent))
}

async fn delete(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let room = s
        .ctx
        .store
        .message_room(id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    s.ctx
        .directory
        .call(room, |reply| RoomMsg::DeleteMessage {
            message_id: id,
            by: user.id,
            reply,
        })
        .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "messageId": id }),
    ))
}
