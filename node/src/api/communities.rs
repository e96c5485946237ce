//! Communities over REST: `POST /communities`, `GET /communities` (the caller's),
//! `GET`/`PATCH`/`DELETE /communities/:id`, and the route of `GET /communities/:id/members`
//! (served by `member_list.rs`). Roles are in `roles.rs`. A community the caller is not a member of answers NOT_FOUND, whether it exists
//! or not, so its existence does not leak; what a member may do is computed by
//! `voiceflow_actors::permissions` from the stored roles.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_actors::permissions::{CommunityRoles, MemberGrants};
use voiceflow_schema::{CommunityMember, CommunityRecord, RoleRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::channel_effects::{delete_all, permissions_changed, remove_from_channels};
use super::member_list::MembersQuery;
use super::roles::RoleView;
use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::rest_limits::UserBucket;
use crate::state::AppState;

/// A community as its members see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommunityView {
    id: Snowflake,
    name: String,
    description: String,
    icon_id: Option<Snowflake>,
    owner_id: Snowflake,
    created_at: String,
    updated_at: String,
    require_approval: bool,
}

impl From<&CommunityRecord> for CommunityView {
    fn from(c: &CommunityRecord) -> Self {
        CommunityView {
            id: c.id,
            name: c.name.clone(),
            description: c.description.clone(),
            icon_id: c.icon,
            owner_id: c.owner_id,
            created_at: voiceflow_wire::time::rfc3339(c.created_at),
            updated_at: voiceflow_wire::time::rfc3339(c.updated_at),
            require_approval: c.require_approval,
        }
    }
}

/// One community with its roles and what the caller may do in it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CommunityDetail {
    #[serde(flatten)]
    community: CommunityView,
    roles: Vec<RoleView>,
    /// The caller's permissions across the community (before channel overrides).
    permissions: Permissions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    description: Option<String>,
    require_approval: Option<bool>,
}

/// A community seen by one of its members: the records and what the member may do.
pub(super) struct Seen {
    pub(super) community: CommunityRecord,
    pub(super) roles: Vec<RoleRecord>,
    pub(super) grants: CommunityRoles,
    pub(super) me: MemberGrants,
}

impl Seen {
    /// What the caller may do across the community.
    pub(super) fn base(&self) -> Permissions {
        self.grants.base(&self.me)
    }

    /// FORBIDDEN unless the caller holds `permission` (owners and administrators hold all).
    pub(super) fn require(&self, permission: Permissions, what: &str) -> Result<(), ApiError> {
        match self.base().contains(permission) {
            true => Ok(()),
            false => Err(ApiError::forbidden(format!("you may not {what}"))),
        }
    }
}

/// The community `id` as `user` (a member) sees it; NOT_FOUND for anyone else.
pub(super) async fn seen(s: &AppState, user: &AuthUser, id: Snowflake) -> Result<Seen, ApiError> {
    let store = &s.ctx.store;
    let (Some(community), Some(member)) = (
        store.community_by_id(id).await?,
        store.community_member(id, user.id).await?,
    ) else {
        return Err(ApiError::not_found("community"));
    };
    let roles = store.community_roles(id).await?;
    let grants = CommunityRoles::of(&community, &roles);
    Ok(Seen {
        community,
        roles,
        grants,
        me: MemberGrants::from(&member),
    })
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let create = warp::path!("communities")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            // Communities and rooms share the creation bucket.
            match s.rest.user(UserBucket::RoomCreate, u.id) {
                Ok(()) => respond(create(s, u, b).await),
                Err(limited) => limited.response(UserBucket::RoomCreate.what()),
            }
        });
    let mine = warp::path!("communities")
        .and(warp::get())
        .and(s())
        .then(|s: AppState, u: AuthUser| async move { respond(mine(s, u).await) });
    let get = warp::path!("communities" / Snowflake)
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(get(s, u, id).await) });
    let patch = warp::path!("communities" / Snowflake)
        .and(warp::patch())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(patch(s, u, id, b, r).await)
            },
        );
    let delete = warp::path!("communities" / Snowflake)
        .and(warp::delete())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(delete(s, u, id).await) });
    let leave = warp::path!("communities" / Snowflake / "members" / "me")
        .and(warp::delete())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(leave(s, u, id).await) });
    let kick = warp::path!("communities" / Snowflake / "members" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(kick(s, u, id, target, r).await)
            },
        );
    let members = warp::path!("communities" / Snowflake / "members")
        .and(warp::get())
        .and(s())
        .and(warp::query::<MembersQuery>())
        .then(|id, s: AppState, u: AuthUser, q: MembersQuery| async move {
            respond(super::member_list::members(s, u, id, q).await)
        });
    create
        .or(mine)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(members)
        .unify()
        .or(leave)
        .unify()
        .or(kick)
        .unify()
}

fn check_fields(name: Option<&str>, description: Option<&str>) -> Result<(), ApiError> {
    if let Some(name) = name {
        validate::length("name", name, 1, 100)?;
    }
    if let Some(description) = description {
        validate::length("description", description, 0, 1000)?;
    }
    Ok(())
}

async fn create(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = parse(&body)?;
    let name = b.name.trim().to_owned();
    check_fields(Some(&name), Some(&b.description))?;
    let now = now_ms();
    let id = s.ctx.ids.next_id();
    let community = CommunityRecord {
        id,
        name,
        description: b.description,
        icon: None,
        owner_id: user.id,
        created_at: now,
        updated_at: now,
        require_approval: false,
    };
    let everyone = RoleRecord {
        community_id: id,
        id,
        name: "@everyone".into(),
        color: 0,
        position: 0,
        permissions: Permissions::EVERYONE_DEFAULT,
        created_at: now,
    };
    let owner = CommunityMember {
        community_id: id,
        user_id: user.id,
        roles: Vec::new(),
        timed_out_until: None,
        joined_at: now,
        voice_muted: false,
        voice_deafened: false,
    };
    s.ctx
        .store
        .create_community(&community, &everyone, &owner)
        .await?;
    Ok(ok(StatusCode::CREATED, &CommunityView::from(&community)))
}

async fn mine(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let mut views = Vec::new();
    for id in s.ctx.store.user_communities(user.id).await? {
        // An index entry whose community is gone (a delete in progress) is skipped.
        if let Some(community) = s.ctx.store.community_by_id(id).await? {
            views.push(CommunityView::from(&community));
        }
    }
    Ok(ok(StatusCode::OK, &views))
}

async fn get(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let detail = CommunityDetail {
        community: CommunityView::from(&seen.community),
        roles: seen.roles.iter().map(RoleView::from).collect(),
        permissions: seen.base(),
    };
    Ok(ok(StatusCode::OK, &detail))
}

async fn patch(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: PatchBody = parse(&body)?;
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::MANAGE_COMMUNITY, "edit this community")?;
    let name = b.name.map(|n| n.trim().to_owned());
    check_fields(name.as_deref(), b.description.as_deref())?;
    let mut community = seen.community.clone();
    if let Some(name) = name {
        community.name = name;
    }
    if let Some(description) = b.description {
        community.description = description;
    }
    if let Some(approval) = b.require_approval {
        community.require_approval = approval;
    }
    community.updated_at = now_ms();
    s.ctx.store.update_community(&community).await?;
    let view = CommunityView::from(&community);
    let change = Change::new(id, user.id, "community.update", Some(id), reason).states(
        serde_json::to_value(CommunityView::from(&seen.community)).ok(),
        serde_json::to_value(&view).ok(),
    );
    record(&s, change).await?;
    Ok(ok(StatusCode::OK, &view))
}

async fn delete(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    if seen.community.owner_id != user.id {
        return Err(ApiError::forbidden("only the owner may delete a community"));
    }
    delete_all(&s, id, user.id).await?;
    s.ctx.store.delete_community(id).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "communityId": id }),
    ))
}

/// The current names of `users` (`None` for an account that is gone), read concurrently: a
/// page waits one round trip, not one per row.
pub(super) async fn usernames(
    s: &AppState,
    users: impl Iterator<Item = Snowflake>,
) -> Result<Vec<Option<String>>, ApiError> {
    let store = &s.ctx.store;
    let reads = users.map(|user| async move {
        Ok::<_, ApiError>(store.user_by_id(user).await?.map(|u| u.username))
    });
    futures_util::future::try_join_all(reads).await
}

/// A page: `{"success": true, "data": views, "hasMore"}`.
pub(super) fn page_reply<T: Serialize>(views: &[T], has_more: bool) -> Result<Response, ApiError> {
    page_reply_with(views, has_more, None)
}

/// A page with the cursor of the next one, if any (`nextAfter`), for lists whose cursor is
/// not an id the client already has.
pub(super) fn page_reply_with<T: Serialize>(
    views: &[T],
    has_more: bool,
    next_after: Option<String>,
) -> Result<Response, ApiError> {
    let mut fields = serde_json::Map::new();
    let data = serde_json::to_value(views).map_err(ApiError::internal)?;
    fields.insert("data".into(), data);
    fields.insert("hasMore".into(), has_more.into());
    if let Some(next) = next_after {
        fields.insert("nextAfter".into(), next.into());
    }
    Ok(crate::error::ok_page(fields))
}

async fn leave(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    if seen.community.owner_id == user.id {
        return Err(ApiError::field(
            "communityId",
            "the owner cannot leave; delete the community instead",
        ));
    }
    s.ctx.store.remove_community_member(id, user.id).await?;
    remove_from_channels(&s, id, user.id, None).await?;
    permissions_changed(&s, id).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "communityId": id, "left": true }),
    ))
}

async fn kick(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    target: Snowflake,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::KICK_MEMBERS, "kick members")?;
    let Some(member) = s.ctx.store.community_member(id, target).await? else {
        return Err(ApiError::not_found("member"));
    };
    if !seen.grants.may_moderate(
        &seen.me,
        &MemberGrants::from(&member),
        Permissions::KICK_MEMBERS,
    ) {
        return Err(ApiError::forbidden(
            "you may only kick members ranked below you (never the owner or yourself)",
        ));
    }
    s.ctx.store.remove_community_member(id, target).await?;
    remove_from_channels(&s, id, target, Some(user.id)).await?;
    permissions_changed(&s, id).await?;
    let change = Change::new(id, user.id, "member.kick", Some(target), reason)
        .states(Some(serde_json::json!({ "roles": member.roles })), None);
    record(&s, change).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "communityId": id, "userId": target, "removed": true }),
    ))
}
