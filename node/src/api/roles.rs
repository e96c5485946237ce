//! A community's roles over REST: `GET`/`POST /communities/:id/roles`,
//! `PATCH`/`DELETE /communities/:id/roles/:roleId`, and granting or taking a role away:
//! `PUT`/`DELETE /communities/:id/members/:userId/roles/:roleId`.
//!
//! Managing roles needs `MANAGE_ROLES`, and only roles ranked below one's own highest role
//! (the owner's rank is above every role); nobody grants or takes away a permission they do
//! not hold themselves (owners and administrators hold all). `@everyone` keeps its name and
//! position and cannot be deleted or granted.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::RoleRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::channel_effects::{member_changed, permissions_changed};
use super::communities::{Seen, seen};
use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// A role as clients see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoleView {
    id: Snowflake,
    name: String,
    color: u32,
    position: u32,
    permissions: Permissions,
    /// Whether this is `@everyone` (its id is the community's).
    everyone: bool,
}

impl From<&RoleRecord> for RoleView {
    fn from(r: &RoleRecord) -> Self {
        RoleView {
            id: r.id,
            name: r.name.clone(),
            color: r.color,
            position: r.position,
            permissions: r.permissions,
            everyone: r.is_everyone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleBody {
    name: Option<String>,
    color: Option<u32>,
    position: Option<u32>,
    permissions: Option<Permissions>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let list = warp::path!("communities" / Snowflake / "roles")
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(list(s, u, id).await) });
    let create = warp::path!("communities" / Snowflake / "roles")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(create(s, u, id, b, r).await)
            },
        );
    let edit = warp::path!("communities" / Snowflake / "roles" / Snowflake)
        .and(warp::patch())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, role, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(edit(s, u, id, role, b, r).await)
            },
        );
    let delete = warp::path!("communities" / Snowflake / "roles" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, role, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(delete(s, u, id, role, r).await)
            },
        );
    let grant =
        warp::path!("communities" / Snowflake / "members" / Snowflake / "roles" / Snowflake)
            .and(warp::put())
            .and(s())
            .and(reason())
            .then(
                |id, user, role, s: AppState, u: AuthUser, r: Option<String>| async move {
                    respond(set_granted(s, u, (id, user, role), true, r).await)
                },
            );
    let revoke =
        warp::path!("communities" / Snowflake / "members" / Snowflake / "roles" / Snowflake)
            .and(warp::delete())
            .and(s())
            .and(reason())
            .then(
                |id, user, role, s: AppState, u: AuthUser, r: Option<String>| async move {
                    respond(set_granted(s, u, (id, user, role), false, r).await)
                },
            );
    list.or(create)
        .unify()
        .or(edit)
        .unify()
        .or(delete)
        .unify()
        .or(grant)
        .unify()
        .or(revoke)
        .unify()
}

impl Seen {
    /// FORBIDDEN unless the caller may manage `role` (`@everyone` needs `MANAGE_ROLES` only).
    fn may_manage(&self, role: &RoleRecord) -> Result<(), ApiError> {
        self.require(Permissions::MANAGE_ROLES, "manage roles")?;
        if !role.is_everyone() && !self.grants.may_manage_role(&self.me, role.id) {
            return Err(ApiError::forbidden(
                "you may only manage roles ranked below your highest role",
            ));
        }
        Ok(())
    }

    /// FORBIDDEN if `changed` holds a permission the caller does not hold.
    fn may_change(&self, changed: Permissions) -> Result<(), ApiError> {
        let missing = changed - self.base();
        match missing.names().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::forbidden(format!(
                "you cannot grant or take away `{name}`, which you do not hold"
            ))),
        }
    }

    /// 400 `position` unless it is above `@everyone` and below the caller's rank.
    fn check_position(&self, position: u32) -> Result<(), ApiError> {
        if position == 0 || position >= self.grants.rank(&self.me) {
            return Err(ApiError::field(
                "position",
                "position must be at least 1 and below your highest role",
            ));
        }
        Ok(())
    }

    fn role(&self, id: Snowflake) -> Result<&RoleRecord, ApiError> {
        self.roles
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ApiError::not_found("role"))
    }
}

/// The audit entry of a change to `role`.
fn role_change(
    user: &AuthUser,
    role: &RoleRecord,
    action: &'static str,
    reason: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Change {
    Change::new(role.community_id, user.id, action, Some(role.id), reason).states(before, after)
}

fn check_fields(name: Option<&str>, color: Option<u32>) -> Result<(), ApiError> {
    if let Some(name) = name {
        validate::length("name", name, 1, 100)?;
    }
    if color.is_some_and(|c| c > 0x00ff_ffff) {
        return Err(ApiError::field(
            "color",
            "color must be 0xRRGGBB (0-16777215)",
        ));
    }
    Ok(())
}

async fn list(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let views: Vec<RoleView> = seen.roles.iter().map(RoleView::from).collect();
    Ok(ok(StatusCode::OK, &views))
}

async fn create(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: RoleBody = parse(&body)?;
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::MANAGE_ROLES, "manage roles")?;
    let name = b
        .name
        .map(|n| n.trim().to_owned())
        .ok_or_else(|| ApiError::field("name", "name is required"))?;
    check_fields(Some(&name), b.color)?;
    let position = b.position.unwrap_or(1);
    seen.check_position(position)?;
    let permissions = b.permissions.unwrap_or_default();
    seen.may_change(permissions)?;
    let max = s.config.limits.max_roles_per_community;
    let count = seen.roles.iter().filter(|r| !r.is_everyone()).count();
    if u32::try_from(count).unwrap_or(u32::MAX) >= max {
        return Err(ApiError::field(
            "limit",
            format!("a community may have at most {max} roles"),
        ));
    }
    let role = RoleRecord {
        community_id: id,
        id: s.ctx.ids.next_id(),
        name,
        color: b.color.unwrap_or(0),
        position,
        permissions,
        created_at: now_ms(),
    };
    s.ctx.store.put_role(&role).await?;
    let view = RoleView::from(&role);
    let after = serde_json::to_value(&view).ok();
    record(
        &s,
        role_change(&user, &role, "role.create", reason, None, after),
    )
    .await?;
    Ok(ok(StatusCode::CREATED, &view))
}

async fn edit(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    role_id: Snowflake,
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: RoleBody = parse(&body)?;
    let seen = seen(&s, &user, id).await?;
    let mut role = seen.role(role_id)?.clone();
    seen.may_manage(&role)?;
    if role.is_everyone() && (b.name.is_some() || b.position.is_some()) {
        return Err(ApiError::field(
            "name",
            "@everyone keeps its name and position; only its permissions change",
        ));
    }
    let name = b.name.map(|n| n.trim().to_owned());
    check_fields(name.as_deref(), b.color)?;
    if let Some(position) = b.position {
        seen.check_position(position)?;
        role.position = position;
    }
    if let Some(permissions) = b.permissions {
        seen.may_change(permissions ^ role.permissions)?;
        role.permissions = permissions;
    }
    if let Some(name) = name {
        role.name = name;
    }
    if let Some(color) = b.color {
        role.color = color;
    }
    s.ctx.store.put_role(&role).await?;
    permissions_changed(&s, id).await?;
    let view = RoleView::from(&role);
    let before = seen.role(role_id).ok().map(RoleView::from);
    let before = before.and_then(|b| serde_json::to_value(b).ok());
    let after = serde_json::to_value(&view).ok();
    record(
        &s,
        role_change(&user, &role, "role.update", reason, before, after),
    )
    .await?;
    Ok(ok(StatusCode::OK, &view))
}

async fn delete(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    role_id: Snowflake,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let role = seen.role(role_id)?;
    seen.may_manage(role)?;
    if role.is_everyone() {
        return Err(ApiError::field("roleId", "@everyone cannot be deleted"));
    }
    s.ctx.store.delete_role(id, role_id).await?;
    permissions_changed(&s, id).await?;
    let before = serde_json::to_value(RoleView::from(role)).ok();
    record(
        &s,
        role_change(&user, role, "role.delete", reason, before, None),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "roleId": role_id }),
    ))
}

/// Grants (or takes away) role `role_id` of community `id` to member `target`.
async fn set_granted(
    s: AppState,
    user: AuthUser,
    (id, target, role_id): (Snowflake, Snowflake, Snowflake),
    granted: bool,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let role = seen.role(role_id)?;
    seen.may_manage(role)?;
    if role.is_everyone() {
        return Err(ApiError::field("roleId", "everyone has @everyone"));
    }
    let Some(mut member) = s.ctx.store.community_member(id, target).await? else {
        return Err(ApiError::not_found("member"));
    };
    let had = member.roles.contains(&role_id);
    if granted && !had {
        member.roles.push(role_id);
    } else if !granted && had {
        member.roles.retain(|r| *r != role_id);
    }
    if granted != had {
        s.ctx.store.put_community_member(&member).await?;
        permissions_changed(&s, id).await?;
        member_changed(&s, id, target);
        let action = match granted {
            true => "member.role_add",
            false => "member.role_remove",
        };
        let after = Some(serde_json::json!({ "roleId": role_id }));
        let change = Change::new(id, user.id, action, Some(target), reason).states(None, after);
        record(&s, change).await?;
    }
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "userId": target, "roleId": role_id, "granted": granted }),
    ))
}
