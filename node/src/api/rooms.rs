//! `/rooms/*`: create, list, read, edit, delete, join by code, leave, members.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_actors::room::{Author, RoomMsg, view_of};
use voiceflow_schema::{Membership, Role, RoomKind, RoomRecord, RoomSettings, StoreError};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::{ErrorCode, Snowflake};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::accounts::forwarded_for;
use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, ok_page, respond};
use crate::rest_limits::UserBucket;
use crate::state::AppState;

/// Settings as clients send and see them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsView {
    #[serde(default = "yes")]
    is_public: bool,
    #[serde(default)]
    allow_guests: bool,
    #[serde(default)]
    require_approval: bool,
    #[serde(default = "yes")]
    record_messages: bool,
}

fn yes() -> bool {
    true
}

impl From<RoomSettings> for SettingsView {
    fn from(s: RoomSettings) -> Self {
        SettingsView {
            is_public: s.is_public,
            allow_guests: s.allow_guests,
            require_approval: s.require_approval,
            record_messages: s.record_messages,
        }
    }
}
impl From<SettingsView> for RoomSettings {
    fn from(s: SettingsView) -> Self {
        RoomSettings {
            is_public: s.is_public,
            allow_guests: s.allow_guests,
            require_approval: s.require_approval,
            record_messages: s.record_messages,
        }
    }
}

/// A room as clients see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomView {
    id: Snowflake,
    name: String,
    description: String,
    max_users: u32,
    settings: SettingsView,
    join_code: String,
    created_by: Snowflake,
    created_at: String,
    updated_at: String,
    kind: RoomKind,
}

impl From<&RoomRecord> for RoomView {
    fn from(r: &RoomRecord) -> Self {
        RoomView {
            id: r.id,
            name: r.name.clone(),
            description: r.description.clone(),
            max_users: r.max_users,
            settings: r.settings.into(),
            join_code: r.join_code.clone(),
            created_by: r.created_by,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            kind: r.kind,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_max_users")]
    max_users: u32,
    #[serde(default)]
    settings: Option<SettingsView>,
    /// `text` (default), `voice` or `stage`.
    #[serde(default)]
    kind: RoomKind,
}

fn default_max_users() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_users: Option<u32>,
    #[serde(default)]
    settings: Option<SettingsView>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
    limit: Option<u32>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let create = warp::path!("rooms")
        .and(warp::post())
        .and(s())
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            match s.rest.user(UserBucket::RoomCreate, u.id) {
                Ok(()) => respond(create(s, u, b).await),
                Err(limited) => limited.response(UserBucket::RoomCreate.what()),
            }
        });
    let list = warp::path!("rooms")
        .and(warp::get())
        .and(s())
        .and(warp::query::<PageQuery>())
        .then(|s: AppState, _u: AuthUser, q: PageQuery| async move { respond(list(s, q).await) });
    let get = warp::path!("rooms" / Snowflake)
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(get(s, u, id).await) });
    let patch =
        warp::path!("rooms" / Snowflake)
            .and(warp::patch())
            .and(s())
            .and(json_body(limit))
            .then(|id, s: AppState, u: AuthUser, b: Bytes| async move {
                respond(patch(s, u, id, b).await)
            });
    let delete = warp::path!("rooms" / Snowflake)
        .and(warp::delete())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(delete(s, u, id).await) });
    // Right or wrong, every code tried spends from the address's and the user's bucket
    // (`[limits] joins_per_min`): codes cannot be guessed faster than that.
    let join = warp::path!("rooms" / String / "join")
        .and(warp::post())
        .and(s())
        .and(crate::server::remote())
        .and(warp::header::headers_cloned())
        .then(
            |code: String, s: AppState, u: AuthUser, addr, headers: HeaderMap| async move {
                match s.rest.join(u.id, addr, forwarded_for(&headers)) {
                    Ok(()) => respond(join(s, u, code).await),
                    Err(limited) => limited.response("join attempts"),
                }
            },
        );
    let leave = warp::path!("rooms" / Snowflake / "leave")
        .and(warp::post())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(leave(s, u, id).await) });
    let members = warp::path!("rooms" / Snowflake / "members")
        .and(warp::get())
        .and(s())
        .then(|id, s: AppState, u: AuthUser| async move { respond(members(s, u, id).await) });
    let mine = warp::path!("users" / "me" / "rooms")
        .and(warp::get())
        .and(s())
        .then(|s: AppState, u: AuthUser| async move { respond(my_rooms(s, u).await) });
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(join)
        .unify()
        .or(leave)
        .unify()
        .or(members)
        .unify()
        .or(mine)
        .unify()
}

/// Short, unambiguous join codes (no 0/O, 1/I/L).
pub(super) fn join_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn create(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = parse(&body)?;
    let name = b.name.trim().to_owned();
    validate::length("name", &name, 3, 100)?;
    validate::length("description", &b.description, 0, 500)?;
    if !(2..=500).contains(&b.max_users) {
        return Err(ApiError::field("maxUsers", "maxUsers must be 2-500"));
    }
    let now = now_ms();
    let mut room = RoomRecord {
        id: s.ctx.ids.next_id(),
        name,
        description: b.description,
        max_users: b.max_users,
        settings: b.settings.map(Into::into).unwrap_or_default(),
        join_code: String::new(),
        created_by: user.id,
        created_at: now,
        updated_at: now,
        kind: b.kind,
        banned: Vec::new(),
    };
    let admin = Membership {
        room_id: room.id,
        user_id: user.id,
        role: Role::Admin,
        joined_at: now,
    };
    for _ in 0..8 {
        room.join_code = join_code();
        match s.ctx.store.create_room(&room, &admin).await {
            Ok(()) => return Ok(ok(StatusCode::CREATED, &RoomView::from(&room))),
            Err(StoreError::Conflict { field: "join_code" }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("could not find a free join code"))
}

async fn list(s: AppState, q: PageQuery) -> Result<Response, ApiError> {
    let page = q.page.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "limit must be 1-100"));
    }
    let offset = (page - 1).saturating_mul(u64::from(limit));
    let result = s.ctx.store.list_public_rooms(offset, limit).await?;
    let rooms: Vec<RoomView> = result.rooms.iter().map(RoomView::from).collect();
    let has_more = offset + (rooms.len() as u64) < result.total;
    let mut fields = serde_json::Map::new();
    fields.insert(
        "data".into(),
        serde_json::to_value(rooms).map_err(ApiError::internal)?,
    );
    fields.insert("total".into(), result.total.into());
    fields.insert("page".into(), page.into());
    fields.insert("limit".into(), limit.into());
    fields.insert("hasMore".into(), has_more.into());
    Ok(ok_page(fields))
}

/// The room and the user's membership in it (NOT_FOUND if there is no such room).
async fn room_and_membership(
    s: &AppState,
    user: &AuthUser,
    id: Snowflake,
) -> Result<(RoomRecord, Option<Membership>), ApiError> {
    let room = s
        .ctx
        .store
        .room_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let membership = s.ctx.store.member(id, user.id).await?;
    Ok((room, membership))
}

/// The room, if the user may see it: public rooms to anyone, private ones to members.
async fn visible_room(
    s: &AppState,
    user: &AuthUser,
    id: Snowflake,
) -> Result<RoomRecord, ApiError> {
    let channel = super::channels::channel_access(s, user, id).await?;
    match room_and_membership(s, user, id).await? {
        (room, _) if channel.is_some() => Ok(room),
        (room, None) if !room.settings.is_public => {
            Err(ApiError::forbidden("not a member of this room"))
        }
        (room, _) => Ok(room),
    }
}

/// The room, if the user is one of its admins.
pub(super) async fn require_admin(
    s: &AppState,
    user: &AuthUser,
    id: Snowflake,
) -> Result<RoomRecord, ApiError> {
    if super::channels::channel_access(s, user, id)
        .await?
        .is_some()
    {
        return Err(ApiError::forbidden(
            "a channel is managed through its community (/communities/:id/channels)",
        ));
    }
    match room_and_membership(s, user, id).await? {
        (room, Some(m)) if m.role == Role::Admin => Ok(room),
        _ => Err(ApiError::forbidden("only a room admin may do this")),
    }
}

async fn get(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let room = visible_room(&s, &user, id).await?;
    Ok(ok(StatusCode::OK, &RoomView::from(&room)))
}

async fn patch(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: PatchBody = parse(&body)?;
    let mut room = require_admin(&s, &user, id).await?;
    if let Some(name) = b.name {
        let name = name.trim().to_owned();
        validate::length("name", &name, 3, 100)?;
        room.name = name;
    }
    if let Some(description) = b.description {
        validate::length("description", &description, 0, 500)?;
        room.description = description;
    }
    if let Some(max) = b.max_users {
        if !(2..=500).contains(&max) {
            return Err(ApiError::field("maxUsers", "maxUsers must be 2-500"));
        }
        let members = s.ctx.store.room_members(id).await?.len() as u32;
        if max < members {
            return Err(ApiError::field(
                "maxUsers",
                format!("the room already has {members} members"),
            ));
        }
        room.max_users = max;
    }
    if let Some(settings) = b.settings {
        room.settings = settings.into();
    }
    room.updated_at = now_ms();
    s.ctx.store.update_room(&room).await?;
    // The room's owner, wherever it runs (a room not running reads the record when it starts).
    s.ctx
        .directory
        .send_if_running(id, RoomMsg::Updated(Box::new(room.clone())));
    Ok(ok(StatusCode::OK, &RoomView::from(&room)))
}

async fn delete(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    require_admin(&s, &user, id).await?;
    s.ctx
        .directory
        .call(id, |reply| RoomMsg::DeleteRoom { by: user.id, reply })
        .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "deleted": true, "roomId": id }),
    ))
}

async fn join(s: AppState, user: AuthUser, code: String) -> Result<Response, ApiError> {
    if code.is_empty() || code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no room has that join code",
        ));
    }
    let room = s
        .ctx
        .store
        .room_by_code(&code)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no room has that join code"))?;
    let author = Author {
        user_id: user.id,
        username: current_username(&s, &user).await?,
    };
    if room.settings.require_approval && s.ctx.store.member(room.id, user.id).await?.is_none() {
        if room.banned.contains(&user.id) {
            return Err(ApiError::forbidden("you were removed from this room"));
        }
        return super::room_requests::request(&s, &user, &room, author.username).await;
    }
    let reply = s
        .ctx
        .directory
        .call(room.id, |reply| RoomMsg::AddMember { author, reply })
        .await?;
    Ok(ok(StatusCode::OK, &reply))
}

async fn leave(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    if let Some(room) = s.ctx.store.room_by_id(id).await?
        && room.kind == RoomKind::Dm
    {
        return Err(ApiError::field(
            "roomId",
            "a direct conversation cannot be left",
        ));
    }
    s.ctx
        .directory
        .call(id, |reply| RoomMsg::RemoveMember {
            user_id: user.id,
            removed_by: None,
            reply,
        })
        .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "roomId": id, "left": true }),
    ))
}

/// Unread counts stop here (clients show "99+").
const UNREAD_CAP: u32 = 100;

/// `GET /users/me/rooms`: every room the user is a member of, with their role, the last
/// message, the read marker, how many messages from others came after it and how many of
/// those mention the user (`mentionCount`), and the room's notification setting.
async fn my_rooms(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let markers: std::collections::HashMap<Snowflake, Snowflake> = s
        .ctx
        .store
        .read_markers(user.id)
        .await?
        .into_iter()
        .map(|m| (m.room_id, m.message_id))
        .collect();
    let mut list = Vec::new();
    let mut notify = super::notify::RoomsContext::load(&s, user.id).await?;
    for m in s.ctx.store.user_rooms(user.id).await? {
        // A membership row can outlive a room deleted a moment ago; skip it.
        let Some(room) = s.ctx.store.room_by_id(m.room_id).await? else {
            continue;
        };
        let mut view = serde_json::to_value(RoomView::from(&room)).map_err(ApiError::internal)?;
        view["role"] = m.role.as_str().into();
        view["joinedAt"] = rfc3339(m.joined_at).into();
        let last = s.ctx.store.messages_before(room.id, None, 1).await?;
        view["lastMessage"] = match last.first() {
            Some(message) => serde_json::to_value(view_of(message)).map_err(ApiError::internal)?,
            None => serde_json::Value::Null,
        };
        // Never read anything: everything since joining counts.
        let read = markers.get(&room.id).copied();
        let from = read.unwrap_or_else(|| {
            Snowflake(Snowflake::lower_bound_for(m.joined_at).0.saturating_sub(1))
        });
        let after = s
            .ctx
            .store
            .messages_after(room.id, from, UNREAD_CAP)
            .await?;
        let unread = after
            .iter()
            .filter(|x| x.user_id != user.id && x.deleted_at.is_none())
            .filter(|x| x.kind != voiceflow_wire::v1::client::MessageType::System)
            .count();
        view["unreadCount"] = unread.into();
        view["unreadCapped"] = (after.len() as u32 >= UNREAD_CAP).into();
        view["lastReadMessageId"] = read.map(|r| r.to_string()).into();
        notify
            .annotate(&s, user.id, room.id, &after, &mut view)
            .await?;
        list.push(view);
    }
    Ok(ok(StatusCode::OK, &list))
}

async fn members(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    visible_room(&s, &user, id).await?;
    let list = s.ctx.directory.call(id, RoomMsg::Members).await?;
    Ok(ok(StatusCode::OK, &list))
}

/// Usernames can change after a token was issued; the stored one is the truth.
pub async fn current_username(s: &AppState, user: &AuthUser) -> Result<String, ApiError> {
    Ok(s.ctx
        .store
        .user_by_id(user.id)
        .await?
        .map(|u| u.username)
        .unwrap_or_else(|| user.username.clone()))
}
