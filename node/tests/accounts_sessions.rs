//! Sessions tied to the account: a rename reaches open sockets and rooms, logout and refresh
//! reuse close the sign-in's sockets (4003), an expired access token closes a socket that did
//! not send `auth:refresh` (4001), acks that match what happened, `nbf`, and the refresh grace
//! window for tabs refreshing at once.

mod common;

use std::time::Duration;

use common::{FAST_CONFIG, TestNode, User, WsClient};
use serde_json::{Value, json};

fn error_code(ack: &Value) -> Option<&str> {
    ack["error"]["code"].as_str()
}

async fn public_room(node: &TestNode, owner: &User) -> anyhow::Result<String> {
    Ok(node
        .create_room(owner, "lobby", json!({"isPublic": true}), 10)
        .await?
        .0)
}

async fn private_room(node: &TestNode, owner: &User) -> anyhow::Result<String> {
    Ok(node
        .create_room(owner, "den", json!({"isPublic": false}), 10)
        .await?
        .0)
}

async fn join(ws: &mut WsClient, room: &str) -> anyhow::Result<Value> {
    ws.request("room:join", json!({"roomId": room})).await
}

#[tokio::test]
async fn a_rename_reaches_sockets_opened_under_the_old_name() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let room = public_room(&node, &alice).await?;
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    assert_eq!(join(&mut a, &room).await?["ok"], true);
    assert_eq!(join(&mut b, &room).await?["ok"], true);

    let (status, me) = node
        .call(
            reqwest::Method::PATCH,
            "/api/v1/users/me",
            Some(&alice.token),
            Some(json!({"username": "alicia"})),
        )
        .await?;
    assert_eq!(status, 200, "{me}");
    // Someone else takes the old name at once.
    let (status, impostor) = node
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "alice", "email": "impostor@example.com",
                   "password": "password123", "confirmPassword": "password123"}),
        )
        .await?;
    assert_eq!(status, 201, "the old name is free: {impostor}");

    // The socket and its token were opened as "alice"; the message goes out as "alicia".
    let sent = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "after the rename"}),
        )
        .await?;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(sent["data"]["message"]["username"], "alicia", "{sent}");
    let seen = b
        .wait_for(|v| v["type"] == "message:received" && v["data"]["content"] == "after the rename")
        .await?;
    assert_eq!(seen["data"]["username"], "alicia", "{seen}");
    assert_eq!(seen["data"]["userId"], alice.id.as_str());

    // A new socket opened with the old token, joining a room alice was never in, too.
    let fresh = public_room(&node, &bob).await?;
    let mut again = node.ws(&alice).await?;
    assert_eq!(join(&mut again, &fresh).await?["ok"], true);
    let sent = again
        .request(
            "message:send",
            json!({"roomId": fresh, "content": "new room"}),
        )
        .await?;
    assert_eq!(sent["data"]["message"]["username"], "alicia", "{sent}");

    // REST posts with the old token, and the member list, show the new name too.
    let (status, posted) = node
        .post(
            "/api/v1/messages",
            Some(&alice.token),
            json!({"roomId": room, "content": "over REST"}),
        )
        .await?;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["data"]["message"]["username"], "alicia", "{posted}");
    let (_, members) = node
        .get(&format!("/api/v1/rooms/{room}/members"), Some(&bob.token))
        .await?;
    let names: Vec<&str> = members["data"]
        .as_array()
        .map(|m| m.iter().filter_map(|p| p["username"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"alicia") && !names.contains(&"alice"),
        "{members}"
    );
    Ok(())
}

#[tokio::test]
async fn logout_closes_the_sockets_of_that_sign_in_with_4003() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    // A second sign-in (another device) stays connected.
    let (status, login) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "password123"}),
        )
        .await?;
    assert_eq!(status, 200, "{login}");
    let other_token = login["data"]["token"].as_str().unwrap_or_default();
    let mut phone = WsClient::connect(node.addr, other_token).await?;
    let mut laptop = node.ws(&alice).await?;
    assert_eq!(laptop.request("ping", json!({})).await?["ok"], true);

    let (status, out) = node
        .post(
            "/api/v1/auth/logout",
            Some(&alice.token),
            json!({"refreshToken": alice.refresh}),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(laptop.closed().await?, Some(4003));
    assert_eq!(phone.request("ping", json!({})).await?["ok"], true);

    // Logging out without a body ends the sign-in of the access token used.
    let (status, _) = node
        .post("/api/v1/auth/logout", Some(other_token), json!({}))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(phone.closed().await?, Some(4003));
    let refresh = login["data"]["refreshToken"].as_str().unwrap_or_default();
    let (status, _) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": refresh}),
        )
        .await?;
    assert_eq!(status, 401, "that sign-in is revoked");
    Ok(())
}

#[tokio::test]
async fn refresh_token_reuse_closes_the_sign_ins_sockets() -> anyhow::Result<()> {
    let config = format!("{FAST_CONFIG}[sessions]\nrefresh_grace_ms = 0\n");
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let mut ws = node.ws(&alice).await?;
    let body = json!({"refreshToken": alice.refresh});
    let (status, _) = node
        .post("/api/v1/auth/refresh", None, body.clone())
        .await?;
    assert_eq!(status, 200);
    let (status, _) = node.post("/api/v1/auth/refresh", None, body).await?;
    assert_eq!(status, 401);
    assert_eq!(ws.closed().await?, Some(4003));
    Ok(())
}

/// Refreshes `user`'s sign-in until the new access token expires after `after` (Unix ms;
/// expiry has a resolution of a second), then sends it as `auth:refresh` on `ws`.
async fn extend(
    node: &TestNode,
    user: &mut User,
    ws: &mut WsClient,
    after: u64,
) -> anyhow::Result<u64> {
    loop {
        let (status, pair) = node
            .post(
                "/api/v1/auth/refresh",
                None,
                json!({"refreshToken": user.refresh}),
            )
            .await?;
        anyhow::ensure!(status == 200, "refresh: {status} {pair}");
        user.refresh = pair["data"]["refreshToken"]
            .as_str()
            .unwrap_or_default()
            .into();
        user.token = pair["data"]["token"].as_str().unwrap_or_default().into();
        let ack = ws
            .request("auth:refresh", json!({"token": user.token}))
            .await?;
        anyhow::ensure!(ack["ok"] == true, "auth:refresh: {ack}");
        let expires_at = ack["data"]["expiresAt"].as_u64().unwrap_or_default();
        if expires_at > after {
            return Ok(expires_at);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_token_closes_a_socket_unless_it_was_refreshed() -> anyhow::Result<()> {
    let config = format!("access_token_ttl_secs = 2\n{FAST_CONFIG}");
    let node = TestNode::start_with(&config).await?;
    let mut alice = node.register("alice").await?;
    let mut stale = node.ws(&alice).await?;
    let mut kept = node.ws(&alice).await?;

    // Refusals first: garbage, and another user's token.
    let bad = kept
        .request("auth:refresh", json!({"token": "not-a-jwt"}))
        .await?;
    assert_eq!(error_code(&bad), Some("UNAUTHORIZED"), "{bad}");
    let bob = node.register("bob").await?;
    let foreign = kept
        .request("auth:refresh", json!({"token": bob.token}))
        .await?;
    assert_eq!(error_code(&foreign), Some("FORBIDDEN"), "{foreign}");

    let first_expiry = kept
        .request("auth:refresh", json!({"token": alice.token}))
        .await?;
    let first_expiry = first_expiry["data"]["expiresAt"]
        .as_u64()
        .unwrap_or_default();
    assert!(first_expiry > 0);
    extend(&node, &mut alice, &mut kept, first_expiry).await?;

    assert_eq!(stale.closed().await?, Some(4001), "the unrefreshed socket");
    let pong = kept.request("ping", json!({})).await?;
    assert_eq!(
        pong["ok"], true,
        "the refreshed socket outlives the first token"
    );
    Ok(())
}

#[tokio::test]
async fn acks_say_what_happened() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let den = private_room(&node, &alice).await?;
    let lobby = public_room(&node, &alice).await?;
    let other = public_room(&node, &alice).await?;
    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    assert_eq!(join(&mut a, &den).await?["ok"], true);

    // Typing in a room the session could not join.
    let refused = join(&mut b, &den).await?;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let typing = b.request("typing:start", json!({"roomId": den})).await?;
    assert_eq!(error_code(&typing), Some("FORBIDDEN"), "{typing}");
    assert!(
        !a.sees_within(Duration::from_millis(300), |v| v["type"] == "user:typing")
            .await,
        "nobody sees typing from outside"
    );

    // Leaving a room one is not a member of (after a failed join, and without one), and an
    // unknown room.
    let leave = b.request("room:leave", json!({"roomId": den})).await?;
    assert_eq!(error_code(&leave), Some("FORBIDDEN"), "{leave}");
    let leave = b.request("room:leave", json!({"roomId": den})).await?;
    assert_eq!(error_code(&leave), Some("FORBIDDEN"), "{leave}");
    let leave = b
        .request("room:leave", json!({"roomId": "123456789"}))
        .await?;
    assert_eq!(error_code(&leave), Some("ROOM_NOT_FOUND"), "{leave}");
    // A member's leave is fine, twice.
    assert_eq!(join(&mut b, &lobby).await?["ok"], true);
    for _ in 0..2 {
        let leave = b.request("room:leave", json!({"roomId": lobby})).await?;
        assert_eq!(leave["ok"], true, "{leave}");
    }

    // A read marker naming another room's message.
    assert_eq!(join(&mut a, &lobby).await?["ok"], true);
    assert_eq!(join(&mut a, &other).await?["ok"], true);
    let sent = a
        .request(
            "message:send",
            json!({"roomId": other, "content": "elsewhere"}),
        )
        .await?;
    let foreign_id = sent["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sent = a
        .request("message:send", json!({"roomId": lobby, "content": "here"}))
        .await?;
    let own_id = sent["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let read = a
        .request(
            "message:read",
            json!({"roomId": lobby, "messageId": foreign_id}),
        )
        .await?;
    assert_eq!(error_code(&read), Some("NOT_FOUND"), "{read}");
    let read = a
        .request(
            "message:read",
            json!({"roomId": lobby, "messageId": own_id}),
        )
        .await?;
    assert_eq!(read["ok"], true, "{read}");
    assert_eq!(read["data"]["messageId"], own_id.as_str());
    Ok(())
}

/// An HS256 token signed with the test node's secret.
fn forge(claims: &Value) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

const SECRET: &str = "a-test-secret-of-enough-length-0123456789";

#[tokio::test]
async fn tokens_not_yet_valid_are_refused() -> anyhow::Result<()> {
    let config = format!("jwt_secret = \"{SECRET}\"\n{FAST_CONFIG}");
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let now = voiceflow_wire::ids::now_ms() / 1000;
    let token = |nbf: u64| {
        forge(&json!({
            "sub": alice.id, "iss": "voiceflow", "iat": now, "exp": now + 600,
            "nbf": nbf, "typ": "access", "name": "alice"
        }))
    };
    let (status, body) = node
        .get("/api/v1/users/me", Some(&token(now + 3600)?))
        .await?;
    assert_eq!(status, 401, "nbf an hour ahead: {body}");
    assert!(
        WsClient::connect(node.addr, &token(now + 3600)?)
            .await
            .is_err(),
        "no WebSocket either"
    );
    // Within the leeway (5 s) a clock a little behind the issuer's is fine.
    let (status, body) = node.get("/api/v1/users/me", Some(&token(now + 2)?)).await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = node.get("/api/v1/users/me", Some(&token(now)?)).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn tabs_refreshing_at_once_share_one_successor() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let mut ws = node.ws(&alice).await?;
    let body = json!({"refreshToken": alice.refresh});
    let tabs = (0..4).map(|_| node.post("/api/v1/auth/refresh", None, body.clone()));
    let answers = futures_util::future::join_all(tabs).await;
    let mut successors = Vec::new();
    for answer in answers {
        let (status, pair) = answer?;
        assert_eq!(status, 200, "{pair}");
        successors.push(
            pair["data"]["refreshToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    successors.dedup();
    assert_eq!(
        successors.len(),
        1,
        "one successor for every tab: {successors:?}"
    );
    // The sign-in is intact: the successor works and the socket stays open.
    let (status, next) = node
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refreshToken": successors[0]}),
        )
        .await?;
    assert_eq!(status, 200, "{next}");
    assert_eq!(ws.request("ping", json!({})).await?["ok"], true);
    Ok(())
}
