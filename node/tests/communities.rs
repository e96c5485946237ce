//! Communities over REST on a real node: create, list, read, edit and delete a community;
//! roles with their permissions, ranks and `@everyone`'s rules; granting roles; the member
//! list; and a community that is not yours answering NOT_FOUND.

mod common;

use common::TestNode;
use common::community::{call, code};
use reqwest::Method;
use serde_json::json;
use voiceflow_wire::v1::permissions::Permissions;

#[tokio::test]
async fn an_owner_builds_a_community_with_roles_and_strangers_cannot_see_it() -> anyhow::Result<()>
{
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let stranger = node.register("stranger").await?;

    // Creation, with its validation.
    for bad in [json!({"name": "   "}), json!({"name": "x", "colour": 1})] {
        let (status, body) = call(&node, Method::POST, "/communities", &owner, Some(bad)).await?;
        assert_eq!(
            (status, code(&body)),
            (400, Some("VALIDATION_ERROR")),
            "{body}"
        );
    }
    let (status, created) = call(
        &node,
        Method::POST,
        "/communities",
        &owner,
        Some(json!({"name": "  Rustaceans ", "description": "crabs"})),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(created["data"]["name"], "Rustaceans");
    assert_eq!(created["data"]["ownerId"], owner.id.as_str());

    let (_, mine) = call(&node, Method::GET, "/communities", &owner, None).await?;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{mine}");
    let (status, detail) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{detail}");
    let roles = detail["data"]["roles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(roles.len(), 1, "only @everyone: {detail}");
    assert_eq!(roles[0]["everyone"], true);
    assert_eq!(
        roles[0]["id"],
        id.as_str(),
        "@everyone's id is the community's"
    );
    assert!(
        roles[0]["permissions"].as_array().is_some_and(
            |p| p.contains(&json!("send_messages")) && !p.contains(&json!("kick_members"))
        ),
        "{detail}"
    );
    assert_eq!(
        detail["data"]["permissions"].as_array().map(Vec::len),
        Some(Permissions::all().bits().count_ones() as usize),
        "the owner may do everything"
    );

    // A stranger learns nothing, not even that it exists.
    for (method, path) in [
        (Method::GET, format!("/communities/{id}")),
        (Method::PATCH, format!("/communities/{id}")),
        (Method::DELETE, format!("/communities/{id}")),
        (Method::GET, format!("/communities/{id}/roles")),
        (Method::GET, format!("/communities/{id}/members")),
        (Method::GET, "/communities/123456".to_owned()),
    ] {
        let (status, body) = call(&node, method, &path, &stranger, Some(json!({}))).await?;
        assert_eq!(
            (status, code(&body)),
            (404, Some("NOT_FOUND")),
            "{path}: {body}"
        );
    }
    let (_, theirs) = call(&node, Method::GET, "/communities", &stranger, None).await?;
    assert_eq!(theirs["data"], json!([]));

    // Roles: created with names of permissions, ranked above @everyone.
    let roles_path = format!("/communities/{id}/roles");
    let (status, body) = call(
        &node,
        Method::POST,
        &roles_path,
        &owner,
        Some(json!({"name": "Mods", "permissions": ["kick_members", "fly"]})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`fly`")),
        "{body}"
    );
    let (status, body) = call(
        &node,
        Method::POST,
        &roles_path,
        &owner,
        Some(json!({"name": "Mods", "position": 0})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (status, mods) = call(
        &node,
        Method::POST,
        &roles_path,
        &owner,
        Some(json!({"name": "Mods", "color": 0x3366ff, "position": 2,
                    "permissions": ["kick_members", "manage_roles", "timeout_members"]})),
    )
    .await?;
    assert_eq!(status, 201, "{mods}");
    let mods_id = mods["data"]["id"].as_str().unwrap_or_default().to_owned();
    let (status, helpers) = call(
        &node,
        Method::POST,
        &roles_path,
        &owner,
        Some(json!({"name": "Helpers"})),
    )
    .await?;
    assert_eq!(
        (status, helpers["data"]["position"].clone()),
        (201, json!(1)),
        "{helpers}"
    );
    let helpers_id = helpers["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let (status, edited) = call(
        &node,
        Method::PATCH,
        &format!("{roles_path}/{helpers_id}"),
        &owner,
        Some(json!({"name": "Helpers!", "permissions": ["mute_members"], "color": 0xffffff})),
    )
    .await?;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["data"]["permissions"], json!(["mute_members"]));
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("{roles_path}/{helpers_id}"),
        &owner,
        Some(json!({"color": 0x1000000})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );

    // @everyone: permissions change; its name and position do not; it cannot go.
    let everyone = format!("{roles_path}/{id}");
    let (status, body) = call(
        &node,
        Method::PATCH,
        &everyone,
        &owner,
        Some(json!({"permissions": ["view_channel"]})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    for (method, body) in [
        (Method::PATCH, Some(json!({"name": "all"}))),
        (Method::DELETE, None),
    ] {
        let (status, body) = call(&node, method, &everyone, &owner, body).await?;
        assert_eq!(
            (status, code(&body)),
            (400, Some("VALIDATION_ERROR")),
            "{body}"
        );
    }

    // Granting a role, the member list, taking it away.
    let grant = format!("/communities/{id}/members/{}/roles/{mods_id}", owner.id);
    let (status, body) = call(&node, Method::PUT, &grant, &owner, None).await?;
    assert_eq!(status, 200, "{body}");
    let (status, page) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/members?limit=10"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["userId"], owner.id.as_str());
    assert_eq!(page["data"][0]["username"], "owner");
    assert_eq!(page["data"][0]["roles"], json!([mods_id]));
    assert_eq!(page["hasMore"], false);
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/members?limit=0"),
        &owner,
        None,
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
        &format!("/communities/{id}/members/{}/roles/{mods_id}", stranger.id),
        &owner,
        None,
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (404, Some("NOT_FOUND")),
        "not a member: {body}"
    );
    let (status, _) = call(&node, Method::DELETE, &grant, &owner, None).await?;
    assert_eq!(status, 200);

    // Deleting a role; the community's edit and delete.
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("{roles_path}/{helpers_id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (_, roles) = call(&node, Method::GET, &roles_path, &owner, None).await?;
    assert_eq!(roles["data"].as_array().map(Vec::len), Some(2), "{roles}");
    let (status, patched) = call(
        &node,
        Method::PATCH,
        &format!("/communities/{id}"),
        &owner,
        Some(json!({"name": "Crabs", "description": ""})),
    )
    .await?;
    assert_eq!(
        (status, patched["data"]["name"].clone()),
        (200, json!("Crabs")),
        "{patched}"
    );
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/communities/{id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 404);
    let (_, mine) = call(&node, Method::GET, "/communities", &owner, None).await?;
    assert_eq!(mine["data"], json!([]));
    Ok(())
}
