//! A community's channels over REST: `GET`/`POST /communities/:id/channels`,
//! `PATCH`/`DELETE /communities/:id/channels/:channelId` (their overrides: `overwrites.rs`;
//! their categories: `categories.rs`; what a change of permissions does to them:
//! `channel_effects.rs`).
//!
//! A channel is a room (text, voice or stage) placed in the community; its room enforces the
//! community's permissions on every event (`actors::room::state::channel`). Here: creating,
//! editing and deleting one needs `MANAGE_CHANNELS` in it, overrides need `MANAGE_ROLES`
//! too, and a channel the caller may not view answers NOT_FOUND, as if it did not exist.
//! Every change reaches the audit log, and every change of who may do what reaches the
//! running channels of the community ([`permissions_changed`]).

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use voiceflow_actors::permissions::ChannelOverwrites;
use voiceflow_actors::room::RoomMsg;
use voiceflow_schema::{
    ChannelRecord, Membership, Role, RoomKind, RoomRecord, RoomSettings, StoreError,
};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::categories::CategoryView;
use super::communities::{Seen, seen};
use super::rooms::join_code;
use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// How many channels' records one request reads at a time.
const READS_IN_FLIGHT: usize = 16;

/// A channel as a member sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelView {
    id: Snowflake,
    community_id: Snowflake,
    name: String,
    description: String,
    kind: RoomKind,
    category_id: Option<Snowflake>,
    position: u32,
    /// Signed-in people outside the community may read it.
    allow_guests: bool,
    /// Messages are stored (`false`: delivered live, replayable for a short window, then
    /// gone).
    record_messages: bool,
    /// What the caller may do in it.
    permissions: Permissions,
}

impl ChannelView {
    fn of(room: &RoomRecord, placed: &ChannelRecord, permissions: Permissions) -> ChannelView {
        ChannelView {
            id: room.id,
            community_id: placed.community_id,
            name: room.name.clone(),
            description: room.description.clone(),
            kind: room.kind,
            category_id: placed.category_id,
            position: placed.position,
            allow_guests: room.settings.allow_guests,
            record_messages: room.settings.record_messages,
            permissions,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    name: String,
    kind: Option<RoomKind>,
    #[serde(default)]
    description: String,
    position: Option<u32>,
    category_id: Option<Snowflake>,
    #[serde(default)]
    allow_guests: bool,
    record_messages: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EditBody {
    name: Option<String>,
    description: Option<String>,
    position: Option<u32>,
    /// A category, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    category_id: Option<Option<Snowflake>>,
    allow_guests: Option<bool>,
    record_messages: Option<bool>,
}

/// A field that is present (possibly `null`), as opposed to absent (`None` by default).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// BAD_REQUEST unless `category` is one of community `id`'s.
async fn check_category(s: &AppState, id: Snowflake, category: Snowflake) -> Result<(), ApiError> {
    let categories = s.ctx.store.community_categories(id).await?;
    match categories.iter().any(|c| c.id == category) {
        true => Ok(()),
        false => Err(ApiError::field(
            "categoryId",
            "no such category in this community",
        )),
    }
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let list = warp::path!("communities" / Snowflake / "channels")
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(list(s, u, id).await) });
    let create = warp::path!("communities" / Snowflake / "channels")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(create(s, u, id, b, r).await)
            },
        );
    let edit = warp::path!("communities" / Snowflake / "channels" / Snowflake)
        .and(warp::patch())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, ch, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(edit(s, u, (id, ch), b, r).await)
            },
        );
    let delete = warp::path!("communities" / Snowflake / "channels" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, ch, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(delete(s, u, (id, ch), r).await)
            },
        );
    list.or(create).unify().or(edit).unify().or(delete).unify()
}

/// What the member `seen` may do in `channel`.
pub(super) async fn permissions_in(
    s: &AppState,
    seen: &Seen,
    channel: Snowflake,
) -> Result<Permissions, ApiError> {
    let rows = s.ctx.store.channel_overwrites(channel).await?;
    let overwrites = ChannelOverwrites::of(seen.community.id, &rows);
    Ok(seen.grants.in_channel(&seen.me, &overwrites, now_ms()))
}

/// The channel `channel` of community `id` as the caller sees it, with what they may do in
/// it; NOT_FOUND if it is not there or they may not view it.
pub(super) async fn visible(
    s: &AppState,
    seen: &Seen,
    channel: Snowflake,
) -> Result<(RoomRecord, ChannelRecord, Permissions), ApiError> {
    let store = &s.ctx.store;
    let (placed, room, permissions) = tokio::try_join!(
        async { Ok::<_, ApiError>(store.community_channels(seen.community.id).await?) },
        async { Ok::<_, ApiError>(store.room_by_id(channel).await?) },
        permissions_in(s, seen, channel),
    )?;
    let placed = placed.into_iter().find(|c| c.channel_id == channel);
    match (placed, room) {
        (Some(placed), Some(room)) if permissions.contains(Permissions::VIEW_CHANNEL) => {
            Ok((room, placed, permissions))
        }
        _ => Err(ApiError::not_found("channel")),
    }
}

/// FORBIDDEN unless `held` contains `need`.
pub(super) fn require(held: Permissions, need: Permissions, what: &str) -> Result<(), ApiError> {
    match held.contains(need) {
        true => Ok(()),
        false => Err(ApiError::forbidden(format!("you may not {what}"))),
    }
}

/// What a signed-in user may do in room `room`, if it is a community channel: NOT_FOUND
/// (as if it did not exist) unless they may view it. `None` for rooms outside communities,
/// whose own membership rules apply. Someone outside the community may view a channel that
/// takes guests (read-only) unless banned from the community.
pub(super) async fn channel_access(
    s: &AppState,
    user: &AuthUser,
    room: Snowflake,
) -> Result<Option<Permissions>, ApiError> {
    let store = &s.ctx.store;
    let Some(community) = store.channel_community(room).await? else {
        return Ok(None);
    };
    let seen = match seen(s, user, community).await {
        Ok(seen) => seen,
        // Not a member (a storage failure is passed on as it is).
        Err(e) if e.0.code != voiceflow_wire::ErrorCode::NotFound => return Err(e),
        Err(_) => {
            let (record, ban) =
                tokio::try_join!(store.room_by_id(room), store.ban(community, user.id))?;
            return match record {
                Some(r) if r.settings.allow_guests && ban.is_none() => {
                    Ok(Some(Permissions::VIEW_CHANNEL))
                }
                _ => Err(ApiError::not_found("room")),
            };
        }
    };
    let held = permissions_in(s, &seen, room).await?;
    match held.contains(Permissions::VIEW_CHANNEL) {
        true => Ok(Some(held)),
        false => Err(ApiError::not_found("room")),
    }
}

async fn list(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let placed = s.ctx.store.community_channels(id).await?;
    let seen = &seen;
    let s = &s;
    let mut views: Vec<ChannelView> = stream::iter(placed)
        .map(|placed| async move {
            let (room, held) = tokio::try_join!(
                async { Ok::<_, ApiError>(s.ctx.store.room_by_id(placed.channel_id).await?) },
                permissions_in(s, seen, placed.channel_id),
            )?;
            Ok::<_, ApiError>(room.and_then(|room| {
                held.contains(Permissions::VIEW_CHANNEL)
                    .then(|| ChannelView::of(&room, &placed, held))
            }))
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    views.sort_by_key(|v| (v.position, v.id));
    // Categories with a channel the caller sees, or all for who manages channels.
    let all = seen.base().contains(Permissions::MANAGE_CHANNELS);
    let mut categories: Vec<CategoryView> = s
        .ctx
        .store
        .community_categories(id)
        .await?
        .iter()
        .filter(|c| all || views.iter().any(|v| v.category_id == Some(c.id)))
        .map(CategoryView::from)
        .collect();
    categories.sort_by_key(|c| (c.position, c.id));
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "categories": categories, "channels": views }),
    ))
}

async fn create(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::MANAGE_CHANNELS, "create channels")?;
    let b: CreateBody = parse(&body)?;
    let name = b.name.trim().to_owned();
    validate::length("name", &name, 1, 100)?;
    validate::length("description", &b.description, 0, 500)?;
    let kind = b.kind.unwrap_or_default();
    if let Some(category) = b.category_id {
        check_category(&s, id, category).await?;
    }
    if kind == RoomKind::Dm {
        return Err(ApiError::field("kind", "kind must be text, voice or stage"));
    }
    let existing = s.ctx.store.community_channels(id).await?;
    let max = s.config.limits.max_channels_per_community;
    if existing.len() >= max as usize {
        return Err(ApiError::field(
            "limit",
            format!("a community may have at most {max} channels"),
        ));
    }
    let now = now_ms();
    let mut room = RoomRecord {
        id: s.ctx.ids.next_id(),
        name,
        description: b.description,
        // A channel's members are its community's; the room's own cap does not apply.
        max_users: 500,
        // Reached through its community only: never listed, never joined by id or code
        // by someone who may not view it.
        settings: RoomSettings {
            is_public: false,
            allow_guests: b.allow_guests,
            record_messages: b.record_messages.unwrap_or(true),
            ..RoomSettings::default()
        },
        join_code: String::new(),
        created_by: user.id,
        created_at: now,
        updated_at: now,
        kind,
        banned: Vec::new(),
    };
    // The creator is its first member, with no room-level powers: a channel's rules are
    // the community's.
    let creator = Membership {
        room_id: room.id,
        user_id: user.id,
        role: Role::Member,
        joined_at: now,
    };
    let mut created = false;
    for _ in 0..8 {
        room.join_code = join_code();
        match s.ctx.store.create_room(&room, &creator).await {
            Ok(()) => {
                created = true;
                break;
            }
            Err(StoreError::Conflict { field: "join_code" }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if !created {
        return Err(ApiError::internal("could not find a free join code"));
    }
    let placed = ChannelRecord {
        community_id: id,
        channel_id: room.id,
        category_id: b.category_id,
        position: b
            .position
            .unwrap_or_else(|| existing.iter().map(|c| c.position + 1).max().unwrap_or(0)),
    };
    s.ctx.store.put_channel(&placed).await?;
    let held = permissions_in(&s, &seen, room.id).await?;
    let view = ChannelView::of(&room, &placed, held);
    let after = serde_json::to_value(&view).ok();
    let change = Change::new(id, user.id, "channel.create", Some(room.id), reason);
    record(&s, change.states(None, after)).await?;
    Ok(ok(StatusCode::CREATED, &view))
}

async fn edit(
    s: AppState,
    user: AuthUser,
    (id, channel): (Snowflake, Snowflake),
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let (mut room, mut placed, held) = visible(&s, &seen, channel).await?;
    require(held, Permissions::MANAGE_CHANNELS, "edit this channel")?;
    let b: EditBody = parse(&body)?;
    let before = serde_json::to_value(ChannelView::of(&room, &placed, held)).ok();
    if let Some(name) = b.name {
        let name = name.trim().to_owned();
        validate::length("name", &name, 1, 100)?;
        room.name = name;
    }
    if let Some(description) = b.description {
        validate::length("description", &description, 0, 500)?;
        room.description = description;
    }
    if let Some(guests) = b.allow_guests {
        room.settings.allow_guests = guests;
    }
    if let Some(record) = b.record_messages {
        room.settings.record_messages = record;
    }
    room.updated_at = now_ms();
    s.ctx.store.update_room(&room).await?;
    if let Some(Some(category)) = b.category_id {
        check_category(&s, id, category).await?;
    }
    if b.position.is_some() || b.category_id.is_some() {
        placed.position = b.position.unwrap_or(placed.position);
        placed.category_id = b.category_id.unwrap_or(placed.category_id);
        s.ctx.store.put_channel(&placed).await?;
    }
    s.ctx
        .directory
        .send_if_running(channel, RoomMsg::Updated(Box::new(room.clone())));
    let view = ChannelView::of(&room, &placed, held);
    let after = serde_json::to_value(&view).ok();
    let change = Change::new(id, user.id, "channel.update", Some(channel), reason);
    record(&s, change.states(before, after)).await?;
    Ok(ok(StatusCode::OK, &view))
}

async fn delete(
    s: AppState,
    user: AuthUser,
    (id, channel): (Snowflake, Snowflake),
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let (room, placed, held) = visible(&s, &seen, channel).await?;
    require(held, Permissions::MANAGE_CHANNELS, "delete this channel")?;
    let before = serde_json::to_value(ChannelView::of(&room, &placed, held)).ok();
    super::channel_effects::delete_channel(&s, id, channel, user.id).await?;
    let change = Change::new(id, user.id, "channel.delete", Some(channel), reason);
    record(&s, change.states(before, None)).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "channelId": channel }),
    ))
}
