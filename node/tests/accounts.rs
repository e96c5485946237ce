//! Registration rules, login, refresh rotation with reuse detection, verify, logout, profile.

mod common;

use common::TestNode;
use serde_json::json;

fn reg(name: &str, email: &str, pw: &str, confirm: &str) -> serde_json::Value {
    json!({"username": name, "email": email, "password": pw, "confirmPassword": confirm})
}

#[tokio::test]
async fn registration_rules_and_conflicts() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let cases = [
        (
            reg("ab", "a@example.com", "password123", "password123"),
            "username",
        ),
        (
            reg("bad name", "a@example.com", "password123", "password123"),
            "username",
        ),
        (
            reg("alice", "not-an-email", "password123", "password123"),
            "email",
        ),
        (reg("alice", "a@example.com", "short", "short"), "password"),
        (
            reg("alice", "a@example.com", "password123", "password124"),
            "confirmPassword",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "password123"}),
            "confirmPassword",
        ),
        (
            json!({"username": 5, "email": "a@example.com", "password": "password123", "confirmPassword": "password123"}),
            "body",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = node
            .post("/api/v1/auth/register", None, body.clone())
            .await?;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert_eq!(resp["success"], false);
        assert_eq!(resp["error"]["code"], "VALIDATION_ERROR");
        if field != "body" {
            assert_eq!(resp["error"]["details"]["field"], field, "{resp}");
        }
    }
    let (status, resp) = node
        .post(
            "/api/v1/auth/register",
            None,
            reg("alice", "Alice@Example.com", "password123", "password123"),
        )
        .await?;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["success"], true);
    assert_eq!(resp["data"]["expiresIn"], 900);
    assert!(resp["data"]["token"].as_str().is_some_and(|t| t.len() > 20));
    assert_eq!(resp["data"]["user"]["email"], "alice@example.com");

    let (status, resp) = node
        .post(
            "/api/v1/auth/register",
            None,
            reg("ALICE", "other@example.com", "password123", "password123"),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
    assert_eq!(resp["error"]["details"]["field"], "username");
    let (status, resp) = node
        .post(
            "/api/v1/auth/register",
            None,
            reg("alice2", "alice@EXAMPLE.com", "password123", "password123"),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
    assert_eq!(resp["error"]["details"]["field"], "email");
    Ok(())
}

#[tokio::test]
async fn login_verify_and_profile() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (status, resp) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "wrongpass1"}),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS"))
    );
    let (status, resp) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "password123"}),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS"))
    );
    let (status, resp) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ALICE@example.com", "password": "password123"}),
        )
        .await?;
    assert_eq!(status, 200, "{resp}");
    let token = resp["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let (status, resp) = node.get("/api/v1/auth/verify", Some(&token)).await?;
    assert_eq!(status, 200);
    assert_eq!(resp["data"]["valid"], true);
    assert_eq!(resp["data"]["user"]["id"], alice.id.as_str());
    let (status, resp) = node
        .get("/api/v1/auth/verify", Some("garbage.token.here"))
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (status, _) = node.get("/api/v1/users/me", None).await?;
    assert_eq!(status, 401);
    // A refresh token is not an access token.
    let (status, _) = node.get("/api/v1/users/me", Some(&alice.refresh)).await?;
    assert_eq!(status, 401);

    let (status, resp) = node
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&token),
            Some(json!({"username": "alice_x", "avatarUrl": "https://example.com/a.png"})),
        )
        .await?;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["data"]["username"], "alice_x");
    let (_, me) = node.get("/api/v1/users/me", Some(&token)).await?;
    assert_eq!(me["data"]["avatarUrl"], "https://example.com/a.png");
    node.register("bob").await?;
    let (status, resp) = node
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&token),
            Some(json!({"username": "Bob"})),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
    let (status, _) = node
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&token),
            Some(json!({"avatarUrl": "javascript:alert(1)"})),
        )
        .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() -> anyhow::Result<()> {
    // No grace window: a second use right after the first is reuse (the window is tested in
    // accounts_sessions.rs).
    let config = format!("{}[sessions]\nrefresh_grace_ms = 0\n", common::FAST_CONFIG);
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let (status, first) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": alice.refresh}),
        )
        .await?;
    assert_eq!(status, 200, "{first}");
    let r2 = first["data"]["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(r2, alice.refresh);
    let access = first["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(node.get("/api/v1/users/me", Some(&access)).await?.0, 200);

    // The old token is dead; presenting it again revokes the whole family, including r2.
    let (status, resp) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": alice.refresh}),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (status, _) = node
        .post("/api/v1/auth/refresh", None, json!({"refreshToken": r2}))
        .await?;
    assert_eq!(status, 401, "the family must be revoked after reuse");

    // Logout revokes a fresh login's refresh token.
    let (_, login) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "password123"}),
        )
        .await?;
    let token = login["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = login["data"]["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = node
        .post(
            "/api/v1/auth/logout",
            Some(&token),
            json!({"refreshToken": refresh}),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, _) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": refresh}),
        )
        .await?;
    assert_eq!(status, 401);
    let (status, _) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": "not-a-jwt"}),
        )
        .await?;
    assert_eq!(status, 401);
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_bad_bodies_get_json_errors() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let (status, resp) = node.get("/api/v1/nope", None).await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let resp = node
        .http
        .post(node.url("/api/v1/auth/login"))
        .body("{not json")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    // Just over the 64 KiB limit, small enough to sit in loopback socket buffers whole.
    let huge = "x".repeat(70_000);
    // Its own client: the server closes a connection whose oversized body it refused unread.
    let resp = reqwest::Client::new()
        .post(node.url("/api/v1/auth/login"))
        .body(huge)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(node.get("/healthz", None).await?.0, 200);
    assert_eq!(node.get("/readyz", None).await?.0, 200);
    let metrics = node.metrics_text().await?;
    assert!(metrics.contains("voiceflow_connections_open"), "{metrics}");
    Ok(())
}
