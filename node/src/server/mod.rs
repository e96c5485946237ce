//! The front door's own accept loop: warp's routes served through hyper with the limits warp's
//! built-in server does not have.
//!
//! - `accept`: the connection caps (per IP, unauthenticated, descriptors) and the header-read
//!   and keep-alive idle deadlines.
//! - `tls`: HTTPS/WSS with a certificate that is reloaded in place.
//! - `front`: checks before the routes (request target, `/ws` Origin, CORS) and headers after
//!   them (HSTS, CORS).
//!
//! One listener serves REST, `/ws` and the web client, over TLS when `[tls]` says so; an
//! optional second one only redirects plain HTTP to HTTPS.

mod accept;
mod front;
pub mod tls;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use voiceflow_wire::{ErrorBody, ErrorCode};
use warp::Filter;
use warp::http::{Request, StatusCode, Uri};

pub use accept::{Gate, Refusal, connection_budget};
pub use front::ClientAddr;
use front::{FrontService, Policy};

use crate::config::Config;
use crate::error::ApiError;

/// The client address of the connection a request came on (the peer, before any
/// `X-Forwarded-For`); the accept loop's replacement for `warp::addr::remote()`, which only
/// warp's own server fills in.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<ClientAddr>().map(|a: Option<ClientAddr>| a.map(|ClientAddr(addr)| addr))
}

/// What every listener of the node shares.
#[derive(Clone)]
pub struct Settings {
    gate: Arc<Gate>,
    policy: Arc<Policy>,
    max_header_bytes: usize,
    header_read: Duration,
}

impl Settings {
    /// From the config; `max_connections` from [`connection_budget`].
    pub fn new(config: &Config, max_connections: usize) -> Settings {
        let trusted: &[IpAddr] = &config.limits.trusted_proxies;
        Settings {
            gate: Arc::new(Gate::new(&config.http, trusted, max_connections)),
            policy: Arc::new(Policy::new(
                &config.http.allowed_origins,
                trusted,
                if config.tls.enabled() {
                    config.tls.hsts_max_age_secs
                } else {
                    0
                },
            )),
            max_header_bytes: config.http.max_header_bytes,
            header_read: config.http.header_read_timeout(),
        }
    }
}

/// Serves `service` (warp's routes as a hyper service) on `listener` until `stop` turns true,
/// then stops accepting, lets every connection finish its request and returns.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    // Every connection task holds a sender; all of them gone means all connections ended.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let ticket = match settings.gate.admit(peer, tls.is_some()) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                refuse(&stream, refusal, tls.is_some());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ticket.conn();
        let service = FrontService::new(service.clone(), conn, settings.policy.clone());
        let stream = accept::GuardedStream::new(stream, ticket);
        let tls = tls.clone();
        let (settings, stop, alive) = (settings.clone(), stop.clone(), alive.clone());
        tokio::spawn(async move {
            match tls {
                None => drive(stream, service, &settings, stop).await,
                Some(acceptor) => {
                    if !looks_like_tls(stream.get_ref(), settings.header_read).await {
                        plain_http_on_tls_port(stream).await;
                        return;
                    }
                    match acceptor.accept(stream).await {
                        Ok(stream) => drive(stream, service, &settings, stop).await,
                        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    }
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(alive);
    let _ = all_done.recv().await;
}

/// Serves HTTP/1.1 on one connection (upgrades included) until it ends or the node stops.
async fn drive<I, S>(
    io: I,
    service: FrontService<S>,
    settings: &Settings,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    FrontService<S>: hyper::service::Service<
            Request<Incoming>,
            Response = warp::http::Response<front::TrackedBody>,
            Error = Infallible,
        > + Send
        + 'static,
    <FrontService<S> as hyper::service::Service<Request<Incoming>>>::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // A partial head cannot grow past the buffer, a complete one past the header limit.
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_header_size(settings.max_header_bytes)
        // The deadlines are GuardedStream's (hyper's own would also cut idle keep-alives).
        .header_read_timeout(None);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Resolves once the node stops (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send; drop it here.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accept errors: the peer gave up (ignore), or the process is out of descriptors or memory
/// (wait a moment rather than spin).
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    metrics::counter!("voiceflow_http_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Turns a connection away at accept: plain HTTP gets a 429 with the reason (written without
/// waiting: the send buffer of a new socket is empty), TLS a close.
fn refuse(stream: &TcpStream, refusal: Refusal, tls: bool) {
    metrics::counter!("voiceflow_http_connections_refused_total", "reason" => refusal.label())
        .increment(1);
    tracing::debug!(reason = %refusal, "connection refused");
    if tls {
        return;
    }
    let body = serde_json::json!({
        "success": false,
        "error": ErrorBody {
            code: ErrorCode::RateLimited,
            message: format!("{refusal}; retry later"),
            details: Some(serde_json::json!({ "retryAfterMs": 1000 })),
        },
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// Whether the first byte is a TLS handshake record (0x16) rather than a plain HTTP method.
async fn looks_like_tls(stream: &TcpStream, wait: Duration) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        // Silent, closed or failed: the TLS handshake fails or times out the usual way.
        _ => true,
    }
}

/// Plain HTTP sent to the TLS port: a 400 that says so, then close.
async fn plain_http_on_tls_port<S: AsyncWrite + Unpin>(mut stream: S) {
    use tokio::io::AsyncWriteExt;
    let body = "This port speaks HTTPS; use https://\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The routes of the plain-HTTP redirect listener: every request gets a 308 to the same path
/// and query on `https://<host>:<https_port>`.
pub fn redirect_routes(
    https_port: u16,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    warp::header::optional::<String>("host")
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            move |host: Option<String>, path: warp::path::FullPath, query: String| {
                let host = host
                    .as_deref()
                    .map(host_without_port)
                    .unwrap_or("localhost");
                let port = if https_port == 443 {
                    String::new()
                } else {
                    format!(":{https_port}")
                };
                let query = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                match format!("https://{host}{port}{}{query}", path.as_str()).parse::<Uri>() {
                    Ok(uri) => warp::reply::Reply::into_response(warp::redirect::permanent(uri)),
                    Err(_) => ApiError::field("host", "not a host name").into_response(),
                }
            },
        )
        .recover(|_| async {
            Ok::<_, Infallible>(warp::reply::Reply::into_response(warp::reply::with_status(
                "bad request",
                StatusCode::BAD_REQUEST,
            )))
        })
        .unify()
}

/// `example.com:80` → `example.com`; `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `warp::addr::remote()` is always `None` under this accept loop; a route using it would
    /// silently put every client in one bucket. (Guards merges of code written for warp's
    /// own server.)
    #[test]
    fn no_route_reads_warps_remote_address() {
        fn scan(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    scan(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read");
                    for line in text.lines() {
                        let code = line.trim_start();
                        // Split so this line does not find itself.
                        if !code.starts_with("//") && code.contains(concat!("addr::", "remote(")) {
                            found.push(format!("{}: {code}", path.display()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        scan(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "use crate::server::remote() instead of warp's remote address filter: {found:#?}"
        );
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("example.com:80"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }
}
