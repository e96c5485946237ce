//! What every request passes before and after the routes: request targets warp cannot take
//! (`CONNECT host:port`), the `Origin` check of `/ws`, CORS for configured origins, HSTS over
//! TLS, and the bookkeeping of the connection (busy or idle, upgraded, authenticated).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use voiceflow_wire::ErrorCode;
use warp::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use super::accept::Conn;
use crate::error::ApiError;

/// The peer of the connection a request came on; read with [`super::remote`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The body type of warp's responses (not nameable otherwise).
pub trait ResponseBody {
    /// The body.
    type Body;
}
impl<B> ResponseBody for Response<B> {
    type Body = B;
}
/// warp's response body.
pub type WarpBody = <warp::reply::Response as ResponseBody>::Body;

/// Origin, CORS and HSTS settings shared by every connection of a listener.
#[derive(Debug)]
pub struct Policy {
    /// `[http] allowed_origins`, normalized.
    allowed: Vec<String>,
    /// `[limits] trusted_proxies`: their `X-Forwarded-Proto`/`-Host` name the node's origin.
    trusted: Vec<IpAddr>,
    /// The `Strict-Transport-Security` value on TLS connections.
    hsts: Option<HeaderValue>,
}

impl Policy {
    /// From `[http] allowed_origins`, the trusted proxies and the HSTS max-age (0: none).
    pub fn new(allowed: &[String], trusted: &[IpAddr], hsts_max_age_secs: u64) -> Policy {
        Policy {
            allowed: allowed.iter().filter_map(|o| normalize(o)).collect(),
            trusted: trusted.to_vec(),
            hsts: (hsts_max_age_secs > 0)
                .then(|| HeaderValue::from_str(&format!("max-age={hsts_max_age_secs}")).ok())
                .flatten(),
        }
    }

    fn configured(&self, origin: &str) -> bool {
        normalize(origin).is_some_and(|o| self.allowed.contains(&o))
    }

    /// The origin this request was addressed to: the scheme of the connection (or of the
    /// trusted proxy in front) and the `Host` it named.
    fn own_origin(&self, headers: &HeaderMap, conn: &Conn) -> Option<String> {
        let proxied = self.trusted.contains(&conn.peer.ip());
        let forwarded = |name: &str| {
            proxied
                .then(|| headers.get(name)?.to_str().ok())
                .flatten()
                .and_then(|v| v.split(',').next())
                .map(str::trim)
        };
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) => proto.to_ascii_lowercase(),
            None if conn.tls => "https".into(),
            None => "http".into(),
        };
        let host =
            forwarded("x-forwarded-host").or_else(|| headers.get(header::HOST)?.to_str().ok())?;
        normalize(&format!("{scheme}://{host}"))
    }

    /// Whether a browser page of `origin` may open `/ws` on this request's connection.
    fn origin_allowed(&self, origin: &str, headers: &HeaderMap, conn: &Conn) -> bool {
        self.configured(origin)
            || normalize(origin).is_some_and(|o| Some(o) == self.own_origin(headers, conn))
    }
}

/// `scheme://host[:port]`, lowercase, without a default port or trailing slash; `None` for
/// anything that is not an http(s) origin (`null` included).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let rest = match scheme {
        "https" => rest.strip_suffix(":443").unwrap_or(rest),
        "http" => rest.strip_suffix(":80").unwrap_or(rest),
        _ => return None,
    };
    Some(format!("{scheme}://{rest}"))
}

/// The routes behind the checks, for one connection.
pub struct FrontService<S> {
    inner: S,
    conn: Arc<Conn>,
    policy: Arc<Policy>,
}

impl<S> FrontService<S> {
    /// `inner` serves what passes; `conn` is the connection the requests come on.
    pub fn new(inner: S, conn: Arc<Conn>, policy: Arc<Policy>) -> Self {
        FrontService {
            inner,
            conn,
            policy,
        }
    }

    /// An answer given before the routes, if the request gets one.
    fn screen(&self, req: &Request<Incoming>) -> Option<warp::reply::Response> {
        // warp's path filters assume an origin-form target ("/…"); `CONNECT a:1` (authority
        // form) and `OPTIONS *` made them panic.
        if req.method() == Method::CONNECT || !req.uri().path().starts_with('/') {
            return Some(
                ApiError::new(
                    ErrorCode::ValidationError,
                    "the request target must be a path",
                )
                .into_response(),
            );
        }
        let origin = req.headers().get(header::ORIGIN)?.to_str().ok();
        let Some(origin) = origin else {
            return Some(ApiError::forbidden("unreadable Origin").into_response());
        };
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            if !self.policy.configured(origin) {
                return Some(ApiError::forbidden("origin not allowed").into_response());
            }
            let mut reply = warp::reply::Response::new(WarpBody::default());
            *reply.status_mut() = StatusCode::NO_CONTENT;
            let h = reply.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                req.headers()
                    .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("authorization, content-type")),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            return Some(reply);
        }
        if req.uri().path() == "/ws"
            && !self
                .policy
                .origin_allowed(origin, req.headers(), &self.conn)
        {
            return Some(
                ApiError::forbidden(format!(
                    "origin {origin} may not open a WebSocket here (see [http] allowed_origins)"
                ))
                .into_response(),
            );
        }
        None
    }
}

impl<S> hyper::service::Service<Request<Incoming>> for FrontService<S>
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let conn = self.conn.clone();
        conn.request_started();
        let finished = Finished(conn.clone());
        let early = self.screen(&req);
        // CORS headers go on answers to configured origins only.
        let cors = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| o.to_str().is_ok_and(|o| self.policy.configured(o)))
            .cloned();
        let credentialed = req.headers().contains_key(header::AUTHORIZATION)
            || req.uri().query().is_some_and(|q| q.contains("token="));
        let hsts = conn.tls.then(|| self.policy.hsts.clone()).flatten();
        let routed = match early {
            Some(_) => None,
            None => {
                req.extensions_mut().insert(ClientAddr(conn.peer));
                Some(self.inner.call(req))
            }
        };
        Box::pin(async move {
            let mut response = match (early, routed) {
                (Some(early), _) => early,
                (None, Some(routed)) => routed.await?,
                (None, None) => ApiError::internal("no route future").into_response(),
            };
            let status = response.status();
            if status == StatusCode::SWITCHING_PROTOCOLS {
                // Only a valid token gets a WebSocket.
                conn.upgraded();
                conn.authenticated();
            } else if credentialed && status != StatusCode::UNAUTHORIZED {
                conn.authenticated();
            }
            let headers = response.headers_mut();
            if let Some(origin) = cors {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            if let Some(hsts) = hsts {
                headers
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(hsts);
            }
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _finished: finished,
            }))
        })
    }
}

/// Marks the request finished when its response body is done (dropped by hyper).
struct Finished(Arc<Conn>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that tells the connection when it has been sent.
pub struct TrackedBody {
    inner: WarpBody,
    _finished: Finished,
}

impl Body for TrackedBody {
    type Data = <WarpBody as Body>::Data;
    type Error = <WarpBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalize_default_ports_and_case() {
        assert_eq!(
            normalize("HTTPS://Chat.Example:443/").as_deref(),
            Some("https://chat.example")
        );
        assert_eq!(
            normalize("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(normalize("null"), None);
        assert_eq!(normalize("https://a.example/path"), None);
        assert_eq!(normalize("ftp://a.example"), None);
    }
}
