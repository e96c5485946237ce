//! Joining communities by invite, and what members may do to each other, on a real node:
//! invites (uses, revocation, who may list them), the permissions a member gets from
//! `@everyone` and from roles, rank (a moderator manages and kicks only those below), leaving.

mod common;

use common::community::{call, code, text, with_reason};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn members_join_by_invite_and_act_within_their_rank() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (_, created) = call(
        &node,
        Method::POST,
        "/communities",
        &owner,
        Some(json!({"name": "Guild"})),
    )
    .await?;
    let id = text(&created, "/data/id");
    let invites = format!("/communities/{id}/invites");

    // Invites: validation, two uses, a repeat join spends none, the third person is refused.
    for bad in [
        json!({"maxUses": 0}),
        json!({"expiresInSecs": 5}),
        json!({"uses": 1}),
    ] {
        let (status, body) = call(&node, Method::POST, &invites, &owner, Some(bad)).await?;
        assert_eq!(
            (status, code(&body)),
            (400, Some("VALIDATION_ERROR")),
            "{body}"
        );
    }
    let (status, invite) = call(
        &node,
        Method::POST,
        &invites,
        &owner,
        Some(json!({"maxUses": 2, "expiresInSecs": 3600})),
    )
    .await?;
    assert_eq!(status, 201, "{invite}");
    let invite_code = text(&invite, "/data/code");
    let (status, preview) = call(
        &node,
        Method::GET,
        &format!("/invites/{}", invite_code.to_lowercase()),
        &carol,
        None,
    )
    .await?;
    assert_eq!(
        (status, text(&preview, "/data/community/name")),
        (200, "Guild".into()),
        "{preview}"
    );
    let join = format!("/invites/{invite_code}/join");
    let (status, body) = call(&node, Method::POST, &join, &alice, None).await?;
    assert_eq!(
        (status, body["data"]["joined"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let (_, body) = call(&node, Method::POST, &join, &alice, None).await?;
    assert_eq!(body["data"]["joined"], false, "already in: {body}");
    let (status, _) = call(&node, Method::POST, &join, &bob, None).await?;
    assert_eq!(status, 200);
    let (status, body) = call(&node, Method::POST, &join, &carol, None).await?;
    assert_eq!(
        (status, code(&body)),
        (404, Some("NOT_FOUND")),
        "used up: {body}"
    );
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/invites/{invite_code}"),
        &carol,
        None,
    )
    .await?;
    assert_eq!(status, 404, "{body}");

    // What @everyone gives: members see the community and make invites, nothing more.
    let (status, seen) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}"),
        &alice,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{seen}");
    assert!(
        !seen["data"]["permissions"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("manage_roles")))
    );
    let (status, body) = call(&node, Method::GET, &invites, &alice, None).await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "listing needs manage_community: {body}"
    );
    let (status, own) = call(&node, Method::POST, &invites, &alice, Some(json!({}))).await?;
    assert_eq!(status, 201, "{own}");
    let own_code = text(&own, "/data/code");
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("{invites}/{own_code}"),
        &alice,
        None,
    )
    .await?;
    assert_eq!(status, 200, "her own invite");
    let (status, _) = call(
        &node,
        Method::POST,
        &format!("/invites/{own_code}/join"),
        &carol,
        None,
    )
    .await?;
    assert_eq!(status, 404, "revoked");
    let (status, listed) = call(&node, Method::GET, &invites, &owner, None).await?;
    assert_eq!(status, 200);
    let uses: Vec<(String, u64, bool)> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                text(i, "/code"),
                i["uses"].as_u64().unwrap_or(0),
                i["revoked"] == true,
            )
        })
        .collect();
    assert!(
        uses.contains(&(invite_code.clone(), 2, false)) && uses.contains(&(own_code, 0, true)),
        "{listed}"
    );
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        &alice,
        Some(json!({"name": "Mine"})),
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");

    // A moderator (rank 2) manages and kicks below, never at or above, and grants only what
    // she holds.
    let roles = format!("/communities/{id}/roles");
    let (_, mods) = call(
        &node,
        Method::POST,
        &roles,
        &owner,
        Some(
            json!({"name": "Mods", "position": 2, "permissions": ["kick_members", "manage_roles"]}),
        ),
    )
    .await?;
    let mods_id = text(&mods, "/data/id");
    let (_, helpers) = call(
        &node,
        Method::POST,
        &roles,
        &owner,
        Some(json!({"name": "Helpers", "position": 1})),
    )
    .await?;
    let helpers_id = text(&helpers, "/data/id");
    let member_role =
        |user: &User, role: &str| format!("/communities/{id}/members/{}/roles/{role}", user.id);
    let (status, _) = call(
        &node,
        Method::PUT,
        &member_role(&alice, &mods_id),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, body) = call(
        &node,
        Method::POST,
        &roles,
        &alice,
        Some(json!({"name": "Bans", "permissions": ["ban_members"]})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "not hers to grant: {body}"
    );
    let (status, body) = call(
        &node,
        Method::POST,
        &roles,
        &alice,
        Some(json!({"name": "Peers", "position": 2})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "not at her rank: {body}"
    );
    let (status, body) = call(
        &node,
        Method::POST,
        &roles,
        &alice,
        Some(json!({"name": "Juniors", "permissions": ["kick_members"]})),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("{roles}/{mods_id}"),
        &alice,
        Some(json!({"color": 1})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "her own rank: {body}"
    );
    let (status, _) = call(
        &node,
        Method::PUT,
        &member_role(&bob, &helpers_id),
        &alice,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, body) = call(
        &node,
        Method::PUT,
        &member_role(&bob, &mods_id),
        &alice,
        None,
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");

    let kick = |user: &User| format!("/communities/{id}/members/{}", user.id);
    let (status, body) = call(&node, Method::DELETE, &kick(&alice), &bob, None).await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "bob may not kick: {body}"
    );
    let (status, body) = call(&node, Method::DELETE, &kick(&owner), &alice, None).await?;
    assert_eq!(
        (status, code(&body)),
        (403, Some("FORBIDDEN")),
        "never the owner: {body}"
    );
    let reason = "spamming the lobby";
    let kicked = with_reason(&node, Method::DELETE, &kick(&bob), &alice, reason).await?;
    assert_eq!(kicked, 200);
    let (status, _) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}"),
        &bob,
        None,
    )
    .await?;
    assert_eq!(status, 404, "bob is out");
    let (status, _) = call(&node, Method::DELETE, &kick(&bob), &alice, None).await?;
    assert_eq!(status, 404, "no longer a member");

    // Leaving: members may, the owner may not.
    let me = format!("/communities/{id}/members/me");
    let (status, body) = call(&node, Method::DELETE, &me, &owner, None).await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (status, _) = call(&node, Method::DELETE, &me, &alice, None).await?;
    assert_eq!(status, 200);
    let (_, mine) = call(&node, Method::GET, "/communities", &alice, None).await?;
    assert_eq!(mine["data"], json!([]));
    let (_, members) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/members"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(
        members["data"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    Ok(())
}
