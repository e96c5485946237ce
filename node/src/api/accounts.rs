//! `/auth/*` and `/users/me`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use voiceflow_schema::{StoreError, UserRecord};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::{ErrorCode, Snowflake};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{authed, json_body, parse, validate, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::rest_limits::UserBucket;
use crate::state::AppState;

/// A user as its owner sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: Snowflake,
    username: String,
    email: String,
    avatar_url: Option<String>,
    created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            avatar_url: u.avatar_url.clone(),
            created_at: voiceflow_wire::time::rfc3339(u.created_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
    confirm_password: String,
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchMeBody {
    #[serde(default)]
    username: Option<String>,
    /// `null` clears the avatar; absent leaves it.
    #[serde(default, deserialize_with = "double_option")]
    avatar_url: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The `X-Forwarded-For` header, if readable (only believed from trusted proxies).
pub(super) fn forwarded_for(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = super::body_limits(&state);
    // Both spend a login attempt of the client's address (`[limits] logins_per_min`).
    let register = warp::path!("auth" / "register")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(crate::server::remote())
        .and(warp::header::headers_cloned())
        .and(json_body(limit))
        .then(
            |s: AppState, addr, headers: HeaderMap, body: Bytes| async move {
                match s.limits.login(addr, forwarded_for(&headers)) {
                    Ok(()) => respond(register(s, body).await),
                    Err(limited) => limited.response("login attempts from this address"),
                }
            },
        );
    let login = warp::path!("auth" / "login")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(crate::server::remote())
        .and(warp::header::headers_cloned())
        .and(json_body(limit))
        .then(
            |s: AppState, addr, headers: HeaderMap, body: Bytes| async move {
                match s.limits.login(addr, forwarded_for(&headers)) {
                    Ok(()) => respond(login(s, body).await),
                    Err(limited) => limited.response("login attempts from this address"),
                }
            },
        );
    // Unauthenticated: limited per client address (`[limits] refreshes_per_min`).
    let refresh = warp::path!("auth" / "refresh")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(crate::server::remote())
        .and(warp::header::headers_cloned())
        .and(json_body(limit))
        .then(
            |s: AppState, addr, headers: HeaderMap, body: Bytes| async move {
                match s.rest.refresh(addr, forwarded_for(&headers)) {
                    Ok(()) => respond(refresh(s, body).await),
                    Err(limited) => limited.response("token refreshes from this address"),
                }
            },
        );
    let verify = warp::path!("auth" / "verify")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(|s: AppState, user: AuthUser| async move { respond(verify(s, user).await) });
    let logout = warp::path!("auth" / "logout")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(json_body(limit))
        .then(|s: AppState, user: AuthUser, body: Bytes| async move {
            respond(logout(s, user, body).await)
        });
    let me = warp::path!("users" / "me")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .then(|s: AppState, user: AuthUser| async move { respond(get_me(s, user).await) });
    let patch_me = warp::path!("users" / "me")
        .and(warp::patch())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(json_body(limit))
        .then(|s: AppState, user: AuthUser, body: Bytes| async move {
            match s.rest.user(UserBucket::ProfileEdit, user.id) {
                Ok(()) => respond(patch_me(s, user, body).await),
                Err(limited) => limited.response(UserBucket::ProfileEdit.what()),
            }
        });
    register
        .or(login)
        .unify()
        .or(refresh)
        .unify()
        .or(verify)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(patch_me)
        .unify()
}

fn session_body(user: &UserRecord, pair: crate::auth::TokenPair) -> serde_json::Value {
    serde_json::json!({
        "token": pair.token,
        "refreshToken": pair.refresh_token,
        "expiresIn": pair.expires_in,
        "user": UserView::from(user),
    })
}

async fn register(s: AppState, body: Bytes) -> Result<Response, ApiError> {
    let b: RegisterBody = parse(&body)?;
    validate::username(&b.username)?;
    validate::email(&b.email)?;
    validate::password(&b.password)?;
    if b.password != b.confirm_password {
        return Err(ApiError::field("confirmPassword", "passwords do not match"));
    }
    let store = s.ctx.store.clone();
    // Cheap pre-checks so a taken name does not cost an argon2 hash; the store re-checks.
    if store.user_by_username(&b.username).await?.is_some() {
        return Err(conflict("username"));
    }
    if store.user_by_email(&b.email).await?.is_some() {
        return Err(conflict("email"));
    }
    let user = UserRecord {
        id: s.ctx.ids.next_id(),
        username: b.username,
        email: b.email.to_lowercase(),
        password_hash: s.auth.hash_password(b.password).await?,
        avatar_url: None,
        created_at: now_ms(),
    };
    match store.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict { field }) => return Err(conflict(field)),
        Err(e) => return Err(e.into()),
    }
    let pair = s
        .auth
        .issue(
            store.as_ref(),
            &AuthUser::named(user.id, user.username.clone()),
            None,
        )
        .await?;
    Ok(ok(StatusCode::CREATED, &session_body(&user, pair)))
}

fn conflict(field: &str) -> ApiError {
    let mut e = ApiError::new(ErrorCode::Conflict, format!("{field} is already taken"));
    e.0.details = Some(serde_json::json!({ "field": field }));
    e
}

async fn login(s: AppState, body: Bytes) -> Result<Response, ApiError> {
    let b: LoginBody = parse(&body)?;
    let user = s.ctx.store.user_by_email(&b.email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !s.auth.verify_password(b.password, hash).await {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "email or password is wrong",
        ));
    }
    let user = user.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidCredentials, "email or password is wrong")
    })?;
    let pair = s
        .auth
        .issue(
            s.ctx.store.as_ref(),
            &AuthUser::named(user.id, user.username.clone()),
            None,
        )
        .await?;
    Ok(ok(StatusCode::OK, &session_body(&user, pair)))
}

async fn refresh(s: AppState, body: Bytes) -> Result<Response, ApiError> {
    let b: RefreshBody = parse(&body)?;
    let (user_id, pair) = s.auth.refresh(&s.ctx, &b.refresh_token).await?;
    let user = s
        .ctx
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account is gone"))?;
    Ok(ok(StatusCode::OK, &session_body(&user, pair)))
}

async fn verify(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let record = s
        .ctx
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account is gone"))?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "valid": true, "user": UserView::from(&record) }),
    ))
}

async fn logout(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let b: LogoutBody = parse(&body)?;
    s.auth
        .logout(&s.ctx, &user, b.refresh_token.as_deref())
        .await?;
    Ok(ok(
        StatusCode::OK,
        &serde_json::json!({ "loggedOut": true }),
    ))
}

async fn get_me(s: AppState, user: AuthUser) -> Result<Response, ApiError> {
    let record = s
        .ctx
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ok(StatusCode::OK, &UserView::from(&record)))
}

async fn patch_me(s: AppState, user: AuthUser, body: Bytes) -> Result<Response, ApiError> {
    let b: PatchMeBody = parse(&body)?;
    let mut record = s
        .ctx
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut renamed = false;
    if let Some(name) = b.username {
        validate::username(&name)?;
        renamed = name != record.username;
        record.username = name;
    }
    if let Some(avatar) = b.avatar_url {
        if let Some(url) = &avatar {
            validate::avatar_url(url)?;
        }
        record.avatar_url = avatar;
    }
    match s.ctx.store.update_user(&record).await {
        Ok(()) => {
            if renamed {
                crate::account_sessions::renamed(&s.ctx, user.id, &record.username).await?;
            }
            Ok(ok(StatusCode::OK, &UserView::from(&record)))
        }
        Err(StoreError::Conflict { field }) => Err(conflict(field)),
        Err(e) => Err(e.into()),
    }
}
