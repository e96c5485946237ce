//! Blocking and who may reach a user: a blocked user cannot open a DM with, call or message
//! the blocker; the contact setting (everyone / shared_room / nobody) gates DMs and calls.

mod common;

use common::{TestNode, User};
use serde_json::{Value, json};

async fn open_dm(node: &TestNode, by: &User, with: &User) -> anyhow::Result<(u16, Value)> {
    node.post("/api/v1/dms", Some(&by.token), json!({"userId": with.id}))
        .await
}

async fn set_contact(node: &TestNode, user: &User, contact: &str) -> anyhow::Result<(u16, Value)> {
    node.call(
        reqwest::Method::PATCH,
        "/api/v1/users/me/settings",
        Some(&user.token),
        Some(json!({"contact": contact})),
    )
    .await
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test]
async fn blocked_people_cannot_open_a_dm_call_or_message() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (status, dm) = open_dm(&node, &bob, &alice).await?;
    assert_eq!(status, 201, "{dm}");
    let dm_id = dm["data"]["id"].as_str().unwrap_or_default().to_owned();

    // Block: validation, unknown users, idempotence, the list.
    let put = |who: &str| format!("/api/v1/users/me/blocks/{who}");
    let (status, body) = node
        .call(
            reqwest::Method::PUT,
            &put(&alice.id),
            Some(&alice.token),
            None,
        )
        .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (status, _) = node
        .call(
            reqwest::Method::PUT,
            &put("123456789"),
            Some(&alice.token),
            None,
        )
        .await?;
    assert_eq!(status, 404);
    for _ in 0..2 {
        let (status, body) = node
            .call(
                reqwest::Method::PUT,
                &put(&bob.id),
                Some(&alice.token),
                None,
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["userId"], bob.id.as_str());
    }
    let (_, list) = node
        .get("/api/v1/users/me/blocks", Some(&alice.token))
        .await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["data"][0]["username"], "bob");
    let (_, theirs) = node
        .get("/api/v1/users/me/blocks", Some(&bob.token))
        .await?;
    assert_eq!(theirs["data"], json!([]), "blocks are one-way");

    // Bob can no longer open the conversation, call or post in it; nor can alice while she
    // blocks him. Carol is not affected.
    let (status, body) = open_dm(&node, &bob, &alice).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = open_dm(&node, &alice, &bob).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(open_dm(&node, &carol, &alice).await?.0, 201);
    let mut b = node.ws(&bob).await?;
    let call = b.request("call:start", json!({"roomId": dm_id})).await?;
    assert_eq!(code(&call), Some("FORBIDDEN"), "{call}");
    let sent = b
        .request("message:send", json!({"roomId": dm_id, "content": "hi?"}))
        .await?;
    assert_eq!(code(&sent), Some("FORBIDDEN"), "{sent}");

    // Unblocking restores everything.
    let (status, _) = node
        .call(
            reqwest::Method::DELETE,
            &put(&bob.id),
            Some(&alice.token),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(open_dm(&node, &bob, &alice).await?.0, 200);
    let sent = b
        .request(
            "message:send",
            json!({"roomId": dm_id, "content": "hi again"}),
        )
        .await?;
    assert_eq!(sent["ok"], true, "{sent}");
    Ok(())
}

#[tokio::test]
async fn the_contact_setting_decides_who_may_open_a_dm_or_call() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (_, settings) = node
        .get("/api/v1/users/me/settings", Some(&alice.token))
        .await?;
    assert_eq!(settings["data"]["contact"], "everyone", "{settings}");
    let (status, body) = set_contact(&node, &alice, "friends").await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "contact");

    // Bob has a conversation with alice already; carol does not.
    let (status, dm) = open_dm(&node, &bob, &alice).await?;
    assert_eq!(status, 201, "{dm}");
    let dm_id = dm["data"]["id"].as_str().unwrap_or_default().to_owned();

    let (status, body) = set_contact(&node, &alice, "nobody").await?;
    assert_eq!(
        (status, body["data"]["contact"].as_str()),
        (200, Some("nobody"))
    );
    let (status, body) = open_dm(&node, &carol, &alice).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let mut b = node.ws(&bob).await?;
    let call = b.request("call:start", json!({"roomId": dm_id})).await?;
    assert_eq!(code(&call), Some("FORBIDDEN"), "nobody may call: {call}");

    // Only people who share a (non-DM) room: carol gets in once she joins alice's room.
    set_contact(&node, &alice, "shared_room").await?;
    let (status, body) = open_dm(&node, &carol, &alice).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (_, join_code) = node
        .create_room(&alice, "club", json!({"isPublic": false}), 10)
        .await?;
    assert_eq!(node.join_code(&carol, &join_code).await?.0, 200);
    assert_eq!(open_dm(&node, &carol, &alice).await?.0, 201);
    let (_, settings) = node
        .get("/api/v1/users/me/settings", Some(&alice.token))
        .await?;
    assert_eq!(settings["data"]["contact"], "shared_room");
    Ok(())
}
