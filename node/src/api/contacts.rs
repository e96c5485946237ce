//! Blocks and contact settings: `GET /users/me/blocks`, `PUT`/`DELETE
//! /users/me/blocks/:userId`, `GET`/`PATCH /users/me/settings`. Blocked people cannot open a
//! direct conversation with the user, call them or post in their conversation; the contact
//! setting says who else may (everyone, people who share a room, nobody). Clients hide
//! blocked people's messages in shared rooms using the block list.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::{BlockRecord, ContactPolicy, UserSettings};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// A blocked person as the list shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockView {
    user_id: Snowflake,
    /// Their current name (`null` if the account is gone).
    username: Option<String>,
    created_at: String,
}

/// The user's privacy settings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsView {
    /// Who may open a direct conversation or call: everyone, shared_room or nobody.
    contact: ContactPolicy,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsPatch {
    #[serde(default)]
    contact: Option<String>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let list = warp::path!("users" / "me" / "blocks")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(|s: AppState, u: AuthUser| async move { respond(list(s, u).await) });
    let block = warp::path!("users" / "me" / "blocks" / Snowflake)
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(
            |id: Snowflake, s: AppState, u: AuthUser| async move { respond(block(s, u, id).await) },
        );
    let unblock =
        warp::path!("users" / "me" / "blocks" / Snowflake)
            .and(warp::delete())
            .and(with_state(state.clone()))
            .and(authed(state.clone()))
            .then(|id: Snowflake, s: AppState, u: AuthUser| async move {
                respond(unblock(s, u, id).await)
            });
    let settings = warp::path!("users" / "me" / "settings")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(|s: AppState, u: AuthUser| async move { respond(get_settings(s, u).await) });
    let patch_settings = warp::path!("users" / "me" / "settings")
        .and(warp::patch())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            respond(patch_settings(s, u, b).await)
        });
    list.or(block)
        .unify()
        .or(unblock)
        .unify()
        .or(settings)
        .unify()
        .or(patch_settings)
        .unify()
}

async fn view(s: &AppState, block: BlockRecord) -> Result<BlockView, ApiError> {
    let username = s
        .ctx
        .store
        .user_by_id(block.blocked_id)
        .await?
        .map(|u| u.username);
    Ok(BlockView {
        user_id: block.blocked_id,
        username,
        created_at: voiceflow_wire::time::rfc3339(block.created_at),
    })
}

async fn list(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let mut views = Vec::new();
    for block in s.ctx.store.blocks(user.id).await? {
        views.push(view(&s, block).await?);
    }
    Ok(ok(StatusCode::OK, &views))
}

async fn block(s: AppState, user: AuthUser, other: Snowflake) -> Result<Response, ApiError> {
    if other == user.id {
        return Err(ApiError::field("userId", "you cannot block yourself"));
    }
    if s.ctx.store.user_by_id(other).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let record = BlockRecord {
        user_id: user.id,
        blocked_id: other,
        created_at: now_ms(),
    };
    s.ctx.store.put_block(&record).await?;
    let stored = s.ctx.store.block(user.id, other).await?.unwrap_or(record);
    Ok(ok(StatusCode::OK, &view(&s, stored).await?))
}

async fn unblock(s: AppState, user: AuthUser, other: Snowflake) -> Result<Response, ApiError> {
    s.ctx.store.remove_block(user.id, other).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "userId": other, "blocked": false }),
    ))
}

async fn current(s: &AppState, user: Snowflake) -> Result<UserSettings, ApiError> {
    Ok(s.ctx
        .store
        .user_settings(user)
        .await?
        .unwrap_or(UserSettings {
            user_id: user,
            contact: ContactPolicy::default(),
        }))
}

async fn get_settings(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let settings = current(&s, user.id).await?;
    Ok(ok(
        StatusCode::OK,
        &SettingsView {
            contact: settings.contact,
        },
    ))
}

async fn patch_settings(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let patch: SettingsPatch = parse(&body)?;
    let mut settings = current(&s, user.id).await?;
    if let Some(contact) = patch.contact {
        settings.contact = ContactPolicy::parse(&contact).ok_or_else(|| {
            ApiError::field("contact", "contact must be everyone, shared_room or nobody")
        })?;
        s.ctx.store.put_user_settings(&settings).await?;
    }
    Ok(ok(
        StatusCode::OK,
        &SettingsView {
            contact: settings.contact,
        },
    ))
}
