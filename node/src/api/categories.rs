//! Categories of a community's channels over REST: `POST /communities/:id/categories`,
//! `PATCH`/`DELETE /communities/:id/categories/:categoryId` (all with `MANAGE_CHANNELS`).
//! They are listed with the channels (`GET /communities/:id/channels`); a channel names its
//! category in `categoryId`. Deleting a category leaves its channels, in no category.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::CategoryRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::communities::seen;
use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// Most categories in one community.
const MAX_CATEGORIES: usize = 50;

/// A category as members see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CategoryView {
    pub(super) id: Snowflake,
    name: String,
    pub(super) position: u32,
}

impl From<&CategoryRecord> for CategoryView {
    fn from(c: &CategoryRecord) -> Self {
        CategoryView {
            id: c.id,
            name: c.name.clone(),
            position: c.position,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CategoryBody {
    name: Option<String>,
    position: Option<u32>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let create = warp::path!("communities" / Snowflake / "categories")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(put(s, u, (id, None), b, r).await)
            },
        );
    let edit = warp::path!("communities" / Snowflake / "categories" / Snowflake)
        .and(warp::patch())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, category, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(put(s, u, (id, Some(category)), b, r).await)
            },
        );
    let delete = warp::path!("communities" / Snowflake / "categories" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, category, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(delete(s, u, (id, category), r).await)
            },
        );
    create.or(edit).unify().or(delete).unify()
}

/// Creates a category (`category` `None`) or edits one.
async fn put(
    s: AppState,
    user: AuthUser,
    (id, category): (Snowflake, Option<Snowflake>),
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::MANAGE_CHANNELS, "manage categories")?;
    let b: CategoryBody = parse(&body)?;
    let existing = s.ctx.store.community_categories(id).await?;
    let before = category.and_then(|c| existing.iter().find(|e| e.id == c));
    let mut row = match (category, before) {
        (Some(_), Some(before)) => before.clone(),
        (Some(_), None) => return Err(ApiError::not_found("category")),
        (None, _) if existing.len() >= MAX_CATEGORIES => {
            return Err(ApiError::field(
                "limit",
                format!("a community may have at most {MAX_CATEGORIES} categories"),
            ));
        }
        (None, _) => CategoryRecord {
            community_id: id,
            id: s.ctx.ids.next_id(),
            name: String::new(),
            position: existing.iter().map(|c| c.position + 1).max().unwrap_or(0),
        },
    };
    if let Some(name) = b.name {
        row.name = name.trim().to_owned();
    } else if category.is_none() {
        return Err(ApiError::field("name", "a category needs a name"));
    }
    validate::length("name", &row.name, 1, 100)?;
    if let Some(position) = b.position {
        row.position = position;
    }
    s.ctx.store.put_category(&row).await?;
    let view = CategoryView::from(&row);
    let (action, status) = match category {
        None => ("category.create", StatusCode::CREATED),
        Some(_) => ("category.update", StatusCode::OK),
    };
    let before = before.and_then(|b| serde_json::to_value(CategoryView::from(b)).ok());
    let after = serde_json::to_value(&view).ok();
    let change = Change::new(id, user.id, action, Some(row.id), reason);
    record(&s, change.states(before, after)).await?;
    Ok(ok(status, &view))
}

async fn delete(
    s: AppState,
    user: AuthUser,
    (id, category): (Snowflake, Snowflake),
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::MANAGE_CHANNELS, "manage categories")?;
    let existing = s.ctx.store.community_categories(id).await?;
    let Some(before) = existing.iter().find(|c| c.id == category) else {
        return Err(ApiError::not_found("category"));
    };
    s.ctx.store.remove_category(id, category).await?;
    let before = serde_json::to_value(CategoryView::from(before)).ok();
    let change = Change::new(id, user.id, "category.delete", Some(category), reason);
    record(&s, change.states(before, None)).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "categoryId": category }),
    ))
}
