//! A channel's overrides over REST: `GET /communities/:id/channels/:channelId/overwrites`,
//! `PUT`/`DELETE /communities/:id/channels/:channelId/overwrites/:targetId`. Setting one
//! needs `MANAGE_CHANNELS` in the channel and `MANAGE_ROLES`; every change reaches the
//! community's running channels and the audit log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::{ChannelOverwriteRecord, OverwriteTarget};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::{Overwrite, Permissions};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::audit::{Change, reason, record};
use super::channel_effects::{member_changed, permissions_changed};
use super::channels::{require, visible};
use super::communities::seen;
use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverwriteBody {
    #[serde(rename = "type")]
    target: OverwriteTarget,
    #[serde(default)]
    allow: Permissions,
    #[serde(default)]
    deny: Permissions,
}

/// An override as managers see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OverwriteView {
    target_id: Snowflake,
    #[serde(rename = "type")]
    target: OverwriteTarget,
    allow: Permissions,
    deny: Permissions,
}

impl From<&ChannelOverwriteRecord> for OverwriteView {
    fn from(o: &ChannelOverwriteRecord) -> Self {
        OverwriteView {
            target_id: o.target_id,
            target: o.target,
            allow: o.overwrite.allow,
            deny: o.overwrite.deny,
        }
    }
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let s = || with_state(state.clone()).and(authed(state.clone()));
    let overwrites = warp::path!("communities" / Snowflake / "channels" / Snowflake / "overwrites")
        .and(warp::get())
        .and(s())
        .then(|id, ch, s: AppState, u: AuthUser| async move {
            respond(overwrites(s, u, (id, ch)).await)
        });
    let put =
        warp::path!("communities" / Snowflake / "channels" / Snowflake / "overwrites" / Snowflake)
            .and(warp::put())
            .and(s())
            .and(json_body(limit))
            .and(reason())
            .then(
                |id, ch, target, s: AppState, u: AuthUser, b: Bytes, r: Option<String>| async move {
                    respond(set_overwrite(s, u, (id, ch, target), Some(b), r).await)
                },
            );
    let delete_overwrite =
        warp::path!("communities" / Snowflake / "channels" / Snowflake / "overwrites" / Snowflake)
            .and(warp::delete())
            .and(s())
            .and(reason())
            .then(
                |id, ch, target, s: AppState, u: AuthUser, r: Option<String>| async move {
                    respond(set_overwrite(s, u, (id, ch, target), None, r).await)
                },
            );
    overwrites.or(put).unify().or(delete_overwrite).unify()
}

async fn overwrites(
    s: AppState,
    user: AuthUser,
    (id, channel): (Snowflake, Snowflake),
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let (_, _, held) = visible(&s, &seen, channel).await?;
    require(
        held,
        Permissions::MANAGE_CHANNELS,
        "see this channel's overrides",
    )?;
    let rows = s.ctx.store.channel_overwrites(channel).await?;
    let views: Vec<OverwriteView> = rows.iter().map(OverwriteView::from).collect();
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "overwrites": views }),
    ))
}

/// Sets (`body`) or removes (`None`) the override of `target` in a channel: needs
/// `MANAGE_CHANNELS` there and `MANAGE_ROLES`, and nobody allows or denies a permission they
/// do not hold themselves.
async fn set_overwrite(
    s: AppState,
    user: AuthUser,
    (id, channel, target): (Snowflake, Snowflake, Snowflake),
    body: Option<Bytes>,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&s, &user, id).await?;
    let (_, _, held) = visible(&s, &seen, channel).await?;
    require(
        held,
        Permissions::MANAGE_CHANNELS | Permissions::MANAGE_ROLES,
        "change this channel's overrides",
    )?;
    let existing = s.ctx.store.channel_overwrites(channel).await?;
    let before = existing
        .iter()
        .find(|o| o.target_id == target)
        .map(|o| serde_json::to_value(OverwriteView::from(o)).ok())
        .unwrap_or(None);
    let (action, after) = match body {
        Some(body) => {
            let b: OverwriteBody = parse(&body)?;
            let exists = match b.target {
                OverwriteTarget::Role => seen.roles.iter().any(|r| r.id == target),
                OverwriteTarget::Member => {
                    s.ctx.store.community_member(id, target).await?.is_some()
                }
            };
            if !exists {
                return Err(ApiError::not_found(match b.target {
                    OverwriteTarget::Role => "role",
                    OverwriteTarget::Member => "member",
                }));
            }
            let overwrite = Overwrite {
                allow: b.allow & Permissions::CHANNEL,
                deny: b.deny & Permissions::CHANNEL,
            };
            if !seen.base().contains(overwrite.allow | overwrite.deny) {
                return Err(ApiError::forbidden(
                    "you may not allow or deny a permission you do not hold",
                ));
            }
            let row = ChannelOverwriteRecord {
                channel_id: channel,
                target_id: target,
                target: b.target,
                overwrite,
            };
            s.ctx.store.put_channel_overwrite(&row).await?;
            let after = serde_json::to_value(OverwriteView::from(&row)).ok();
            ("channel.overwrite.update", after)
        }
        None => {
            if before.is_none() {
                return Err(ApiError::not_found("overwrite"));
            }
            s.ctx
                .store
                .remove_channel_overwrite(channel, target)
                .await?;
            ("channel.overwrite.delete", None)
        }
    };
    permissions_changed(&s, id).await?;
    // An override naming a member: they learn at once (a channel may have appeared).
    if target != id && !seen.roles.iter().any(|r| r.id == target) {
        member_changed(&s, id, target);
    }
    let change = Change::new(id, user.id, action, Some(channel), reason);
    record(&s, change.states(before.clone(), after.clone())).await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "channelId": channel, "targetId": target, "overwrite": after }),
    ))
}
