//! Who a mention reaches, through a real node: `@everyone` (everyone who may read the room),
//! `@here` (those online), a role (its holders who may view the channel), each only from an
//! author who may ping many; every person reached gets a row in `GET /users/me/mentions`,
//! `mentionCount` and `mention:created` (with `via`). An edit tells only the newly
//! mentioned; an edit that drops a mention and a deletion take it out of the list and the
//! count; each user's index keeps only their newest `[mentions] kept_per_user` rows. Run on
//! the embedded store, and on the CQL test server when `VOICEFLOW_TEST_CQL` is set.

mod common;

use std::time::Duration;

use common::community::{call, found, text};
use common::{FAST_CONFIG, TestNode, User, WsClient, scylla_config};
use reqwest::Method;
use serde_json::{Value, json};
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// Every mention row written trims (so the bound shows at once), three kept per user.
const MENTIONS: &str = "[mentions]\nkept_per_user = 3\ntrim_one_in = 1\nfanout_page = 2\n";

/// How long a test waits for something that must not come (after what must came first).
const QUIET: Duration = Duration::from_millis(300);

async fn send(ws: &mut WsClient, room: &str, content: &str) -> anyhow::Result<Value> {
    let ack = ws
        .request("message:send", json!({"roomId": room, "content": content}))
        .await?;
    anyhow::ensure!(ack["ok"] == true, "not sent: {ack}");
    Ok(ack["data"]["message"].clone())
}

async fn edit(ws: &mut WsClient, room: &str, id: &str, content: &str) -> anyhow::Result<Value> {
    let ack = ws
        .request(
            "message:update",
            json!({"roomId": room, "messageId": id, "content": content}),
        )
        .await?;
    anyhow::ensure!(ack["ok"] == true, "not edited: {ack}");
    Ok(ack["data"]["message"].clone())
}

/// Waits until `user`'s listed mentions are `want` (rows are written after the commit).
async fn wait_listed(node: &TestNode, user: &User, want: &[&str]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(node, Method::GET, "/users/me/mentions", user, None).await?;
        anyhow::ensure!(status == 200, "{status} {body}");
        let ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| text(m, "/message/id"))
            .collect();
        if ids == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} lists {ids:?}, want {want:?}",
            user.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `user`'s `mentionCount` in `room` is `want`.
async fn wait_count(node: &TestNode, user: &User, room: &str, want: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(node, Method::GET, "/users/me/rooms", user, None).await?;
        anyhow::ensure!(status == 200, "{status} {body}");
        let count = common::community::item(&body, "id", room)["mentionCount"].clone();
        if count == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{}'s mentionCount is {count}, want {want}",
            user.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `mention:created` of message `id`.
async fn told(ws: &mut WsClient, id: &str) -> anyhow::Result<Value> {
    ws.wait_for(|v| v["type"] == "mention:created" && v["data"]["messageId"] == id)
        .await
}

/// Whether a `mention:created` of message `id` comes within [`QUIET`].
async fn told_within(ws: &mut WsClient, id: &str) -> bool {
    ws.sees_within(QUIET, |v| {
        v["type"] == "mention:created" && v["data"]["messageId"] == id
    })
    .await
}

/// A room outside communities: its admin pings everyone, a member cannot.
async fn in_a_room(node: &TestNode) -> anyhow::Result<()> {
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let dave = node.register("dave").await?;
    let (room, join) = node
        .create_room(&owner, "Reach", json!({"isPublic": false}), 10)
        .await?;
    for user in [&alice, &bob, &carol] {
        let (status, body) = node.join_code(user, &join).await?;
        anyhow::ensure!(status == 200, "join: {status} {body}");
    }
    let mut owner_ws = node.ws(&owner).await?;
    let mut alice_ws = node.ws(&alice).await?;
    for ws in [&mut owner_ws, &mut alice_ws] {
        let ack = ws.request("room:join", json!({"roomId": room})).await?;
        anyhow::ensure!(ack["ok"] == true, "{ack}");
    }
    // Bob and carol have no session yet: offline.

    // A member may not ping everyone: the words stay text, nobody is reached.
    let plain = send(&mut alice_ws, &room, "@everyone @here look").await?;
    assert!(plain.get("mentionsEveryone").is_none(), "{plain}");
    let plain_id = text(&plain, "/id");

    // @here from the admin: alice (following the room) is online; carol is not.
    let here = send(&mut owner_ws, &room, "@here standup").await?;
    assert_eq!(here["mentionsEveryone"], true, "{here}");
    assert_eq!(here["mentionsHere"], true, "{here}");
    let here_id = text(&here, "/id");
    let event = told(&mut alice_ws, &here_id).await?;
    assert_eq!(event["data"]["via"], "here", "{event}");
    wait_listed(node, &alice, &[&here_id]).await?;
    wait_count(node, &alice, &room, 1).await?;

    // @everyone: everyone who may read the room, online or not, and nobody else. Bob
    // connects now, following nothing.
    let mut bob_ws = node.ws(&bob).await?;
    let all = send(&mut owner_ws, &room, "@everyone release at 5").await?;
    assert!(all.get("mentionsHere").is_none(), "{all}");
    let all_id = text(&all, "/id");
    let event = told(&mut bob_ws, &all_id).await?;
    assert_eq!(event["data"]["via"], "everyone", "{event}");
    assert_eq!(event["data"]["notify"], true, "{event}");
    told(&mut alice_ws, &all_id).await?;
    wait_listed(node, &carol, &[&all_id]).await?;
    wait_listed(node, &alice, &[&all_id, &here_id]).await?;
    wait_listed(node, &dave, &[]).await?;
    // The @here did not reach carol, offline then; the member's @everyone reached nobody.
    wait_count(node, &carol, &room, 1).await?;
    wait_count(node, &bob, &room, 1).await?;
    assert!(
        !told_within(&mut bob_ws, &plain_id).await,
        "a member's @everyone pinged"
    );
    assert!(
        !told_within(&mut bob_ws, &here_id).await,
        "bob was offline then"
    );

    // An edit that adds a mention tells only the newly mentioned.
    let note = send(&mut owner_ws, &room, "notes").await?;
    let note_id = text(&note, "/id");
    edit(
        &mut owner_ws,
        &room,
        &note_id,
        &format!("notes <@{}>", bob.id),
    )
    .await?;
    assert_eq!(told(&mut bob_ws, &note_id).await?["data"]["via"], "user");
    edit(
        &mut owner_ws,
        &room,
        &note_id,
        &format!("notes <@{}> <@{}>", bob.id, alice.id),
    )
    .await?;
    told(&mut alice_ws, &note_id).await?;
    assert!(
        !told_within(&mut bob_ws, &note_id).await,
        "bob was told twice"
    );
    wait_listed(node, &bob, &[&note_id, &all_id]).await?;

    // An edit that drops bob, and the deletion of the @everyone, take them off lists and counts.
    edit(
        &mut owner_ws,
        &room,
        &note_id,
        &format!("notes <@{}>", alice.id),
    )
    .await?;
    wait_listed(node, &bob, &[&all_id]).await?;
    let ack = owner_ws
        .request(
            "message:delete",
            json!({"roomId": room, "messageId": all_id}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    wait_listed(node, &bob, &[]).await?;
    wait_listed(node, &carol, &[]).await?;
    wait_count(node, &carol, &room, 0).await?;
    wait_listed(node, &alice, &[&note_id, &here_id]).await?;

    // The index keeps carol's newest three rows.
    let mut posted = Vec::new();
    for n in 0..5 {
        let m = send(&mut owner_ws, &room, &format!("<@{}> #{n}", carol.id)).await?;
        posted.push(text(&m, "/id"));
    }
    let newest: Vec<&str> = posted.iter().rev().take(3).map(String::as_str).collect();
    wait_listed(node, &carol, &newest).await?;
    Ok(())
}

/// A community channel: roles and @everyone reach the members who may view it.
async fn in_a_channel(node: &TestNode) -> anyhow::Result<()> {
    let owner = node.register("boss").await?;
    let ann = node.register("ann").await?;
    let ben = node.register("ben").await?;
    let cat = node.register("cat").await?;
    let dan = node.register("dan").await?;
    let id = found(node, &owner, "Guild", &[&ann, &ben, &cat, &dan]).await?;
    let (status, body) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "general"})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    let channel = text(&body, "/data/id");
    let (_, role) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        &owner,
        Some(json!({"name": "Mods", "position": 1})),
    )
    .await?;
    let mods = text(&role, "/data/id");
    for user in [&ann, &dan] {
        let grant = format!("/communities/{id}/members/{}/roles/{mods}", user.id);
        let (status, body) = call(node, Method::PUT, &grant, &owner, None).await?;
        anyhow::ensure!(status == 200, "{body}");
    }
    // Dan holds the role but may not view the channel.
    let overwrite = format!("/communities/{id}/channels/{channel}/overwrites/{}", dan.id);
    let (status, body) = call(
        node,
        Method::PUT,
        &overwrite,
        &owner,
        Some(json!({"type": "member", "deny": ["view_channel"]})),
    )
    .await?;
    anyhow::ensure!(status == 200, "{body}");
    let mut owner_ws = node.ws(&owner).await?;
    let mut ann_ws = node.ws(&ann).await?;
    let mut ben_ws = node.ws(&ben).await?;
    for ws in [&mut owner_ws, &mut ben_ws] {
        let ack = ws.request("room:join", json!({"roomId": channel})).await?;
        anyhow::ensure!(ack["ok"] == true, "{ack}");
    }

    // Without mention_everyone, a role mention is text.
    let tried = send(&mut ben_ws, &channel, &format!("<@&{mods}> help")).await?;
    assert!(tried.get("mentionRoles").is_none(), "{tried}");

    let ping = send(&mut owner_ws, &channel, &format!("<@&{mods}> review")).await?;
    let ping_id = text(&ping, "/id");
    let event = told(&mut ann_ws, &ping_id).await?;
    assert_eq!(event["data"]["via"], "role", "{event}");
    wait_listed(node, &ann, &[&ping_id]).await?;
    wait_listed(node, &dan, &[]).await?;
    assert!(
        !told_within(&mut ben_ws, &ping_id).await,
        "ben holds no role"
    );

    // @everyone: every member who may view it (pages of two members), not dan.
    let all = send(&mut owner_ws, &channel, "@everyone hello").await?;
    let all_id = text(&all, "/id");
    assert_eq!(told(&mut ben_ws, &all_id).await?["data"]["via"], "everyone");
    for user in [&ben, &cat] {
        wait_listed(node, user, &[&all_id]).await?;
    }
    wait_listed(node, &ann, &[&all_id, &ping_id]).await?;
    wait_listed(node, &dan, &[]).await?;
    wait_count(node, &ben, &channel, 1).await?;
    Ok(())
}

async fn scenario(node: &TestNode) -> anyhow::Result<()> {
    in_a_room(node).await?;
    in_a_channel(node).await
}

#[tokio::test]
async fn wide_mentions_reach_the_right_people() -> anyhow::Result<()> {
    let node = TestNode::start_with(&format!("{FAST_CONFIG}{MENTIONS}")).await?;
    scenario(&node).await
}

#[tokio::test]
async fn wide_mentions_reach_the_right_people_on_cql() -> anyhow::Result<()> {
    let test = "wide_mentions_reach_the_right_people_on_cql";
    let keyspace = random_keyspace("vf_reach");
    let (Some(config), Some(points)) = (scylla_config(&keyspace), contact_points_from_env()) else {
        announce_skip(test);
        return Ok(());
    };
    let node = TestNode::start_with(&format!("{config}{MENTIONS}")).await?;
    let outcome = scenario(&node).await;
    drop(node);
    if let Err(e) = drop_keyspace(&CqlConfig::for_test_server(points, &keyspace)).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}
