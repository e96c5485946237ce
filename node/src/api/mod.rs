//! The REST API under `/api/v1`, plus health and metrics. Handlers return
//! `Result<Response, ApiError>`; [`crate::error::respond`] renders both sides.

mod accounts;
mod messages;
mod rooms;
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
        async move {
            let header = header.ok_or_else(|| {
                warp::reject::custom(ApiError::unauthorized("missing bearer token"))
            })?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| {
                    warp::reject::custom(ApiError::unauthorized("expected a bearer token"))
                })?;
            auth.verify_access(token.trim())
                .map_err(warp::reject::custom)
        }
    })
}

/// A JSON body, size-limited, parsed with errors that name the field.
pub fn json_body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(limit).and(warp::body::bytes())
}

/// Parses a JSON body into `T`.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        match text.split('`').nth(1) {
            Some(field) => ApiError::field(field, format!("invalid request body: {text}")),
            None => ApiError::field("body", format!("invalid request body: {text}")),
        }
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
                ApiError::new(voiceflow_wire::ErrorCode::StorageUnavailable, "draining")
                    .into_response()
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
            .or(messages::routes(state).boxed())
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
