//! The REST API under `/api/v1`, plus health and metrics. Handlers return
//! `Result<Response, ApiError>`; [`crate::error::respond`] renders both sides.

mod accounts;
mod audit;
mod categories;
mod channel_effects;
mod channels;
mod communities;
mod contacts;
mod dms;
mod files;
mod invites;
mod join_requests;
mod member_list;
mod messages;
mod moderation;
mod notify;
mod overwrites;
mod push;
mod roles;
mod room_admin;
mod room_requests;
mod rooms;
mod scan;
mod search;
mod validate;

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::auth::AuthUser;
use crate::error::{ApiError, ok};
use crate::state::AppState;

/// Hands the state to a handler.
pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Requires `Authorization: Bearer <access token>`.
pub fn authed(state: AppState) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let auth = state.auth.clone();
        async move { bearer(&auth, header).map_err(warp::reject::custom) }
    })
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Requires `Authorization: Bearer <access token>` or, when that header is absent,
/// `?token=<access token>` (for URLs a browser fetches by itself, such as `<img src>`).
pub fn authed_or_query_token(
    state: AppState,
) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::query::<TokenQuery>())
        .and_then(move |header: Option<String>, q: TokenQuery| {
            let auth = state.auth.clone();
            async move {
                match (header, q.token) {
                    (None, Some(token)) => auth.verify_access(token.trim()),
                    (header, _) => bearer(&auth, header),
                }
                .map_err(warp::reject::custom)
            }
        })
}

fn bearer(auth: &crate::auth::Auth, header: Option<String>) -> Result<AuthUser, ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("expected a bearer token"))?;
    auth.verify_access(token.trim())
}

/// How large a REST JSON body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `http_max_body_bytes`.
    pub max_bytes: u64,
    /// `[limits] rest_body_timeout_secs`.
    pub timeout: std::time::Duration,
}

/// The body limits of `state`'s config.
pub fn body_limits(state: &AppState) -> BodyLimits {
    BodyLimits {
        max_bytes: state.config.http_max_body_bytes,
        timeout: state.rest.body_timeout,
    }
}

/// A JSON body, size-limited, that must arrive within the body timeout (else 408
/// REQUEST_TIMEOUT; the rest of the body is never read and the connection is not reused).
pub fn json_body(limits: BodyLimits) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limits.max_bytes)
        .and(warp::body::stream())
        .and_then(move |body| async move {
            tokio::time::timeout(limits.timeout, collect(body, limits.max_bytes))
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::new(
                        voiceflow_wire::ErrorCode::RequestTimeout,
                        format!(
                            "the request body did not arrive within {} s",
                            limits.timeout.as_secs()
                        ),
                    ))
                })
                .map_err(warp::reject::custom)
        })
}

/// Reads a whole body of at most `max` bytes.
async fn collect<B: bytes::Buf>(
    body: impl futures_util::Stream<Item = Result<B, warp::Error>>,
    max: u64,
) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::field("body", format!("could not read the body: {e}")))?;
        if (buf.len() + chunk.remaining()) as u64 > max {
            return Err(ApiError::field("body", "request body too large"));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            buf.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Parses a JSON body into `T`; a wrong type or a missing field names the field.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::field("body", "invalid request body: not UTF-8"))?;
    voiceflow_wire::error::parse_json(text).map_err(|mut e| {
        e.message = e
            .message
            .replacen("invalid data", "invalid request body", 1);
        if e.details.is_none() {
            e.details = Some(serde_json::json!({ "field": "body" }));
        }
        ApiError(e)
    })
}

/// Every route of the front door except `/ws`.
pub fn routes(state: AppState) -> warp::filters::BoxedFilter<(Response,)> {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| ok(StatusCode::OK, &serde_json::json!({"status": "ok"})));
    let ready = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|s: AppState| {
            if s.draining.load(Ordering::Relaxed) {
                ApiError(voiceflow_wire::ErrorBody::unavailable("draining")).into_response()
            } else {
                ok(StatusCode::OK, &serde_json::json!({"status": "ready"}))
            }
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|s: AppState| s.metrics.render(&s));
    let api = warp::path("api").and(warp::path("v1")).and(
        // Boxed per module: keeps the filter types shallow (and compile times short).
        accounts::routes(state.clone())
            .boxed()
            .or(rooms::routes(state.clone()).boxed())
            .unify()
            .or(room_admin::routes(state.clone()).boxed())
            .unify()
            .or(messages::routes(state.clone()).boxed())
            .unify()
            .or(dms::routes(state.clone()).boxed())
            .unify()
            .or(contacts::routes(state.clone()).boxed())
            .unify()
            .or(communities::routes(state.clone()).boxed())
            .unify()
            .or(channels::routes(state.clone()).boxed())
            .unify()
            .or(overwrites::routes(state.clone()).boxed())
            .unify()
            .or(categories::routes(state.clone()).boxed())
            .unify()
            .or(roles::routes(state.clone()).boxed())
            .unify()
            .or(invites::routes(state.clone()).boxed())
            .unify()
            .or(audit::routes(state.clone()).boxed())
            .unify()
            .or(moderation::routes(state.clone()).boxed())
            .unify()
            .or(join_requests::routes(state.clone()).boxed())
            .unify()
            .or(room_requests::routes(state.clone()).boxed())
            .unify()
            .or(notify::routes(state.clone()).boxed())
            .unify()
            .or(search::routes(state.clone()).boxed())
            .unify()
            .or(push::routes(state.clone()).boxed())
            .unify()
            .or(files::routes(state).boxed())
            .unify(),
    );
    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(api)
        .unify()
        .boxed()
}
