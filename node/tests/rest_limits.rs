//! The REST write endpoints' buckets through a real node (`[limits]`): after the configured
//! count a request gets 429 RATE_LIMITED with `retryAfterMs` and `Retry-After`, and nothing
//! happens; other users (or addresses) keep their own buckets.

mod common;

use anyhow::{Context, Result};
use common::{FAST_CONFIG_LIMITED, TestNode, User};
use serde_json::{Value, json};

/// A node with the default buckets but `extra` (lines of the `[limits]` table); registering
/// is not what these tests limit.
async fn node(extra: &str) -> Result<TestNode> {
    TestNode::start_with(&format!(
        "{FAST_CONFIG_LIMITED}[limits]\nlogins_per_min = 1000\n{extra}"
    ))
    .await
}

/// A request's status, `Retry-After` and body.
async fn send(
    node: &TestNode,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Value,
    forwarded_for: Option<&str>,
) -> Result<(u16, Option<u64>, Value)> {
    let mut req = node.http.request(method, node.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((status, retry, resp.json().await.unwrap_or(Value::Null)))
}

/// Asserts a 429 RATE_LIMITED with both hints.
fn assert_limited(what: &str, (status, retry, body): &(u16, Option<u64>, Value)) {
    assert_eq!(*status, 429, "{what}: {body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{what}: {body}");
    assert!(
        body["error"]["details"]["retryAfterMs"].as_u64() > Some(0),
        "{what}: {body}"
    );
    assert!(
        retry.is_some_and(|s| (1..=60).contains(&s)),
        "{what}: Retry-After {retry:?}"
    );
}

fn post() -> reqwest::Method {
    reqwest::Method::POST
}

#[tokio::test]
async fn room_creation_is_limited_per_user() -> Result<()> {
    let node = node("room_creates_per_min = 3\n").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let create = |user: &User, i: usize| {
        let token = user.token.clone();
        let node = &node;
        async move {
            send(
                node,
                post(),
                "/api/v1/rooms",
                Some(&token),
                json!({"name": format!("room {i}")}),
                None,
            )
            .await
        }
    };
    for i in 0..3 {
        let (status, _, body) = create(&alice, i).await?;
        assert_eq!(status, 201, "{body}");
    }
    assert_limited("4th room", &create(&alice, 3).await?);
    let (status, _, body) = create(&bob, 0).await?;
    assert_eq!(status, 201, "bob's bucket is his own: {body}");
    // The refused room was not created.
    let (_, listed) = node
        .get("/api/v1/rooms?limit=100", Some(&alice.token))
        .await?;
    assert_eq!(listed["total"], 4, "{listed}");
    Ok(())
}

#[tokio::test]
async fn opening_conversations_is_limited_per_user() -> Result<()> {
    let node = node("dm_opens_per_min = 2\n").await?;
    let alice = node.register("alice").await?;
    let mut others = Vec::new();
    for name in ["bob", "carol", "dave"] {
        others.push(node.register(name).await?);
    }
    for other in &others[..2] {
        let (status, _, body) = send(
            &node,
            post(),
            "/api/v1/dms",
            Some(&alice.token),
            json!({"userId": other.id}),
            None,
        )
        .await?;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    let third = send(
        &node,
        post(),
        "/api/v1/dms",
        Some(&alice.token),
        json!({"userId": others[2].id}),
        None,
    )
    .await?;
    assert_limited("3rd conversation", &third);
    Ok(())
}

#[tokio::test]
async fn profile_edits_are_limited_per_user() -> Result<()> {
    let node = node("profile_edits_per_min = 2\n").await?;
    let alice = node.register("alice").await?;
    let patch = |name: &str| {
        send(
            &node,
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&alice.token),
            json!({"username": name}),
            None,
        )
    };
    assert_eq!(patch("alice2").await?.0, 200);
    assert_eq!(patch("alice3").await?.0, 200);
    assert_limited("3rd edit", &patch("alice4").await?);
    let (_, me) = node.get("/api/v1/users/me", Some(&alice.token)).await?;
    assert_eq!(
        me["data"]["username"], "alice3",
        "the refused edit changed nothing"
    );
    Ok(())
}

/// Refreshing is unauthenticated: its bucket is the client address's (the peer's, or the
/// `X-Forwarded-For` of a trusted proxy).
#[tokio::test]
async fn refreshes_are_limited_per_address() -> Result<()> {
    let node = node("refreshes_per_min = 2\ntrusted_proxies = [\"127.0.0.1\"]\n").await?;
    let alice = node.register("alice").await?;
    let refresh = |token: String, ip: &'static str| {
        let node = &node;
        async move {
            send(
                node,
                post(),
                "/api/v1/auth/refresh",
                None,
                json!({"refreshToken": token}),
                Some(ip),
            )
            .await
        }
    };
    let (status, _, body) = refresh(alice.refresh.clone(), "203.0.113.1").await?;
    assert_eq!(status, 200, "{body}");
    let next = body["data"]["refreshToken"]
        .as_str()
        .context("rotated token")?
        .to_owned();
    let (status, _, body) = refresh("not-a-token".into(), "203.0.113.1").await?;
    assert_eq!(
        status, 401,
        "a wrong token spends from the bucket too: {body}"
    );
    assert_limited("3rd refresh", &refresh(next.clone(), "203.0.113.1").await?);
    let (status, _, body) = refresh(next, "203.0.113.2").await?;
    assert_eq!(status, 200, "another address: {body}");
    Ok(())
}

/// Join codes cannot be guessed faster than `joins_per_min`, right or wrong, per address and
/// per user.
#[tokio::test]
async fn join_by_code_is_limited_per_address_and_per_user() -> Result<()> {
    let node = node("joins_per_min = 5\ntrusted_proxies = [\"127.0.0.1\"]\n").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let mallory = node.register("mallory").await?;
    let (_, code) = node
        .create_room(&alice, "secret", json!({"isPublic": false}), 100)
        .await?;
    let join = |user: &User, code: String, ip: &'static str| {
        let token = user.token.clone();
        let node = &node;
        async move {
            send(
                node,
                post(),
                &format!("/api/v1/rooms/{code}/join"),
                Some(&token),
                json!({}),
                Some(ip),
            )
            .await
        }
    };
    // From one address: 5 attempts over two users, then that address is refused.
    for i in 0..3 {
        let (status, _, body) = join(&mallory, format!("WRONG{i}AB"), "198.51.100.1").await?;
        assert_eq!(status, 404, "{body}");
    }
    for i in 0..2 {
        let (status, _, body) = join(&bob, format!("WRONG{i}CD"), "198.51.100.1").await?;
        assert_eq!(status, 404, "{body}");
    }
    assert_limited(
        "6th guess from one address",
        &join(&bob, code.clone(), "198.51.100.1").await?,
    );
    // One user from many addresses: their own bucket runs out after 5.
    for i in 0..2 {
        let ip: &'static str = ["198.51.100.10", "198.51.100.11"][i];
        let (status, _, body) = join(&mallory, format!("GUESS{i}XY"), ip).await?;
        assert_eq!(status, 404, "{body}");
    }
    assert_limited(
        "mallory from a fresh address",
        &join(&mallory, code.clone(), "198.51.100.12").await?,
    );
    // Bob, from an address of his own, still joins with the right code.
    let (status, _, body) = join(&bob, code, "198.51.100.20").await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
