//! Web Push: `GET /push/vapid-public-key` (the `applicationServerKey` a client subscribes
//! with), `POST /push/subscriptions` (register this browser's `PushSubscription`) and
//! `DELETE /push/subscriptions` (forget it, by endpoint). Delivery is `crate::push`.

use bytes::Bytes;
use voiceflow_schema::PushSubscriptionRecord;
use voiceflow_wire::ErrorCode;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::push::{PushSubscriptionBody, PushUnsubscribe, VapidPublicKey};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{authed, json_body, parse, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::state::AppState;

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    let key = warp::path!("push" / "vapid-public-key")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|s: AppState| {
            let key = VapidPublicKey {
                public_key: s.push.vapid.public_key.clone(),
            };
            ok(StatusCode::OK, &key)
        });
    let subscribe = warp::path!("push" / "subscriptions")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(json_body(limit))
        .then(
            |s: AppState, u: AuthUser, b: Bytes| async move { respond(subscribe(s, u, b).await) },
        );
    let unsubscribe = warp::path!("push" / "subscriptions")
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(json_body(limit))
        .then(
            |s: AppState, u: AuthUser, b: Bytes| async move { respond(unsubscribe(s, u, b).await) },
        );
    key.or(subscribe).unify().or(unsubscribe).unify()
}

/// Registers (or refreshes) a device; more than `push.max_subscriptions_per_user` distinct
/// endpoints is `QUOTA_EXCEEDED`.
async fn subscribe(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let parsed: PushSubscriptionBody = parse(&body)?;
    let sub = parsed.parse().map_err(ApiError)?;
    let devices = s.ctx.store.push_subscriptions(user.id).await?;
    let known = devices.iter().any(|d| d.endpoint == sub.endpoint);
    let max = s.config.push.max_subscriptions_per_user as usize;
    if !known && devices.len() >= max {
        return Err(ApiError(voiceflow_wire::ErrorBody {
            code: ErrorCode::QuotaExceeded,
            message: format!("at most {max} push devices per user; remove one first"),
            details: Some(serde_json::json!({ "quota": max, "used": devices.len() })),
        }));
    }
    let record = PushSubscriptionRecord {
        user_id: user.id,
        endpoint: sub.endpoint.clone(),
        p256dh: sub.p256dh,
        auth: sub.auth,
        created_at: now_ms(),
    };
    s.ctx.store.put_push_subscription(&record).await?;
    let status = match known {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    Ok(ok(status, &serde_json::json!({ "endpoint": sub.endpoint })))
}

/// Forgets a device of the caller; an endpoint they did not register is `NOT_FOUND`.
async fn unsubscribe(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let gone: PushUnsubscribe = parse(&body)?;
    if !s
        .ctx
        .store
        .delete_push_subscription(user.id, &gone.endpoint)
        .await?
    {
        return Err(ApiError::not_found("push subscription"));
    }
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "endpoint": gone.endpoint }),
    ))
}
