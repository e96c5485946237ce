//! Mentions and notification settings through a real node: `<@id>` / `<@&id>` parsed and
//! stored with the message, recomputed on edit and cleared on deletion; `mentionCount` and
//! the effective setting in `GET /users/me/rooms`; `GET /users/me/mentions`; `mention:created`
//! reaching a session that does not follow the room; the settings API and its refusals. Run
//! on the embedded store, and on the CQL test server when `VOICEFLOW_TEST_CQL` is set.

mod common;

use std::time::Duration;

use common::community::{call, code, found, text};
use common::{FAST_CONFIG, TestNode, User, WsClient, scylla_config};
use reqwest::Method;
use serde_json::{Value, json};
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// The cap the tests run with (`max_mentions_per_message`).
const CAP: &str = "max_mentions_per_message = 3\n";

/// The ack's message, or the failure.
async fn send(ws: &mut WsClient, room: &str, content: &str) -> anyhow::Result<Value> {
    let ack = ws
        .request("message:send", json!({"roomId": room, "content": content}))
        .await?;
    anyhow::ensure!(ack["ok"] == true, "not sent: {ack}");
    Ok(ack["data"]["message"].clone())
}

/// The room `room` as `user`'s `GET /users/me/rooms` lists it.
async fn my_room(node: &TestNode, user: &User, room: &str) -> anyhow::Result<Value> {
    let (status, body) = call(node, Method::GET, "/users/me/rooms", user, None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(common::community::item(&body, "id", room))
}

/// Waits until `user`'s mention count in `room` is `want` (read markers are batched).
async fn wait_mention_count(
    node: &TestNode,
    user: &User,
    room: &str,
    want: u64,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = my_room(node, user, room).await?;
        if view["mentionCount"] == want {
            return Ok(view);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "mentionCount of {} stayed {} (want {want})",
            user.name,
            view["mentionCount"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of `user`'s listed mentions.
async fn mention_ids(node: &TestNode, user: &User, query: &str) -> anyhow::Result<Vec<String>> {
    let path = format!("/users/me/mentions{query}");
    let (status, body) = call(node, Method::GET, &path, user, None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| text(m, "/message/id"))
        .collect())
}

/// The `mention:created` of message `id`.
async fn told_about(ws: &mut WsClient, id: &str) -> anyhow::Result<Value> {
    ws.wait_for(|v| v["type"] == "mention:created" && v["data"]["messageId"] == id)
        .await
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

async fn scenario(node: &TestNode) -> anyhow::Result<()> {
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (room, join) = node
        .create_room(&owner, "Mentions", json!({"isPublic": false}), 10)
        .await?;
    for user in [&alice, &bob] {
        let (status, body) = node.join_code(user, &join).await?;
        anyhow::ensure!(status == 200, "join: {status} {body}");
    }
    // Alice is online but does not follow the room; owner and bob do.
    let mut alice_ws = node.ws(&alice).await?;
    let mut owner_ws = node.ws(&owner).await?;
    owner_ws
        .request("room:join", json!({"roomId": room}))
        .await?;

    // Users who may read the room count, each once; others (carol, a non-id) stay text.
    let content = format!(
        "hi <@{}> <@{}> <@{}> <@{}> <@nobody>",
        alice.id, bob.id, carol.id, alice.id
    );
    let first = send(&mut owner_ws, &room, &content).await?;
    assert_eq!(
        first["content"], content,
        "the stored text is what was sent"
    );
    assert_eq!(
        ids(&first["mentions"]),
        vec![alice.id.clone(), bob.id.clone()]
    );
    assert!(first.get("mentionRoles").is_none(), "{first}");
    let first_id = text(&first, "/id");

    // Live, to alice's session although it follows nothing.
    let told = told_about(&mut alice_ws, &first_id).await?;
    assert_eq!(told["data"]["roomId"], room.as_str());
    assert_eq!(told["data"]["messageId"], first_id.as_str());
    assert_eq!(told["data"]["authorId"], owner.id.as_str());
    assert_eq!(told["data"]["authorName"], "owner");
    assert!(text(&told, "/data/snippet").starts_with("hi <@"));
    assert_eq!(told["data"]["notify"], true);

    // Counted and listed.
    let view = wait_mention_count(node, &alice, &room, 1).await?;
    assert_eq!(view["unreadCount"], 1);
    assert_eq!(view["notifications"]["level"], "all");
    assert_eq!(mention_ids(node, &alice, "").await?, vec![first_id.clone()]);
    assert!(mention_ids(node, &carol, "").await?.is_empty());

    // An edit that drops alice takes the mention away; one deleted is gone too.
    let ack = owner_ws
        .request(
            "message:update",
            json!({"roomId": room, "messageId": first_id, "content": format!("hi <@{}>", bob.id)}),
        )
        .await?;
    assert_eq!(
        ids(&ack["data"]["message"]["mentions"]),
        vec![bob.id.clone()]
    );
    wait_mention_count(node, &alice, &room, 0).await?;
    assert!(mention_ids(node, &alice, "").await?.is_empty());
    let second = send(&mut owner_ws, &room, &format!("<@{}> again", alice.id)).await?;
    let second_id = text(&second, "/id");
    told_about(&mut alice_ws, &second_id).await?;
    assert_eq!(
        mention_ids(node, &alice, "").await?,
        vec![second_id.clone()]
    );
    let ack = owner_ws
        .request(
            "message:delete",
            json!({"roomId": room, "messageId": second_id}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let history = node.history(&owner.token, &room, 50).await?;
    let tomb = history.iter().find(|m| m["id"] == second_id.as_str());
    assert!(
        tomb.is_some_and(|m| m.get("mentions").is_none()),
        "{tomb:?}"
    );
    wait_mention_count(node, &alice, &room, 0).await?;
    assert!(mention_ids(node, &alice, "").await?.is_empty());

    // Over the cap (3 distinct users and roles): a clear refusal, nothing stored.
    let many = format!("<@1> <@2> <@3> <@{}>", alice.id);
    let ack = owner_ws
        .request("message:send", json!({"roomId": room, "content": many}))
        .await?;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(ack["error"]["details"]["field"], "content");

    // @everyone from an admin counts for every member without a row per member.
    let everyone = send(&mut owner_ws, &room, "@everyone standup").await?;
    assert_eq!(everyone["mentionsEveryone"], true);
    wait_mention_count(node, &alice, &room, 1).await?;
    // Bob: the edited first message still names him, and @everyone.
    wait_mention_count(node, &bob, &room, 2).await?;
    // Reading up to it clears the count.
    let mut bob_ws = node.ws(&bob).await?;
    bob_ws.request("room:join", json!({"roomId": room})).await?;
    let ack = bob_ws
        .request(
            "message:read",
            json!({"roomId": room, "messageId": text(&everyone, "/id")}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    wait_mention_count(node, &bob, &room, 0).await?;

    // Paging the list: newest first, `before` continues.
    let mut posted = Vec::new();
    for n in 0..3 {
        let m = send(&mut owner_ws, &room, &format!("<@{}> page {n}", alice.id)).await?;
        posted.push(text(&m, "/id"));
    }
    posted.reverse();
    assert_eq!(
        mention_ids(node, &alice, "?limit=2").await?,
        posted[..2].to_vec()
    );
    let rest = mention_ids(node, &alice, &format!("?limit=2&before={}", posted[1])).await?;
    // The @everyone before them reached alice too: a row of her index (see mention_reach.rs).
    assert_eq!(rest, vec![posted[2].clone(), text(&everyone, "/id")]);
    let (status, body) = call(
        node,
        Method::GET,
        "/users/me/mentions?limit=0",
        &alice,
        None,
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );

    settings(node, &owner, &alice, &mut owner_ws, &mut alice_ws, &room).await?;
    roles(node, &owner, &alice, &bob).await
}

/// The settings API: defaults, room overrides, the effective setting in `/users/me/rooms`,
/// `notify` of `mention:created`, and bad input.
async fn settings(
    node: &TestNode,
    owner: &User,
    alice: &User,
    owner_ws: &mut WsClient,
    alice_ws: &mut WsClient,
    room: &str,
) -> anyhow::Result<()> {
    let room_path = format!("/rooms/{room}/notification-settings");
    let (status, body) = call(
        node,
        Method::PUT,
        &room_path,
        alice,
        Some(json!({"level": "mentions"})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["level"], "mentions");
    let far = 4_000_000_000_000u64;
    let (status, body) = call(
        node,
        Method::PUT,
        "/users/me/notification-settings",
        alice,
        Some(json!({"level": "none", "muteUntil": far})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let view = my_room(node, alice, room).await?;
    assert_eq!(view["notifications"]["level"], "mentions", "the room wins");
    assert_eq!(
        view["notifications"]["muteUntil"], far,
        "a default mute holds"
    );
    assert_eq!(view["notifications"]["override"]["level"], "mentions");
    let (_, all) = call(
        node,
        Method::GET,
        "/users/me/notification-settings",
        alice,
        None,
    )
    .await?;
    assert_eq!(all["data"]["default"]["level"], "none");
    assert_eq!(all["data"]["rooms"][0]["id"], room);
    // Muted: the mention still comes, marked as no notification.
    let muted = send(owner_ws, room, &format!("<@{}> muted?", alice.id)).await?;
    let told = told_about(alice_ws, &text(&muted, "/id")).await?;
    assert_eq!(told["data"]["notify"], false, "{told}");
    // The mute lifted (inherit): a notification again.
    let (status, _) = call(
        node,
        Method::PUT,
        "/users/me/notification-settings",
        alice,
        Some(json!({"level": null, "muteUntil": null})),
    )
    .await?;
    assert_eq!(status, 200);
    let now = send(owner_ws, room, &format!("<@{}> now?", alice.id)).await?;
    let told = told_about(alice_ws, &text(&now, "/id")).await?;
    assert_eq!(told["data"]["notify"], true, "{told}");
    let (_, all) = call(
        node,
        Method::GET,
        "/users/me/notification-settings",
        alice,
        None,
    )
    .await?;
    assert_eq!(all["data"]["default"]["level"], Value::Null);

    // Bad input: a stable code each, naming the field where there is one.
    for (body, field) in [
        (json!({"level": "loud"}), "level"),
        (json!({"muteUntil": -5}), "muteUntil"),
        (json!({"muteUntil": 1u64 << 62}), "muteUntil"),
        (json!({"level": "all", "extra": 1}), "extra"),
    ] {
        let (status, reply) =
            call(node, Method::PUT, &room_path, alice, Some(body.clone())).await?;
        assert_eq!(
            (status, code(&reply)),
            (400, Some("VALIDATION_ERROR")),
            "{body}: {reply}"
        );
        let named = reply["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default();
        assert!(named.contains(field) || named == "body", "{body}: {reply}");
    }
    let stranger = node.register("stranger").await?;
    let (status, reply) = call(node, Method::PUT, &room_path, &stranger, Some(json!({}))).await?;
    assert_eq!((status, code(&reply)), (404, Some("NOT_FOUND")), "{reply}");
    let (status, reply) = call(
        node,
        Method::PUT,
        "/communities/12345/notification-settings",
        alice,
        Some(json!({"level": "none"})),
    )
    .await?;
    assert_eq!((status, code(&reply)), (404, Some("NOT_FOUND")), "{reply}");
    let (status, _) = call(node, Method::GET, "/users/me/mentions", owner, None).await?;
    assert_eq!(status, 200);
    Ok(())
}

/// A role mention in a community channel counts for those who hold the role; a community's
/// setting applies to its channels unless the channel has its own.
async fn roles(node: &TestNode, owner: &User, alice: &User, bob: &User) -> anyhow::Result<()> {
    let id = found(node, owner, "Guild", &[alice, bob]).await?;
    let (status, body) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        owner,
        Some(json!({"name": "general"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    let channel = text(&body, "/data/id");
    let (_, role) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        owner,
        Some(json!({"name": "Mods", "position": 1})),
    )
    .await?;
    let role_id = text(&role, "/data/id");
    let grant = format!("/communities/{id}/members/{}/roles/{role_id}", bob.id);
    let (status, body) = call(node, Method::PUT, &grant, owner, None).await?;
    anyhow::ensure!(status == 200, "{body}");
    let mut sockets = Vec::new();
    for user in [owner, alice, bob] {
        let mut ws = node.ws(user).await?;
        let ack = ws.request("room:join", json!({"roomId": channel})).await?;
        anyhow::ensure!(ack["ok"] == true, "{ack}");
        sockets.push(ws);
    }
    // The @everyone role (the community's id) and unknown roles are not role mentions.
    let content = format!("<@&{role_id}> <@&{id}> <@&42> review please");
    let posted = send(&mut sockets[0], &channel, &content).await?;
    assert_eq!(ids(&posted["mentionRoles"]), vec![role_id.clone()]);
    assert!(posted.get("mentions").is_none(), "{posted}");
    wait_mention_count(node, bob, &channel, 1).await?;
    let view = wait_mention_count(node, alice, &channel, 0).await?;
    assert_eq!(view["unreadCount"], 1);

    let (status, body) = call(
        node,
        Method::PUT,
        &format!("/communities/{id}/notification-settings"),
        alice,
        Some(json!({"level": "none"})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        my_room(node, alice, &channel).await?["notifications"]["level"],
        "none"
    );
    let (_, all) = call(
        node,
        Method::GET,
        "/users/me/notification-settings",
        alice,
        None,
    )
    .await?;
    assert_eq!(all["data"]["communities"][0]["id"], id);
    Ok(())
}

#[tokio::test]
async fn mentions_are_parsed_stored_counted_listed_and_told_live() -> anyhow::Result<()> {
    let node = TestNode::start_with(&format!("{CAP}{FAST_CONFIG}")).await?;
    scenario(&node).await
}

#[tokio::test]
async fn mentions_work_the_same_on_cql() -> anyhow::Result<()> {
    let test = "mentions_work_the_same_on_cql";
    let keyspace = random_keyspace("vf_mentions");
    let (Some(config), Some(points)) = (scylla_config(&keyspace), contact_points_from_env()) else {
        announce_skip(test);
        return Ok(());
    };
    let node = TestNode::start_with(&format!("{CAP}{config}")).await?;
    let outcome = scenario(&node).await;
    drop(node);
    if let Err(e) = drop_keyspace(&CqlConfig::for_test_server(points, &keyspace)).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}

/// Two nodes on the CQL test server: Alice has a session on each, following nothing; the
/// room lives on one of them, so one of her sessions is on a node the room does not run on.
/// Both get `mention:created`, and each node's `/users/me/mentions` lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_reaches_every_session_on_every_node() -> anyhow::Result<()> {
    let Some(cluster) =
        common::cluster::TestCluster::start(2, "mentions::every_session_every_node").await?
    else {
        return Ok(());
    };
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let owner = n1.register("owner").await?;
    let alice = n2.register("alice").await?;
    let (room, join) = n1.create_room(&owner, "Across", json!({}), 10).await?;
    assert_eq!(n2.join_code(&alice, &join).await?.0, 200);
    let mut on_1 = n1.ws(&alice).await?;
    let mut on_2 = n2.ws(&alice).await?;
    let mut writer = n1.ws(&owner).await?;
    let ack = writer.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let posted = send(&mut writer, &room, &format!("<@{}> across nodes", alice.id)).await?;
    let id = text(&posted, "/id");
    for ws in [&mut on_1, &mut on_2] {
        let told = told_about(ws, &id).await?;
        assert_eq!(told["data"]["roomId"], room.as_str());
    }
    for node in [n1, n2] {
        assert_eq!(mention_ids(node, &alice, "").await?, vec![id.clone()]);
    }
    Ok(())
}
