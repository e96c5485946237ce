//! Attachments: `POST /files?roomId=…` (multipart `file` part, or a raw body with `?name=`),
//! `GET /files/:id` (the bytes) and `GET /files/:id/meta`, for members of the file's room
//! only. Downloads also accept `?token=<access token>`, so `<img src>` works, and one byte
//! range (`Range: bytes=…`, 206), so players can seek.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use voiceflow_schema::BlobMeta;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::files::{FileView, file_url};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{authed, authed_or_query_token, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::files::{
    ByteRange, byte_range, content_disposition, content_type, sanitize_name, sniff,
};
use crate::state::AppState;

/// Room a multipart body has beyond the file itself (boundaries, part headers, small fields).
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// An upload body as a stream of chunks.
type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadQuery {
    room_id: Option<String>,
    name: Option<String>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let upload = warp::path!("files")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(authed(state.clone()))
        .and(warp::query::<UploadQuery>())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .then(
            |s: AppState,
             u: AuthUser,
             q: UploadQuery,
             ct: Option<String>,
             len: Option<u64>,
             body| async move { respond(upload(s, u, q, ct, len, boxed(body)).await) },
        );
    let download = warp::path!("files" / Snowflake)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed_or_query_token(state.clone()))
        .and(warp::header::headers_cloned())
        .then(|id, s: AppState, u: AuthUser, h: HeaderMap| async move {
            let range = h.get(header::RANGE).and_then(|v| v.to_str().ok());
            respond(download(s, u, id, range).await)
        });
    let meta = warp::path!("files" / Snowflake / "meta")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed_or_query_token(state))
        .then(|id, s: AppState, u: AuthUser| async move { respond(meta(s, u, id).await) });
    upload.or(download).unify().or(meta).unify()
}

fn boxed<B: Buf + Send + 'static>(
    body: impl Stream<Item = Result<B, warp::Error>> + Send + 'static,
) -> Body {
    body.map_ok(|mut b| b.copy_to_bytes(b.remaining()))
        .map_err(std::io::Error::other)
        .boxed()
}

fn too_large(max: u64) -> ApiError {
    ApiError(ErrorBody {
        code: ErrorCode::PayloadTooLarge,
        message: format!("the file is larger than the limit of {max} bytes"),
        details: Some(serde_json::json!({ "limit": max })),
    })
}

fn view(meta: &BlobMeta) -> FileView {
    FileView {
        id: meta.id,
        name: meta.name.clone(),
        size: meta.size,
        mime_type: meta.mime_type.clone(),
        url: file_url(meta.id),
        room_id: meta.room_id,
        uploaded_by: meta.uploaded_by,
        created_at: voiceflow_actors::room::rfc3339(meta.created_at),
    }
}

async fn upload(
    s: AppState,
    user: AuthUser,
    q: UploadQuery,
    content_type: Option<String>,
    length: Option<u64>,
    body: Body,
) -> Result<Response, ApiError> {
    let max = s.config.files.max_bytes;
    let room = match q.room_id.as_deref() {
        None | Some("") => return Err(ApiError::field("roomId", "roomId is required")),
        Some(text) => Snowflake::parse(text)
            .ok_or_else(|| ApiError::field("roomId", "roomId must be a room id"))?,
    };
    let boundary = content_type
        .as_deref()
        .filter(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        })
        .map(|ct| {
            multer::parse_boundary(ct)
                .map_err(|e| ApiError::field("body", format!("bad multipart body: {e}")))
        })
        .transpose()?;
    if boundary.is_none() && q.name.is_none() {
        return Err(ApiError::field(
            "name",
            "name is required for a raw upload (or send multipart/form-data)",
        ));
    }
    let allowed = max
        + if boundary.is_some() {
            MULTIPART_OVERHEAD
        } else {
            0
        };
    if length.is_some_and(|len| len > allowed) {
        return Err(too_large(max));
    }
    if s.ctx.store.room_by_id(room).await?.is_none() {
        return Err(ApiError::not_found("room"));
    }
    if s.ctx.store.member(room, user.id).await?.is_none() {
        return Err(ApiError::forbidden(
            "only members of the room may upload files to it",
        ));
    }
    let (name, bytes) = match boundary {
        Some(boundary) => read_multipart(body, boundary, max, q.name).await?,
        None => (
            q.name.unwrap_or_default(),
            read_limited(body, max, length).await?,
        ),
    };
    let name = sanitize_name(&name).ok_or_else(|| {
        ApiError::field(
            "name",
            "the file name is empty once unsafe characters are removed",
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::field("file", "the file is empty"));
    }
    let meta = BlobMeta {
        id: s.ctx.ids.next_id(),
        room_id: room,
        uploaded_by: user.id,
        name,
        size: bytes.len() as u64,
        mime_type: sniff(&bytes).to_owned(),
        created_at: now_ms(),
    };
    s.blobs.put(&meta, bytes).await?;
    metrics::counter!("voiceflow_files_uploaded_total").increment(1);
    metrics::counter!("voiceflow_files_uploaded_bytes_total").increment(meta.size);
    Ok(ok(StatusCode::CREATED, &view(&meta)))
}

/// Reads a raw body, refusing it as soon as it passes `max` bytes.
async fn read_limited(mut body: Body, max: u64, length: Option<u64>) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::with_capacity(length.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::field("body", format!("could not read the body: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The `file` part of a multipart body: its file name (else `?name=`, else `file`) and bytes.
async fn read_multipart(
    body: Body,
    boundary: String,
    max: u64,
    fallback_name: Option<String>,
) -> Result<(String, Bytes), ApiError> {
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max + MULTIPART_OVERHEAD)
            .per_field(max),
    );
    let mut form = multer::Multipart::with_constraints(body, boundary, limits);
    let bad = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(max)
        }
        other => ApiError::field("body", format!("bad multipart body: {other}")),
    };
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field
            .file_name()
            .map(str::to_owned)
            .or(fallback_name)
            .unwrap_or_else(|| "file".to_owned());
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(too_large(max));
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok((name, buf.freeze()));
    }
    Err(ApiError::field("file", "the form has no `file` part"))
}

/// The metadata of file `id` if `user` may read it: 404 for an unknown id, 403 for someone
/// outside its room.
async fn readable(s: &AppState, user: &AuthUser, id: Snowflake) -> Result<BlobMeta, ApiError> {
    let meta = s
        .blobs
        .meta(id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    if s.ctx.store.member(meta.room_id, user.id).await?.is_none() {
        return Err(ApiError::forbidden(
            "only members of the file's room may read it",
        ));
    }
    Ok(meta)
}

async fn meta(s: AppState, user: AuthUser, id: Snowflake) -> Result<Response, ApiError> {
    let meta = readable(&s, &user, id).await?;
    Ok(ok(StatusCode::OK, &view(&meta)))
}

async fn download(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    readable(&s, &user, id).await?;
    let (meta, bytes) = s
        .blobs
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let total = bytes.len() as u64;
    let value = |v: String| HeaderValue::try_from(v).map_err(ApiError::internal);
    let (status, body, content_range) = match byte_range(range, total) {
        ByteRange::Whole => (StatusCode::OK, bytes, None),
        ByteRange::Part(part) => {
            let shown = format!("bytes {}-{}/{total}", part.start, part.end - 1);
            let body = bytes.slice(part.start as usize..part.end as usize);
            (StatusCode::PARTIAL_CONTENT, body, Some(shown))
        }
        ByteRange::Unsatisfiable => {
            let mut response = Response::new(Default::default());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_RANGE, value(format!("bytes */{total}"))?);
            return Ok(response);
        }
    };
    let len = body.len();
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(shown) = content_range {
        headers.insert(header::CONTENT_RANGE, value(shown)?);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, value(content_type(&meta.mime_type))?);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(content_disposition(&meta.name, &meta.mime_type))?,
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    // Opened directly (not as an <img>), an uploaded document can run nothing on our origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}
