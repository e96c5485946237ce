//! Mentions and notification settings: `GET /users/me/mentions`, the settings of
//! `/users/me/notification-settings` (the default), `/rooms/:id/notification-settings` and
//! `/communities/:id/notification-settings`, and what `GET /users/me/rooms` adds per room
//! (`mentionCount`, `notifications`).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_actors::room::view_of;
use voiceflow_schema::{DEFAULT_SCOPE, MentionRecord, MessageRecord, NotificationSettingRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::notify::{EffectiveNotification, NotificationSetting};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::scan::{self, ScanLimits};
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// Most mentions one page holds.
const MAX_PAGE: u32 = 100;
/// Most index rows one request looks at (rows of edited-away, deleted or unreadable
/// mentions are skipped) before answering with what it found.
const MAX_SCAN: u32 = 1_000;
/// Latest `muteUntil` accepted (Unix ms; the year 10000).
const MAX_MUTE_UNTIL: u64 = 253_402_300_800_000;

#[derive(Deserialize)]
struct MentionQuery {
    before: Option<Snowflake>,
    limit: Option<u32>,
}

/// One mention as listed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MentionView {
    room_id: Snowflake,
    message: voiceflow_wire::v1::server::MessageView,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let mentions = warp::path!("users" / "me" / "mentions")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(warp::query::<MentionQuery>())
        .then(|s: AppState, u: AuthUser, q: MentionQuery| async move {
            respond(mentions(s, u, q).await)
        });
    let get = warp::path!("users" / "me" / "notification-settings")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(|s: AppState, u: AuthUser| async move { respond(get_settings(s, u).await) });
    let put_default = warp::path!("users" / "me" / "notification-settings")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(json_body(limit))
        .then(|s: AppState, u: AuthUser, b: Bytes| async move {
            respond(put(s, u, Scope::Default, b).await)
        });
    let put_room = warp::path!("rooms" / Snowflake / "notification-settings")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(json_body(limit))
        .then(|id, s: AppState, u: AuthUser, b: Bytes| async move {
            respond(put(s, u, Scope::Room(id), b).await)
        });
    let put_community = warp::path!("communities" / Snowflake / "notification-settings")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(json_body(limit))
        .then(|id, s: AppState, u: AuthUser, b: Bytes| async move {
            respond(put(s, u, Scope::Community(id), b).await)
        });
    mentions
        .or(get)
        .unify()
        .or(put_default)
        .unify()
        .or(put_room)
        .unify()
        .or(put_community)
        .unify()
}

/// `GET /users/me/mentions?before&limit`: messages that reach the user (by name, a role
/// they hold, `@everyone`, or `@here` while they were online: each a row of their index),
/// newest first, from rooms they may still read; edited-away and deleted ones are left out.
async fn mentions(s: AppState, user: AuthUser, q: MentionQuery) -> Result<Response, ApiError> {
    let limit = super::validate::page_limit(q.limit, 50, MAX_PAGE)? as usize;
    let limits = ScanLimits {
        limit,
        max_scan: MAX_SCAN,
        page: MAX_PAGE,
    };
    let mut index = MentionIndex {
        s: &s,
        user: &user,
        rooms: HashMap::new(),
    };
    scan::newest_first(&mut index, q.before, limits)
        .await?
        .into_page()
}

/// A user's mention index, filtered by what still reaches them.
struct MentionIndex<'a> {
    s: &'a AppState,
    user: &'a AuthUser,
    /// Per room: the roles the user holds there, or `None` if they may not read it.
    rooms: HashMap<Snowflake, Option<Vec<Snowflake>>>,
}

impl scan::Filtered for MentionIndex<'_> {
    type Entry = MentionRecord;
    type Item = MentionView;

    async fn read(
        &mut self,
        before: Option<Snowflake>,
        n: u32,
    ) -> Result<Vec<MentionRecord>, ApiError> {
        Ok(self
            .s
            .ctx
            .store
            .user_mentions(self.user.id, before, n)
            .await?)
    }

    fn id_of(row: &MentionRecord) -> Snowflake {
        row.message_id
    }

    async fn keep(&mut self, row: MentionRecord) -> Result<Option<MentionView>, ApiError> {
        let (s, user) = (self.s, self.user);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.rooms.entry(row.room_id) {
            let held = match may_read(s, user, row.room_id).await? {
                true => Some(roles_in(s, user.id, row.room_id).await?),
                false => None,
            };
            slot.insert(held);
        }
        let Some(Some(held)) = self.rooms.get(&row.room_id) else {
            return Ok(None);
        };
        let Some(message) = s.ctx.store.message(row.room_id, row.message_id).await? else {
            return Ok(None);
        };
        // The row says it reached them (an `@here` only those online then); the message
        // says whether it still does.
        let still = message.deleted_at.is_none() && mentions_user(&message, user.id, held);
        Ok(still.then(|| MentionView {
            room_id: row.room_id,
            message: view_of(&message),
        }))
    }
}

/// The roles `user` holds in the community of room `room` (none outside communities).
async fn roles_in(
    s: &AppState,
    user: Snowflake,
    room: Snowflake,
) -> Result<Vec<Snowflake>, ApiError> {
    Ok(match s.ctx.store.channel_community(room).await? {
        Some(c) => s
            .ctx
            .store
            .community_member(c, user)
            .await?
            .map(|m| m.roles)
            .unwrap_or_default(),
        None => Vec::new(),
    })
}

/// Whether `user` may still read room `id`: a channel they may view, or a room they are a
/// member of. A refusal is `false`; a storage failure is passed on.
async fn may_read(s: &AppState, user: &AuthUser, id: Snowflake) -> Result<bool, ApiError> {
    match super::channels::channel_access(s, user, id).await {
        Ok(Some(_)) => return Ok(true),
        Ok(None) => {}
        Err(e) if e.0.code.is_transient() => return Err(e),
        Err(_) => return Ok(false),
    }
    Ok(s.ctx.store.member(id, user.id).await?.is_some())
}

/// Where a setting applies.
#[derive(Clone, Copy)]
enum Scope {
    Default,
    Room(Snowflake),
    Community(Snowflake),
}

/// A setting as clients see it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeView {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Snowflake>,
    #[serde(flatten)]
    setting: NotificationSetting,
}

/// `GET /users/me/notification-settings`: the default and every room and community set.
/// Rooms and communities are told apart by what the ids are.
async fn get_settings(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let rows = s.ctx.store.notification_settings(user.id).await?;
    let mut default = NotificationSetting::default();
    let (mut rooms, mut communities) = (Vec::new(), Vec::new());
    for row in rows {
        let view = ScopeView {
            id: Some(row.scope_id),
            setting: row.setting,
        };
        if row.scope_id == DEFAULT_SCOPE {
            default = row.setting;
        } else if s.ctx.store.community_by_id(row.scope_id).await?.is_some() {
            communities.push(view);
        } else {
            rooms.push(view);
        }
    }
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "default": default, "rooms": rooms, "communities": communities }),
    ))
}

/// `PUT …/notification-settings` `{level, muteUntil}` (each `null` or absent: inherit).
async fn put(s: AppState, user: AuthUser, scope: Scope, body: Bytes) -> Result<Response, ApiError> {
    let setting: NotificationSetting = parse(&body)?;
    if setting.mute_until.is_some_and(|m| m > MAX_MUTE_UNTIL) {
        return Err(ApiError::field(
            "muteUntil",
            "muteUntil is a time in Unix milliseconds before the year 10000",
        ));
    }
    let scope_id = match scope {
        Scope::Default => DEFAULT_SCOPE,
        Scope::Room(id) => {
            if !may_read(&s, &user, id).await? {
                return Err(ApiError::not_found("room"));
            }
            id
        }
        Scope::Community(id) => {
            super::communities::seen(&s, &user, id).await?;
            id
        }
    };
    let row = NotificationSettingRecord {
        user_id: user.id,
        scope_id,
        setting,
    };
    s.ctx.store.put_notification_setting(&row).await?;
    let id = (scope_id != DEFAULT_SCOPE).then_some(scope_id);
    Ok(ok(StatusCode::OK, &ScopeView { id, setting }))
}

/// What `GET /users/me/rooms` needs to know once per request: the user's settings and
/// their roles per community.
pub(super) struct RoomsContext {
    settings: HashMap<Snowflake, NotificationSetting>,
    roles: HashMap<Snowflake, Vec<Snowflake>>,
    /// The messages of the user's mention index, read the first time an `@here` needs it
    /// (an `@here` counts only for those it reached: a row each).
    indexed: Option<HashSet<Snowflake>>,
}

impl RoomsContext {
    /// Reads the user's settings.
    pub(super) async fn load(s: &AppState, user: Snowflake) -> Result<RoomsContext, ApiError> {
        let settings = s
            .ctx
            .store
            .notification_settings(user)
            .await?
            .into_iter()
            .map(|r| (r.scope_id, r.setting))
            .collect();
        Ok(RoomsContext {
            settings,
            roles: HashMap::new(),
            indexed: None,
        })
    }

    /// Adds `mentionCount` and `notifications` (the effective setting, with the room's own
    /// as `override`) to a room's view; `after` are the messages after the read marker.
    pub(super) async fn annotate(
        &mut self,
        s: &AppState,
        user: Snowflake,
        room: Snowflake,
        after: &[MessageRecord],
        view: &mut serde_json::Value,
    ) -> Result<(), ApiError> {
        let community = s.ctx.store.channel_community(room).await?;
        let roles: &[Snowflake] = match community {
            Some(c) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = self.roles.entry(c) {
                    let member = s.ctx.store.community_member(c, user).await?;
                    slot.insert(member.map(|m| m.roles).unwrap_or_default());
                }
                self.roles.get(&c).map_or(&[], Vec::as_slice)
            }
            None => &[],
        };
        let mut count = 0;
        for m in after {
            let counted = m.user_id != user
                && m.deleted_at.is_none()
                && m.kind != MessageType::System
                && mentions_user(m, user, roles);
            if !counted {
                continue;
            }
            if m.extra.mentions_here && !m.extra.mentions.contains(&user) {
                if self.indexed.is_none() {
                    let kept = s.config.mentions.kept_per_user;
                    let rows = s.ctx.store.user_mentions(user, None, kept).await?;
                    self.indexed = Some(rows.into_iter().map(|r| r.message_id).collect());
                }
                if !self.indexed.as_ref().is_some_and(|ids| ids.contains(&m.id)) {
                    continue;
                }
            }
            count += 1;
        }
        view["mentionCount"] = count.into();
        let own = self.settings.get(&room).copied();
        let effective = EffectiveNotification::resolve(
            own.as_ref(),
            community.and_then(|c| self.settings.get(&c)),
            self.settings.get(&DEFAULT_SCOPE),
        );
        view["notifications"] = serde_json::json!({
            "level": effective.level,
            "muteUntil": effective.mute_until,
            "override": own.unwrap_or_default(),
        });
        Ok(())
    }
}

/// Whether `message` mentions `user` (who holds `roles`): by id, by one of the roles, or
/// `@everyone`/`@here`.
pub(super) fn mentions_user(message: &MessageRecord, user: Snowflake, roles: &[Snowflake]) -> bool {
    let extra = &message.extra;
    extra.mentions_everyone
        || extra.mentions.contains(&user)
        || extra.mention_roles.iter().any(|r| roles.contains(r))
}
