//! Community moderation on a real node: timeouts and bans (of members and of people not yet
//! in), within rank, refused joins while banned, lifting both, and the audit entries.

mod common;

use common::community::{call, code, text, with_reason};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn moderators_time_out_and_ban_below_their_rank_and_bans_keep_people_out()
-> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let dave = node.register("dave").await?;
    let (_, created) = call(
        &node,
        Method::POST,
        "/communities",
        &owner,
        Some(json!({"name": "Moderated"})),
    )
    .await?;
    let id = text(&created, "/data/id");
    let (_, invite) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/invites"),
        &owner,
        Some(json!({})),
    )
    .await?;
    let join = format!("/invites/{}/join", text(&invite, "/data/code"));
    for user in [&alice, &bob, &carol] {
        let (status, body) = call(&node, Method::POST, &join, user, None).await?;
        assert_eq!(status, 200, "{body}");
    }
    let (_, mods) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        &owner,
        Some(json!({"name": "Mods", "position": 1, "permissions": ["ban_members", "timeout_members"]})),
    )
    .await?;
    let (status, _) = call(
        &node,
        Method::PUT,
        &format!(
            "/communities/{id}/members/{}/roles/{}",
            alice.id,
            text(&mods, "/data/id")
        ),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);

    // Timeouts.
    let timeout = |user: &User| format!("/communities/{id}/members/{}/timeout", user.id);
    let (status, body) = call(
        &node,
        Method::PUT,
        &timeout(&carol),
        &bob,
        Some(json!({"secs": 60})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "bob holds nothing: {body}"
    );
    let (status, body) = call(
        &node,
        Method::PUT,
        &timeout(&owner),
        &alice,
        Some(json!({"secs": 60})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "never the owner: {body}"
    );
    let (status, body) = call(
        &node,
        Method::PUT,
        &timeout(&bob),
        &alice,
        Some(json!({"secs": 99_999_999})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (status, body) = call(
        &node,
        Method::PUT,
        &timeout(&bob),
        &alice,
        Some(json!({"secs": 600})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["timedOutUntil"].is_string(), "{body}");
    let (_, members) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/members"),
        &owner,
        None,
    )
    .await?;
    let bob_row = members["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["userId"] == bob.id.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(bob_row["timedOutUntil"].is_string(), "{members}");
    let (status, body) = call(
        &node,
        Method::PUT,
        &timeout(&bob),
        &alice,
        Some(json!({"secs": 0})),
    )
    .await?;
    assert_eq!(
        (status, body["data"]["timedOutUntil"].clone()),
        (200, Value::Null),
        "lifted: {body}"
    );

    // Bans: of a member (with a reason), and of someone not in yet.
    let ban = |user: &User| format!("/communities/{id}/bans/{}", user.id);
    let (status, body) = call(&node, Method::PUT, &ban(&carol), &bob, None).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(
        with_reason(&node, Method::PUT, &ban(&carol), &alice, "raiding").await?,
        200
    );
    assert_eq!(
        with_reason(&node, Method::PUT, &ban(&dave), &alice, "known raider").await?,
        200
    );
    let (status, body) = call(
        &node,
        Method::PUT,
        &format!("/communities/{id}/bans/123456789"),
        &alice,
        None,
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (404, Some("NOT_FOUND")),
        "no such user: {body}"
    );
    let (status, _) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}"),
        &carol,
        None,
    )
    .await?;
    assert_eq!(status, 404, "carol is out");
    for banned in [&carol, &dave] {
        let (status, body) = call(&node, Method::POST, &join, banned, None).await?;
        assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    }
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/bans"),
        &bob,
        None,
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, bans) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/bans"),
        &alice,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{bans}");
    let listed: Vec<(String, String)> = bans["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (text(b, "/username"), text(b, "/reason")))
        .collect();
    assert_eq!(
        listed,
        [
            ("carol".to_owned(), "raiding".to_owned()),
            ("dave".to_owned(), "known raider".to_owned())
        ]
    );

    // Lifting a ban lets them back in.
    let (status, _) = call(&node, Method::DELETE, &ban(&carol), &alice, None).await?;
    assert_eq!(status, 200);
    let (status, _) = call(&node, Method::DELETE, &ban(&carol), &alice, None).await?;
    assert_eq!(status, 404, "no ban left");
    let (status, body) = call(&node, Method::POST, &join, &carol, None).await?;
    assert_eq!(
        (status, body["data"]["joined"].clone()),
        (200, json!(true)),
        "{body}"
    );

    let (_, log) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/audit-log?actor={}", alice.id),
        &owner,
        None,
    )
    .await?;
    let actions: Vec<(String, String)> = log["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(e, "/action"), text(e, "/reason")))
        .collect();
    assert_eq!(
        actions,
        [
            ("member.unban".to_owned(), String::new()),
            ("member.ban".to_owned(), "known raider".to_owned()),
            ("member.ban".to_owned(), "raiding".to_owned()),
            ("member.timeout".to_owned(), String::new()),
            ("member.timeout".to_owned(), String::new()),
        ],
        "{log}"
    );
    Ok(())
}
