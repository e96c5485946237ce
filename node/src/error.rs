//! The one place where failures become HTTP bodies:
//! `{"success":false,"error":{"code","message","details"?}}` with the code's status.

use voiceflow_actors::ActorError;
use voiceflow_schema::StoreError;
use voiceflow_wire::{ErrorBody, ErrorCode};
use warp::http::StatusCode;
use warp::reply::Response;

/// A failed REST request.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, message))
    }
    /// A validation error naming a field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::field(field, message))
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    /// 500; the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // A "retry later" says when in the header too, as 429s do (whole seconds, rounded up).
        let retry_after = (self.0.code == ErrorCode::Unavailable)
            .then(|| self.0.retry_after_ms())
            .flatten();
        let body = serde_json::json!({ "success": false, "error": self.0 });
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), status).into_response_compat();
        if let Some(ms) = retry_after {
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from(ms.div_ceil(1000).max(1)),
            );
        }
        response
    }
}

/// `warp::Reply::into_response` without importing the trait everywhere.
trait IntoResponseCompat {
    fn into_response_compat(self) -> Response;
}
impl<T: warp::Reply> IntoResponseCompat for T {
    fn into_response_compat(self) -> Response {
        self.into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(ActorError::Store(e).to_body())
    }
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> Self {
        let mut body = e.to_body();
        // REST speaks of rooms as plain resources.
        if body.code == ErrorCode::RoomNotFound {
            body.code = ErrorCode::NotFound;
        }
        ApiError(body)
    }
}

impl From<crate::spool::SpoolError> for ApiError {
    fn from(e: crate::spool::SpoolError) -> Self {
        use crate::spool::SpoolError;
        let message = e.to_string();
        match e {
            SpoolError::TooLarge { limit } => ApiError(ErrorBody {
                code: ErrorCode::PayloadTooLarge,
                message,
                details: Some(serde_json::json!({ "limit": limit })),
            }),
            SpoolError::OverQuota { quota, used } => ApiError(ErrorBody {
                code: ErrorCode::QuotaExceeded,
                message,
                details: Some(serde_json::json!({ "quota": quota, "used": used })),
            }),
            SpoolError::Idle(_) => ApiError::new(ErrorCode::RequestTimeout, message),
            SpoolError::Read(_) | SpoolError::Multipart(_) => ApiError::field("body", message),
            SpoolError::NoFilePart => ApiError::field("file", message),
            SpoolError::Disk(cause) => ApiError::internal(format!("upload spool: {cause}")),
        }
    }
}

impl warp::reject::Reject for ApiError {}

/// Turns warp's own rejections (unknown route, wrong method, oversized body) into JSON errors.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        ApiError(e.0.clone())
    } else if rejection.is_not_found() {
        ApiError::new(ErrorCode::NotFound, "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(ErrorCode::NotFound, "no such endpoint for this method")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::field("body", "request body too large")
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::field("query", "invalid query string")
    } else if rejection.find::<warp::reject::MissingHeader>().is_some() {
        ApiError::new(ErrorCode::ValidationError, "missing required header")
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::field("body", "unsupported media type")
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        ApiError::new(ErrorCode::ValidationError, "bad request")
    };
    Ok(error.into_response())
}

/// `{"success":true,"data":…}` with a status.
pub fn ok<T: serde::Serialize>(status: StatusCode, data: &T) -> Response {
    let body = serde_json::json!({ "success": true, "data": data });
    warp::reply::with_status(warp::reply::json(&body), status).into_response_compat()
}

/// `{"success":true, …extra}`: list endpoints put `data` next to paging fields.
pub fn ok_page(mut fields: serde_json::Map<String, serde_json::Value>) -> Response {
    fields.insert("success".into(), serde_json::Value::Bool(true));
    warp::reply::json(&serde_json::Value::Object(fields)).into_response_compat()
}

/// Either outcome as a response.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}
