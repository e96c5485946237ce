//! Helpers of the community tests: REST calls under `/api/v1` as a user, and reading replies.

use reqwest::Method;
use serde_json::{Value, json};

use super::{TestNode, User};

/// The error code of a failed reply.
pub fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// The string at `pointer` (empty if absent).
pub fn text(body: &Value, pointer: &str) -> String {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The item of `body["data"]` whose `field` is `value` (`null` if none).
pub fn item(body: &Value, field: &str, value: &str) -> Value {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v[field] == value)
        .cloned()
        .unwrap_or_default()
}

/// `method /api/v1{path}` as `user`.
pub async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    user: &User,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    node.call(method, &format!("/api/v1{path}"), Some(&user.token), body)
        .await
}

/// `method /api/v1{path}` as `user` with an `X-Audit-Log-Reason`; the status.
pub async fn with_reason(
    node: &TestNode,
    method: Method,
    path: &str,
    user: &User,
    reason: &str,
) -> anyhow::Result<u16> {
    let response = node
        .http
        .request(method, node.url(&format!("/api/v1{path}")))
        .bearer_auth(&user.token)
        .header("X-Audit-Log-Reason", reason)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// Founds a community named `name` as `owner` and lets `members` in with one invite; its id.
pub async fn found(
    node: &TestNode,
    owner: &User,
    name: &str,
    members: &[&User],
) -> anyhow::Result<String> {
    let (status, created) = call(
        node,
        Method::POST,
        "/communities",
        owner,
        Some(json!({ "name": name })),
    )
    .await?;
    anyhow::ensure!(status == 201, "community not created: {status} {created}");
    let id = text(&created, "/data/id");
    let (_, invite) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/invites"),
        owner,
        Some(json!({})),
    )
    .await?;
    let join = format!("/invites/{}/join", text(&invite, "/data/code"));
    for user in members {
        let (status, body) = call(node, Method::POST, &join, user, None).await?;
        anyhow::ensure!(status == 200, "{} not let in: {status} {body}", user.name);
    }
    Ok(id)
}
