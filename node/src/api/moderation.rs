//! Community moderation over REST: bans (`PUT`/`DELETE /communities/:id/bans/:userId`,
//! `GET /communities/:id/bans`), timeouts (`PUT /communities/:id/members/:userId/timeout`) and
//! server mute / deafen (`PUT /communities/:id/members/:userId/voice`) and moves between
//! voice channels (`POST …/voice/move`).
//! Kicks are in `communities.rs`. A moderator acts only on people ranked below them (never
//! the owner or themself), and every action goes to the audit log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_actors::permissions::MemberGrants;
use voiceflow_actors::remote::notify_user;
use voiceflow_actors::room::RoomMsg;
use voiceflow_schema::{BanRecord, RoomKind};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::v1::community::{VoiceModerated, events};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::channel_effects::{
    member_changed, permissions_changed, purge_messages, remove_from_channels,
};
use super::channels::channel_access;
use super::communities::{Seen, page_reply, seen, usernames};
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// Longest timeout: 28 days (as Discord's).
const MAX_TIMEOUT_SECS: u64 = 28 * 24 * 3600;
/// Most bans one page lists.
const MAX_PAGE: u32 = 1000;

/// A ban as moderators see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BanView {
    user_id: Snowflake,
    username: Option<String>,
    reason: Option<String>,
    banned_by: Snowflake,
    created_at: String,
}

#[derive(Deserialize)]
struct BansQuery {
    after: Option<Snowflake>,
    limit: Option<u32>,
}

/// Longest span of a banned member's messages deleted with the ban: 7 days (as Discord's).
const MAX_PURGE_SECS: u64 = 7 * 24 * 3600;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BanQuery {
    /// Delete the member's messages of this many last seconds in every channel.
    #[serde(default)]
    delete_message_secs: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimeoutBody {
    /// How long from now; 0 lifts a timeout.
    secs: u64,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let ban = warp::path!("communities" / Snowflake / "bans" / Snowflake)
        .and(warp::put())
        .and(s())
        .and(warp::query::<BanQuery>())
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, q: BanQuery, r: Option<String>| async move {
                respond(ban(s, u, (id, target), q, r).await)
            },
        );
    let unban = warp::path!("communities" / Snowflake / "bans" / Snowflake)
        .and(warp::delete())
        .and(s())
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, r: Option<String>| async move {
                respond(unban(s, u, id, target, r).await)
            },
        );
    let bans = warp::path!("communities" / Snowflake / "bans")
        .and(warp::get())
        .and(s())
        .and(warp::query::<BansQuery>())
        .then(|id, s: AppState, u: AuthUser, q: BansQuery| async move {
            respond(bans(s, u, id, q).await)
        });
    let timeout = warp::path!("communities" / Snowflake / "members" / Snowflake / "timeout")
        .and(warp::put())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(timeout(s, u, (id, target), b, r).await)
            },
        );
    let voice = warp::path!("communities" / Snowflake / "members" / Snowflake / "voice")
        .and(warp::put())
        .and(s())
        .and(json_body(limit))
        .and(reason())
        .then(
            |id, target, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                respond(voice(s, u, (id, target), b, r).await)
            },
        );
    let move_voice =
        warp::path!("communities" / Snowflake / "members" / Snowflake / "voice" / "move")
            .and(warp::post())
            .and(s())
            .and(json_body(limit))
            .and(reason())
            .then(
                |id, target, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                    respond(move_voice(s, u, (id, target), b, r).await)
                },
            );
    ban.or(unban)
        .unify()
        .or(bans)
        .unify()
        .or(timeout)
        .unify()
        .or(voice)
        .unify()
        .or(move_voice)
        .unify()
}

impl Seen {
    /// FORBIDDEN unless the caller holds `permission` and outranks `target` (a member or not).
    async fn may_moderate(
        &self,
        s: &AppState,
        target: Snowflake,
        permission: Permissions,
        what: &str,
    ) -> Result<(), ApiError> {
        self.require(permission, what)?;
        let member = s
            .ctx
            .store
            .community_member(self.community.id, target)
            .await?;
        let target_grants = match &member {
            Some(m) => MemberGrants::from(m),
            // Not a member: only the owner and oneself are protected.
            None => voiceflow_actors::permissions::MemberGrants {
                user: target,
                ..Default::default()
            },
        };
        if !self
            .grants
            .may_moderate(&self.me, &target_grants, permission)
        {
            return Err(ApiError::forbidden(format!(
                "you may only {what} people ranked below you (never the owner or yourself)"
            )));
        }
        Ok(())
    }
}

async fn ban(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    q: BanQuery,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    if q.delete_message_secs > MAX_PURGE_SECS {
        return Err(ApiError::field(
            "deleteMessageSecs",
            format!("deleteMessageSecs must be 0-{MAX_PURGE_SECS}"),
        ));
    }
    let seen = seen(&s, &user, id).await?;
    seen.may_moderate(&s, target, Permissions::BAN_MEMBERS, "ban")
        .await?;
    if s.ctx.store.user_by_id(target).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let record_reason = reason.as_ref().map(|r| r.chars().take(512).collect());
    let ban = BanRecord {
        community_id: id,
        user_id: target,
        reason: record_reason,
        banned_by: user.id,
        created_at: now_ms(),
    };
    s.ctx.store.put_ban(&ban).await?;
    remove_from_channels(&s, id, target, Some(user.id)).await?;
    permissions_changed(&s, id).await?;
    let purged = match q.delete_message_secs {
        0 => 0,
        secs => {
            let since = now_ms().saturating_sub(secs * 1000);
            purge_messages(&s, &seen.community, target, since).await?
        }
    };
    let after = serde_json::json!({
        "deleteMessageSecs": q.delete_message_secs,
        "messagesDeleted": purged,
    });
    let change = Change::new(id, user.id, "member.ban", Some(target), reason);
    record(&s, change.states(None, Some(after))).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({
            "communityId": id, "userId": target, "banned": true, "messagesDeleted": purged,
        }),
    ))
}

async fn unban(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    target: Snowflake,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::BAN_MEMBERS, "lift bans")?;
    if s.ctx.store.ban(id, target).await?.is_none() {
        return Err(ApiError::not_found("ban"));
    }
    s.ctx.store.remove_ban(id, target).await?;
    let change = Change::new(id, user.id, "member.unban", Some(target), reason);
    record(&s, change).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "communityId": id, "userId": target, "banned": false }),
    ))
}

async fn bans(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    q: BansQuery,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    seen.require(Permissions::BAN_MEMBERS, "see the bans")?;
    let limit = super::validate::page_limit(q.limit, 100, MAX_PAGE)?;
    let page = s.ctx.store.community_bans(id, q.after, limit).await?;
    let has_more = u32::try_from(page.len()).is_ok_and(|n| n == limit);
    let names = usernames(&s, page.iter().map(|b| b.user_id)).await?;
    let views: Vec<BanView> = page
        .into_iter()
        .zip(names)
        .map(|(b, username)| BanView {
            user_id: b.user_id,
            username,
            reason: b.reason,
            banned_by: b.banned_by,
            created_at: rfc3339(b.created_at),
        })
        .collect();
    page_reply(&views, has_more)
}

async fn timeout(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: TimeoutBody = parse(&body)?;
    if b.secs > MAX_TIMEOUT_SECS {
        return Err(ApiError::field(
            "secs",
            format!("secs must be 0-{MAX_TIMEOUT_SECS}"),
        ));
    }
    let seen = seen(&s, &user, id).await?;
    seen.may_moderate(&s, target, Permissions::TIMEOUT_MEMBERS, "time out")
        .await?;
    let Some(mut member) = s.ctx.store.community_member(id, target).await? else {
        return Err(ApiError::not_found("member"));
    };
    let until = (b.secs > 0).then(|| now_ms() + b.secs * 1000);
    member.timed_out_until = until;
    s.ctx.store.put_community_member(&member).await?;
    permissions_changed(&s, id).await?;
    member_changed(&s, id, target);
    let change = Change::new(id, user.id, "member.timeout", Some(target), reason).states(
        None,
        Some(serde_json::json!({ "timedOutUntil": until.map(rfc3339) })),
    );
    record(&s, change).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "userId": target, "timedOutUntil": until.map(rfc3339) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoiceBody {
    mute: Option<bool>,
    deafen: Option<bool>,
}

/// Server mute and deafen: in every voice channel of the community, at once (the channels
/// reload the member's grants), until lifted.
async fn voice(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: VoiceBody = parse(&body)?;
    if b.mute.is_none() && b.deafen.is_none() {
        return Err(ApiError::field("mute", "give mute, deafen or both"));
    }
    let seen = seen(&s, &user, id).await?;
    if b.mute.is_some() {
        seen.may_moderate(&s, target, Permissions::MUTE_MEMBERS, "mute")
            .await?;
    }
    if b.deafen.is_some() {
        seen.may_moderate(&s, target, Permissions::DEAFEN_MEMBERS, "deafen")
            .await?;
    }
    let Some(mut member) = s.ctx.store.community_member(id, target).await? else {
        return Err(ApiError::not_found("member"));
    };
    let before = serde_json::json!({ "mute": member.voice_muted, "deafen": member.voice_deafened });
    member.voice_muted = b.mute.unwrap_or(member.voice_muted);
    member.voice_deafened = b.deafen.unwrap_or(member.voice_deafened);
    s.ctx.store.put_community_member(&member).await?;
    permissions_changed(&s, id).await?;
    member_changed(&s, id, target);
    let after = serde_json::json!({ "mute": member.voice_muted, "deafen": member.voice_deafened });
    let change = Change::new(id, user.id, "member.voice", Some(target), reason);
    record(&s, change.states(Some(before), Some(after))).await?;
    let event = VoiceModerated {
        community_id: id,
        user_id: target,
        mute: member.voice_muted,
        deafen: member.voice_deafened,
        by: user.id,
    };
    notify_user(
        &s.ctx,
        target,
        &frame::event(events::VOICE_MODERATED, &event),
    );
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({
            "communityId": id, "userId": target,
            "mute": member.voice_muted, "deafen": member.voice_deafened,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MoveBody {
    from_channel_id: Snowflake,
    to_channel_id: Option<Snowflake>,
}

/// A voice or stage channel of community `id` that `user` may view: what they may do there.
async fn voice_channel(
    s: &AppState,
    user: &AuthUser,
    (id, channel): (Snowflake, Snowflake),
    field: &str,
) -> Result<Permissions, ApiError> {
    let in_community = s.ctx.store.channel_community(channel).await? == Some(id);
    let held = match in_community {
        true => channel_access(s, user, channel).await?,
        false => None,
    };
    let kind = s.ctx.store.room_by_id(channel).await?.map(|r| r.kind);
    match (held, kind) {
        (Some(held), Some(RoomKind::Voice | RoomKind::Stage)) => Ok(held),
        (Some(_), Some(RoomKind::Text)) => Err(ApiError::field(field, "not a voice channel")),
        _ => Err(ApiError::not_found("channel")),
    }
}

/// Moves a member out of a voice channel, into another one or nowhere: their sessions there
/// are disconnected at the channel's owner and told `voice:moved` (the client joins the
/// other channel itself, with its own rights there).
async fn move_voice(
    s: AppState,
    user: AuthUser,
    (id, target): (Snowflake, Snowflake),
    body: Bytes,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let b: MoveBody = parse(&body)?;
    let seen = seen(&s, &user, id).await?;
    seen.may_moderate(&s, target, Permissions::MOVE_MEMBERS, "move")
        .await?;
    let from = voice_channel(&s, &user, (id, b.from_channel_id), "fromChannelId").await?;
    if !from.contains(Permissions::MOVE_MEMBERS) {
        return Err(ApiError::forbidden(
            "you may not move members out of this channel",
        ));
    }
    if let Some(to) = b.to_channel_id {
        let there = voice_channel(&s, &user, (id, to), "toChannelId").await?;
        if !there.contains(Permissions::CONNECT) {
            return Err(ApiError::forbidden("you may not connect to that channel"));
        }
    }
    s.ctx
        .directory
        .call(b.from_channel_id, |reply| RoomMsg::DisconnectVoice {
            user_id: target,
            moved_to: b.to_channel_id,
            by: user.id,
            reply,
        })
        .await?;
    let after =
        serde_json::json!({ "fromChannelId": b.from_channel_id, "toChannelId": b.to_channel_id });
    let change = Change::new(id, user.id, "member.voice_move", Some(target), reason);
    record(&s, change.states(None, Some(after))).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({
            "communityId": id, "userId": target,
            "fromChannelId": b.from_channel_id, "toChannelId": b.to_channel_id, "moved": true,
        }),
    ))
}
