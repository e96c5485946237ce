//! Categories of community channels on a real node: created, renamed, reordered and deleted
//! by who manages channels; channels placed in and moved between them; a category whose
//! channels a member cannot see is not shown to them.

mod common;

use common::community::{call, code, found, text};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn categories_order_channels_and_hide_with_them() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Channels", &[&member]).await?;
    let categories = format!("/communities/{id}/categories");
    let channels = format!("/communities/{id}/channels");
    let (status, body) = call(
        &node,
        Method::POST,
        &categories,
        &member,
        Some(json!({"name": "Nope"})),
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let mut made = Vec::new();
    for name in ["Text", "Staff"] {
        let (status, body) = call(
            &node,
            Method::POST,
            &categories,
            &owner,
            Some(json!({"name": name})),
        )
        .await?;
        assert_eq!(status, 201, "{body}");
        made.push(text(&body, "/data/id"));
    }
    let (text_id, staff_id) = (made[0].clone(), made[1].clone());
    let (status, body) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "lost", "categoryId": "12345"})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (_, general) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "general", "categoryId": text_id})),
    )
    .await?;
    assert_eq!(general["data"]["categoryId"], text_id.as_str(), "{general}");
    let (_, secret) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "secret"})),
    )
    .await?;
    let secret = text(&secret, "/data/id");
    // Moved into Staff, and hidden from @everyone there.
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("{channels}/{secret}"),
        &owner,
        Some(json!({"categoryId": staff_id})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &node,
        Method::PUT,
        &format!("{channels}/{secret}/overwrites/{id}"),
        &owner,
        Some(json!({"type": "role", "deny": ["view_channel"]})),
    )
    .await?;
    assert_eq!(status, 200);
    let list = |user: &User| {
        let path = channels.clone();
        let node = &node;
        let user = user.clone();
        async move { call(node, Method::GET, &path, &user, None).await }
    };
    let (_, everything) = list(&owner).await?;
    let names = |v: &Value, key: &str| -> Vec<String> {
        v["data"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(names(&everything, "categories"), ["Text", "Staff"]);
    assert_eq!(names(&everything, "channels"), ["general", "secret"]);
    let (_, seen) = list(&member).await?;
    assert_eq!(
        names(&seen, "categories"),
        ["Text"],
        "an empty category of hidden channels is not shown: {seen}"
    );
    // Renamed and reordered; deleted, its channel stays in no category.
    let (status, _) = call(
        &node,
        Method::PATCH,
        &format!("{categories}/{staff_id}"),
        &owner,
        Some(json!({"name": "Moderators", "position": 0})),
    )
    .await?;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        Method::PATCH,
        &format!("{categories}/{text_id}"),
        &owner,
        Some(json!({"position": 1})),
    )
    .await?;
    assert_eq!(status, 200);
    let (_, everything) = list(&owner).await?;
    assert_eq!(names(&everything, "categories"), ["Moderators", "Text"]);
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("{categories}/{staff_id}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (_, everything) = list(&owner).await?;
    assert_eq!(names(&everything, "categories"), ["Text"]);
    let secret_now = everything["data"]["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == secret.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(secret_now["categoryId"], Value::Null, "{secret_now}");
    let (status, _) = call(
        &node,
        Method::PATCH,
        &format!("{channels}/{}", text(&general, "/data/id")),
        &owner,
        Some(json!({"categoryId": null})),
    )
    .await?;
    assert_eq!(status, 200);
    let (_, everything) = list(&owner).await?;
    assert!(
        everything["data"]["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["categoryId"].is_null()),
        "{everything}"
    );
    Ok(())
}
