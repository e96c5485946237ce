//! Attachments: `POST /files?roomId=…` (multipart `file` part, or a raw body with `?name=`),
//! `GET /files/:id` (the bytes) and `GET /files/:id/meta`, for members of the file's room
//! only. Downloads also accept `?token=<access token>`, so `<img src>` works, and one byte
//! range (`Range: bytes=…`, 206), so players can seek.

use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use voiceflow_schema::BlobMeta;
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::files::{FileView, file_url};
use voiceflow_wire::v1::permissions::Permissions;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{authed, authed_or_query_token, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok, respond};
use crate::files::{
    ByteRange, byte_range, content_disposition, content_type, sanitize_name, sniff_head,
};
use crate::multipart;
use crate::rest_limits::{UploadSlot, UserBucket};
use crate::spool::{self, Budget, MULTIPART_OVERHEAD, SpoolError};
use crate::state::AppState;

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
             body| async move { upload_route(s, u, q, ct, len, boxed(body)).await },
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

fn view(meta: &BlobMeta) -> FileView {
    FileView {
        id: meta.id,
        name: meta.name.clone(),
        size: meta.size,
        mime_type: meta.mime_type.clone(),
        url: file_url(meta.id),
        room_id: meta.room_id,
        uploaded_by: meta.uploaded_by,
        created_at: voiceflow_wire::time::rfc3339(meta.created_at),
    }
}

/// `POST /files`: the per-user bucket and upload slot first (429 with `Retry-After`), then
/// the upload.
async fn upload_route(
    s: AppState,
    user: AuthUser,
    q: UploadQuery,
    content_type: Option<String>,
    length: Option<u64>,
    body: Body,
) -> Response {
    if let Err(limited) = s.rest.user(UserBucket::Upload, user.id) {
        return limited.response(UserBucket::Upload.what());
    }
    let slot = match s.rest.upload_slot(user.id) {
        Ok(slot) => slot,
        Err(limited) => return limited.response("uploads in progress"),
    };
    respond(upload(s, user, q, content_type, length, body, slot).await)
}

async fn upload(
    s: AppState,
    user: AuthUser,
    q: UploadQuery,
    content_type: Option<String>,
    length: Option<u64>,
    body: Body,
    slot: UploadSlot,
) -> Result<Response, ApiError> {
    let files = &s.config.files;
    let max = files.max_bytes;
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
            multipart::boundary(ct)
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
        return Err(SpoolError::TooLarge { limit: max }.into());
    }
    if s.ctx.store.room_by_id(room).await?.is_none() {
        return Err(ApiError::not_found("room"));
    }
    // In a community channel: who may attach files there; elsewhere: the room's members.
    match super::channels::channel_access(&s, &user, room).await? {
        Some(held) if !held.contains(Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES) => {
            return Err(ApiError::forbidden("you may not attach files here"));
        }
        Some(_) => {}
        None if s.ctx.store.member(room, user.id).await?.is_none() => {
            return Err(ApiError::forbidden(
                "only members of the room may upload files to it",
            ));
        }
        None => {}
    }
    let quota = match files.quota() {
        Some(quota) => {
            let used = s.blobs.usage(user.id).await?;
            // A full quota is refused before a byte is read; a raw body says its size.
            let raw_len = length.filter(|_| boundary.is_none()).unwrap_or(1);
            if used.saturating_add(raw_len) > quota {
                return Err(SpoolError::OverQuota { quota, used }.into());
            }
            Some((quota, used))
        }
        None => None,
    };
    let budget = Budget {
        max_bytes: max,
        quota,
        idle: files.body_idle_timeout(),
    };
    let dir = files.spool_dir_in(&s.config.data_dir);
    let (name, spooled) = match boundary {
        Some(boundary) => {
            let (name, spooled) = spool::multipart(body, &boundary, budget, &dir).await?;
            (
                name.or(q.name).unwrap_or_else(|| "file".to_owned()),
                spooled,
            )
        }
        None => (
            q.name.unwrap_or_default(),
            spool::raw(body, budget, &dir).await?,
        ),
    };
    let name = sanitize_name(&name).ok_or_else(|| {
        ApiError::field(
            "name",
            "the file name is empty once unsafe characters are removed",
        )
    })?;
    if spooled.size == 0 {
        return Err(ApiError::field("file", "the file is empty"));
    }
    let meta = BlobMeta {
        id: s.ctx.ids.next_id(),
        room_id: room,
        uploaded_by: user.id,
        name,
        size: spooled.size,
        mime_type: sniff_head(&spooled.head, spooled.utf8).to_owned(),
        created_at: now_ms(),
    };
    {
        // The user's other uploads may have been stored meanwhile: check again, and keep them
        // from storing until this one is in.
        let _commit = slot.commit_lock().await;
        if let Some(quota) = files.quota() {
            let used = s.blobs.usage(user.id).await?;
            if used.saturating_add(meta.size) > quota {
                return Err(SpoolError::OverQuota { quota, used }.into());
            }
        }
        s.blobs.put_file(&meta, spooled.file.path()).await?;
    }
    drop(spooled);
    metrics::counter!("voiceflow_files_uploaded_total").increment(1);
    metrics::counter!("voiceflow_files_uploaded_bytes_total").increment(meta.size);
    Ok(ok(StatusCode::CREATED, &view(&meta)))
}

/// The metadata of file `id` if `user` may read it: 404 for an unknown id, 403 for someone
/// outside its room.
async fn readable(s: &AppState, user: &AuthUser, id: Snowflake) -> Result<BlobMeta, ApiError> {
    let meta = s
        .blobs
        .meta(id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    // A community channel's files: whoever may view it (NOT_FOUND for anyone else).
    let channel = super::channels::channel_access(s, user, meta.room_id)
        .await
        .map_err(|_| ApiError::not_found("file"))?;
    if channel.is_none() && s.ctx.store.member(meta.room_id, user.id).await?.is_none() {
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
