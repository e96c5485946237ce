//! Searching a community's members by the start of their username on a real node
//! (`GET /communities/:id/members?prefix=`): case-insensitive, by lower-cased name then id,
//! paged with `nextAfter`; kicks, bans, leaves and renames show at once. On the embedded
//! store, and on CQL when `VOICEFLOW_TEST_CQL` names a server.

mod common;

use common::community::{call, code, found};
use common::{TestNode, User, scylla_config};
use reqwest::Method;
use serde_json::{Value, json};
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// Every name a search finds, following `nextAfter` with pages of `limit`.
async fn search(
    node: &TestNode,
    id: &str,
    user: &User,
    prefix: &str,
    limit: u32,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/communities/{id}/members?prefix={prefix}&limit={limit}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, body) = call(node, Method::GET, &path, user, None).await?;
        anyhow::ensure!(status == 200, "{path}: {status} {body}");
        let page = body["data"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(page.len() <= limit as usize, "{body}");
        names.extend(
            page.iter()
                .filter_map(|m| m["username"].as_str().map(str::to_owned)),
        );
        match (body["hasMore"].as_bool(), body["nextAfter"].as_str()) {
            (Some(true), Some(next)) => after = Some(next.to_owned()),
            (Some(false), None) => return Ok(names),
            other => anyhow::bail!("page end without a cursor: {other:?} {body}"),
        }
    }
}

async fn scenario(node: &TestNode) -> anyhow::Result<()> {
    let owner = node.register("Zoe").await?;
    let mut users = Vec::new();
    for name in ["bob", "Bobby", "BOBCAT", "bo_", "alice", "bea"] {
        users.push(node.register(name).await?);
    }
    let outsider = node.register("bobo").await?;
    let refs: Vec<&User> = users.iter().collect();
    let id = found(node, &owner, "Guild", &refs).await?;

    let bo = ["bo_", "bob", "Bobby", "BOBCAT"]
        .map(str::to_owned)
        .to_vec();
    for limit in [1, 3, 100] {
        assert_eq!(
            search(node, &id, &users[4], "Bo", limit).await?,
            bo,
            "{limit}"
        );
    }
    assert_eq!(search(node, &id, &owner, "", 100).await?.len(), 7);
    assert_eq!(
        search(node, &id, &owner, "x", 10).await?,
        Vec::<String>::new()
    );
    let first = format!("/communities/{id}/members?prefix=b&limit=2");
    let (_, body) = call(node, Method::GET, &first, &owner, None).await?;
    let cursor = body["nextAfter"].as_str().unwrap_or_default().to_owned();
    let want_cursor = format!("{}:bo_", users[3].id);
    assert_eq!(
        cursor, want_cursor,
        "cursor is <userId>:<lower-cased name>: {body}"
    );
    assert!(body["data"][0]["roles"].is_array(), "{body}");

    // Non-members see nothing; a bad cursor is a validation error.
    let (status, _) = call(node, Method::GET, &first, &outsider, None).await?;
    assert_eq!(status, 404);
    let bad = format!("/communities/{id}/members?prefix=b&after=bob");
    let (status, body) = call(node, Method::GET, &bad, &owner, None).await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );

    // A kick, a ban, a leave and a rename.
    let kick = format!("/communities/{id}/members/{}", users[0].id);
    let (status, body) = call(node, Method::DELETE, &kick, &owner, None).await?;
    assert_eq!(status, 200, "{body}");
    let ban = format!("/communities/{id}/bans/{}", users[2].id);
    let (status, body) = call(node, Method::PUT, &ban, &owner, None).await?;
    assert_eq!(status, 200, "{body}");
    let leave = format!("/communities/{id}/members/me");
    let (status, body) = call(node, Method::DELETE, &leave, &users[3], None).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        node,
        Method::PATCH,
        "/users/me",
        &users[1],
        Some(json!({"username": "Robert"})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        search(node, &id, &owner, "bo", 10).await?,
        Vec::<String>::new()
    );
    assert_eq!(search(node, &id, &owner, "RO", 10).await?, vec!["Robert"]);
    assert_eq!(
        search(node, &id, &owner, "", 10).await?,
        vec!["alice", "bea", "Robert", "Zoe"]
    );

    // The list by id still pages as before.
    let (status, body) = call(
        node,
        Method::GET,
        &format!("/communities/{id}/members?limit=2"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(
        (status, body["hasMore"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert!(body.get("nextAfter").is_none_or(Value::is_null), "{body}");
    Ok(())
}

#[tokio::test]
async fn members_are_searched_by_name_prefix_on_the_embedded_store() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    scenario(&node).await
}

#[tokio::test]
async fn members_are_searched_by_name_prefix_on_cql() -> anyhow::Result<()> {
    let test = "members_are_searched_by_name_prefix_on_cql";
    let keyspace = random_keyspace("vf_search");
    let (Some(config), Some(points)) = (scylla_config(&keyspace), contact_points_from_env()) else {
        announce_skip(test);
        return Ok(());
    };
    let node = TestNode::start_with(&config).await?;
    let outcome = scenario(&node).await;
    drop(node);
    if let Err(e) = drop_keyspace(&CqlConfig::for_test_server(points, &keyspace)).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}
