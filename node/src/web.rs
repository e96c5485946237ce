//! The web client: a dependency-free ES-module page in `node/web/`, embedded in the binary with
//! rust-embed (release and debug builds alike) and served by every node.
//!
//! - `GET /` → `index.html`; so does any other page path a browser asks for as HTML
//!   (`/login`, `/rooms/123`, …) because the client routes with the History API and a reload or
//!   a shared link must land on the page.
//! - `GET /assets/<path>` → the embedded file `assets/<path>` with its content type and an
//!   `ETag`; an unknown asset path gets the same JSON 404 as every other endpoint.
//! - `GET /sw.js` → `assets/sw.js`, the service worker (Web Push), from the root so that its
//!   scope is the whole client.
//! - `Cache-Control: no-cache` everywhere: the file names carry no content hash, so a browser
//!   revalidates each time (a 304 with no body when the `ETag` matches) and never runs a stale
//!   client after an upgrade.
//! - Every response carries a strict Content-Security-Policy (scripts, styles, images and
//!   fetches from this origin only, WebSockets to this host only; no inline code) plus
//!   `nosniff` and `no-referrer`.
//! - The server's own paths (`/api`, `/ws`, `/healthz`, `/readyz`, `/metrics`) are never
//!   answered with the page: this filter rejects them as "not found", so the real routes (or
//!   the JSON 404) answer, whatever the request's `Accept` says.
//!
//! The files are compiled in (`debug-embed` too, so tests see what ships): cargo notices an
//! edited file, but a *new* file under `node/web/` is picked up only once this crate rebuilds
//! (touch this file).

use std::borrow::Cow;

use bytes::Bytes;
use rust_embed::RustEmbed;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::error::ApiError;

/// The client's files, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// URL prefix of the embedded files other than the page itself.
const ASSET_PREFIX: &str = "/assets/";

/// Where the service worker is served (`node/web/assets/sw.js`).
const SERVICE_WORKER: &str = "/sw.js";

/// First path segments that belong to the server, never to the page.
const RESERVED: &[&str] = &["api", "ws", "healthz", "readyz", "metrics", "assets"];

/// Scripts, styles and images from this origin only; no inline code, no plugins, no framing.
/// `connect-src` is completed per request with the host's `ws:`/`wss:` origins.
const CSP_BASE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; connect-src 'self'";

/// The page and its assets, for GET and HEAD.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |method: Method, path: FullPath, headers: HeaderMap| async move {
                serve(&method, path.as_str(), &headers).ok_or_else(warp::reject::not_found)
            },
        )
}

/// The response for a request, or `None` when the request is not the page's to answer.
fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let head = method == Method::HEAD;
    if path == SERVICE_WORKER {
        // Served from the root so that its scope is the whole client (a worker's scope can
        // not reach above its own path); it shows Web Push notifications.
        let file = Assets::get("assets/sw.js")?;
        let mut response = file_response("assets/sw.js", file, headers, head);
        response
            .headers_mut()
            .insert("service-worker-allowed", HeaderValue::from_static("/"));
        return Some(response);
    }
    if let Some(rest) = path.strip_prefix(ASSET_PREFIX) {
        let found = asset_name(rest).and_then(|name| Assets::get(&name).map(|f| (name, f)));
        return Some(match found {
            Some((name, file)) => file_response(&name, file, headers, head),
            None => with_security_headers(ApiError::not_found("asset").into_response(), headers),
        });
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if RESERVED.contains(&first) {
        return None;
    }
    if path != "/" && !wants_html(headers) {
        return None;
    }
    let page = Assets::get("index.html")?;
    Some(file_response("index.html", page, headers, head))
}

/// The embedded name for the part of an asset URL after the prefix; `None` for anything that
/// tries to climb out of `assets/` or is not a plain relative path.
fn asset_name(rest: &str) -> Option<String> {
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let ok = !rest.is_empty()
        && !rest.ends_with('/')
        && rest
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    ok.then(|| format!("assets/{rest}"))
}

/// True when the client asks for HTML (a browser navigating), not JSON or anything else.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn file_response(
    name: &str,
    file: rust_embed::EmbeddedFile,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let etag = etag(&file.metadata.sha256_hash());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let len = file.data.len();
    let body = if head || not_modified {
        Bytes::new()
    } else {
        match file.data {
            Cow::Borrowed(data) => Bytes::from_static(data),
            Cow::Owned(data) => Bytes::from(data),
        }
    };
    let mut response = Response::new(body.into());
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    if head && !not_modified {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    with_security_headers(response, headers)
}

fn etag(hash: &[u8; 32]) -> String {
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The content type for a file name, by extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Adds the CSP (with this host's WebSocket origins) and the other hardening headers.
fn with_security_headers(mut response: Response, request: &HeaderMap) -> Response {
    let host = request
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| valid_host(h));
    let csp = match host {
        Some(host) => format!("{CSP_BASE} ws://{host} wss://{host}"),
        None => format!("{CSP_BASE} ws: wss:"),
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A host (and port) safe to put into a CSP source: letters, digits, `.-:[]` only.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html,*/*"));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        h
    }

    #[test]
    fn the_page_is_at_the_root_and_at_client_routes() {
        let r = serve(&Method::GET, "/", &HeaderMap::new()).expect("page");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(serve(&Method::GET, "/rooms/123", &html()).is_some());
        assert!(serve(&Method::GET, "/rooms/123", &HeaderMap::new()).is_none());
        assert!(serve(&Method::POST, "/", &html()).is_none());
    }

    #[test]
    fn server_paths_are_never_shadowed() {
        for path in [
            "/api/v1/nope",
            "/api",
            "/ws",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(serve(&Method::GET, path, &html()).is_none(), "{path}");
        }
    }

    #[test]
    fn assets_have_types_and_unknown_ones_are_json_404s() {
        let r = serve(&Method::GET, "/assets/js/main.js", &html()).expect("asset");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.contains("ws://127.0.0.1:3000"));
        for path in [
            "/assets/nope.js",
            "/assets/../index.html",
            "/assets/",
            "/assets/a//b",
        ] {
            let r = serve(&Method::GET, path, &html()).expect("404");
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        }
    }

    #[test]
    fn etags_give_304s() {
        let r = serve(&Method::GET, "/assets/app.css", &html()).expect("asset");
        let tag = r.headers()[header::ETAG].clone();
        let mut h = html();
        h.insert(header::IF_NONE_MATCH, tag);
        let again = serve(&Method::GET, "/assets/app.css", &h).expect("asset");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn hosts_are_checked_before_going_into_the_csp() {
        assert!(valid_host("[::1]:3000"));
        assert!(valid_host("chat.example.com"));
        assert!(!valid_host("evil.com; script-src *"));
        assert!(!valid_host(""));
    }
}
