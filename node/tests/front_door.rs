//! The front door's connection limits, as the probe of issue 15 found them missing: silent,
//! trickling and idle connections are closed; oversized heads refused; connections capped per
//! client address, while unauthenticated and against the descriptor limit; `CONNECT host:port`
//! answered 400 without a panic; `/ws` refusing foreign origins and CORS only for configured
//! ones.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::front_door::{
    Started, connect_from, exchange, get, read_response, read_until_closed, start_node,
    start_node_with,
};
use common::{FAST_CONFIG, TestNode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

async fn node(extra: &str) -> Result<(tempfile::TempDir, Started)> {
    let dir = tempfile::tempdir()?;
    let started = start_node(dir.path(), &format!("{FAST_CONFIG}{extra}"), &[]).await?;
    Ok((dir, started))
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() -> Result<()> {
    let (_dir, s) = node("[http]\nheader_read_timeout_secs = 1\n").await?;
    let mut silent = TcpStream::connect(s.node.addr).await?;
    let opened = Instant::now();
    read_until_closed(&mut silent, Duration::from_secs(8)).await?;
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_trickled_request_head_is_closed() -> Result<()> {
    let (_dir, s) =
        node("[http]\nheader_read_timeout_secs = 2\nkeep_alive_idle_secs = 30\n").await?;
    let mut slow = TcpStream::connect(s.node.addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let started = Instant::now();
    // One header byte every 200 ms: always active, never done.
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if read_until_closed(&mut slow, Duration::from_millis(1))
            .await
            .is_ok()
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickled head was still open after 8 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() -> Result<()> {
    let (_dir, s) =
        node("[http]\nheader_read_timeout_secs = 30\nkeep_alive_idle_secs = 1\n").await?;
    let mut conn = TcpStream::connect(s.node.addr).await?;
    let host = s.node.addr.to_string();
    let (status, _, _) = exchange(&mut conn, &get("/healthz", &host)).await?;
    assert_eq!(status, 200);
    // A second request on the same connection within the idle time is served.
    let (status, _, _) = exchange(&mut conn, &get("/healthz", &host)).await?;
    assert_eq!(status, 200);
    let idle = Instant::now();
    read_until_closed(&mut conn, Duration::from_secs(8)).await?;
    // The idle timeout, not the 30 s header timeout, closed it.
    assert!(
        idle.elapsed() < Duration::from_secs(5),
        "{:?}",
        idle.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn request_heads_over_the_limit_are_refused() -> Result<()> {
    let (_dir, s) = node("[http]\nmax_header_bytes = 16384\n").await?;
    let host = s.node.addr.to_string();
    let mut ok = TcpStream::connect(s.node.addr).await?;
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert_eq!(exchange(&mut ok, fits.as_bytes()).await?.0, 200);

    let mut big = TcpStream::connect(s.node.addr).await?;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(400 * 1024)
    );
    // The node may answer and close before taking the rest; a failed write is fine.
    let _ = big.write_all(head.as_bytes()).await;
    let got = read_until_closed(&mut big, Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "expected 431 or a close, got {text:?}"
    );
    Ok(())
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_refused_and_others_still_served() -> Result<()> {
    let (_dir, s) =
        node("[http]\nmax_connections_per_ip = 5\nheader_read_timeout_secs = 60\n").await?;
    let addr = s.node.addr;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(ip("127.0.0.1"), addr).await?);
    }
    // The node counts a connection when it accepts it: wait until the sixth is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        let mut sixth = connect_from(ip("127.0.0.1"), addr).await?;
        let _ = sixth.write_all(&get("/healthz", "x")).await;
        let got = read_until_closed(&mut sixth, Duration::from_secs(5)).await?;
        let text = String::from_utf8_lossy(&got).to_string();
        if !text.starts_with("HTTP/1.1 200") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the sixth connection was never refused"
        );
    };
    assert!(
        refusal.is_empty() || refusal.starts_with("HTTP/1.1 429"),
        "{refusal:?}"
    );
    if !refusal.is_empty() {
        assert!(refusal.contains("RATE_LIMITED"), "{refusal}");
    }
    // Another client address is not affected.
    let mut other = connect_from(ip("127.0.0.2"), addr).await?;
    let (status, _, _) = exchange(&mut other, &get("/healthz", "x")).await?;
    assert_eq!(status, 200);
    // Places come back when connections close.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from(ip("127.0.0.1"), addr).await?;
        if let Ok((200, _, _)) = exchange(&mut again, &get("/healthz", "x")).await {
            break;
        }
        assert!(Instant::now() < deadline, "places did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn unauthenticated_connections_are_capped_and_authenticated_ones_do_not_count() -> Result<()>
{
    let (_dir, s) =
        node("[http]\nmax_unauthenticated_connections = 3\nheader_read_timeout_secs = 60\n")
            .await?;
    let addr = s.node.addr;
    let alice = s.node.register("alice").await?;
    // An authenticated WebSocket does not take one of the three places.
    let ws = s.node.ws(&alice).await?;
    let mut held = Vec::new();
    for i in 3..6 {
        held.push(connect_from(ip(&format!("127.0.0.{i}")), addr).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fourth = connect_from(ip("127.0.0.9"), addr).await?;
        let _ = fourth.write_all(&get("/healthz", "x")).await;
        let got = read_until_closed(&mut fourth, Duration::from_secs(5)).await?;
        let text = String::from_utf8_lossy(&got).to_string();
        if !text.starts_with("HTTP/1.1 200") {
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 429"),
                "{text:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the fourth was never refused");
    }
    // The WebSocket still works.
    let mut ws = ws;
    let ack = ws.request("ping", json!({})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    drop(held);
    Ok(())
}

#[tokio::test]
async fn connect_requests_get_400_without_a_panic() -> Result<()> {
    let (_dir, s) = node("").await?;
    for request in [
        "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut conn = TcpStream::connect(s.node.addr).await?;
        let (status, _, body) = exchange(&mut conn, request.as_bytes()).await?;
        assert_eq!(status, 400, "{request:?}: {body}");
        assert!(body.contains("VALIDATION_ERROR"), "{body}");
    }
    let (status, _) = s.node.get("/healthz", None).await?;
    assert_eq!(status, 200);
    let stderr = s.stderr.lock().clone();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

async fn upgrade(node: &TestNode, token: &str, origin: Option<&str>) -> Result<u16> {
    let mut conn = TcpStream::connect(node.addr).await?;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\n{origin}Connection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        node.addr
    );
    conn.write_all(request.as_bytes()).await?;
    Ok(read_response(&mut conn).await?.0)
}

#[tokio::test]
async fn ws_refuses_foreign_origins_and_cors_answers_configured_ones() -> Result<()> {
    let (_dir, s) = node("[http]\nallowed_origins = [\"https://app.example\"]\n").await?;
    let user = s.node.register("olga").await?;
    let own = format!("http://{}", s.node.addr);
    assert_eq!(upgrade(&s.node, &user.token, None).await?, 101, "no Origin");
    assert_eq!(upgrade(&s.node, &user.token, Some(&own)).await?, 101, "own");
    assert_eq!(
        upgrade(&s.node, &user.token, Some("https://app.example")).await?,
        101,
        "configured"
    );
    for foreign in ["https://evil.example", "null", "https://app.example.evil"] {
        assert_eq!(
            upgrade(&s.node, &user.token, Some(foreign)).await?,
            403,
            "{foreign}"
        );
    }
    // Own origin over the other scheme is another origin.
    let https_own = format!("https://{}", s.node.addr);
    assert_eq!(upgrade(&s.node, &user.token, Some(&https_own)).await?, 403);

    let preflight = |origin: &str| {
        s.node
            .http
            .request(reqwest::Method::OPTIONS, s.node.url("/api/v1/rooms"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await?;
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(ok.headers().contains_key("access-control-allow-methods"));
    let refused = preflight("https://evil.example").await?;
    assert_eq!(refused.status(), 403);
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    // A plain request from a configured origin carries the header, others do not.
    let listed = s
        .node
        .http
        .get(s.node.url("/healthz"))
        .header("Origin", "https://app.example")
        .send()
        .await?;
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = s
        .node
        .http
        .get(s.node.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await?;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    // No HSTS on plain HTTP.
    assert!(!other.headers().contains_key("strict-transport-security"));
    Ok(())
}

/// The probe's case: under a 256-descriptor limit, 300 silent connections from one address
/// left nothing for anyone. Now that address gets at most half the connection budget and
/// another client is still served; 300 more from many addresses are refused once the budget
/// is used, the node keeps descriptors to spare, and storage keeps working for clients in.
#[tokio::test]
async fn connections_never_take_the_descriptors_storage_needs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = format!("{FAST_CONFIG}[http]\nheader_read_timeout_secs = 60\n");
    let s = start_node_with(dir.path(), &config, &[], &[], Some(256)).await?;
    let user = s.node.register("dora").await?;
    let (room, _) = s
        .node
        .create_room(&user, "descriptors", json!({}), 10)
        .await?;
    let mut ws = s.node.ws(&user).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(conn) = connect_from(ip("127.0.0.1"), s.node.addr).await {
            held.push(conn);
        }
    }
    let mut other = connect_from(ip("127.0.0.2"), s.node.addr).await?;
    let (status, _, _) = exchange(&mut other, &get("/healthz", "x")).await?;
    assert_eq!(status, 200, "another client is served");
    drop(other);
    for i in 0..300 {
        let from = ip(&format!("127.0.{}.{}", 1 + i / 200, 3 + i % 200));
        if let Ok(conn) = connect_from(from, s.node.addr).await {
            held.push(conn);
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{}/fd", s.node.pid()))?.count();
    assert!(fds < 230, "the node holds {fds} of its 256 descriptors");
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "still stored"}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.node.get("/healthz", None).await.map(|r| r.0).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "new connections never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_scheme_and_host_name_the_own_origin() -> Result<()> {
    let (_dir, s) = node("limits.trusted_proxies = [\"127.0.0.1\"]\n").await?;
    let user = s.node.register("pia").await?;
    let upgrade_via_proxy = |forwarded: &'static str| {
        let addr = s.node.addr;
        let token = user.token.clone();
        async move {
            let mut conn = TcpStream::connect(addr).await?;
            let request = format!(
                "GET /ws?token={token} HTTP/1.1\r\nHost: chat.example\r\n{forwarded}\
                 Origin: https://chat.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            );
            conn.write_all(request.as_bytes()).await?;
            anyhow::Ok(read_response(&mut conn).await?.0)
        }
    };
    // The proxy terminated TLS: the page's https origin is the node's own.
    assert_eq!(
        upgrade_via_proxy("X-Forwarded-Proto: https\r\n").await?,
        101
    );
    // Without the header the node sees plain http, and https://chat.example is foreign.
    assert_eq!(upgrade_via_proxy("").await?, 403);
    Ok(())
}

#[tokio::test]
async fn sigterm_ends_the_node_promptly_with_silent_and_idle_connections_open() -> Result<()> {
    let (_dir, mut s) =
        node("[http]\nheader_read_timeout_secs = 60\nkeep_alive_idle_secs = 60\n").await?;
    let _silent = TcpStream::connect(s.node.addr).await?;
    let mut idle = TcpStream::connect(s.node.addr).await?;
    assert_eq!(exchange(&mut idle, &get("/healthz", "x")).await?.0, 200);
    let started = Instant::now();
    assert_eq!(s.node.terminate()?, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
