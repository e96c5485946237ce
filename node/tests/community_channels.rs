//! Community channels on a real node: creating, listing, editing and deleting them; overrides
//! that hide a channel (NOT_FOUND, not FORBIDDEN, over REST and WebSocket) until a role is
//! granted; permissions enforced by the room on every event (post, typing, delete, react);
//! a timeout, a role taken away and a kick taking effect on live sessions; the audit log.

mod common;

use common::community::{call, code, found, text};
use common::{TestNode, User, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

/// The names of the channels `user` sees in community `id`.
async fn listed(node: &TestNode, id: &str, user: &User) -> anyhow::Result<Vec<String>> {
    let (status, body) = call(
        node,
        Method::GET,
        &format!("/communities/{id}/channels"),
        user,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["data"]["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect())
}

/// `room:join` of `room`; the ack.
async fn join(ws: &mut WsClient, room: &str) -> anyhow::Result<Value> {
    ws.request("room:join", json!({"roomId": room})).await
}

/// `message:send`; the ack.
async fn send(ws: &mut WsClient, room: &str, content: &str) -> anyhow::Result<Value> {
    ws.request("message:send", json!({"roomId": room, "content": content}))
        .await
}

#[tokio::test]
async fn channels_follow_roles_overrides_timeouts_and_kicks_live() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let stranger = node.register("stranger").await?;
    let id = found(&node, &owner, "Channels", &[&alice, &bob]).await?;
    let channels = format!("/communities/{id}/channels");

    // Only who may manage channels creates them.
    let (status, body) = call(
        &node,
        Method::POST,
        &channels,
        &bob,
        Some(json!({"name": "nope"})),
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let mut ids = Vec::new();
    for (name, kind) in [("general", "text"), ("staff", "text"), ("lounge", "voice")] {
        let (status, body) = call(
            &node,
            Method::POST,
            &channels,
            &owner,
            Some(json!({"name": name, "kind": kind})),
        )
        .await?;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["data"]["kind"], kind);
        ids.push(text(&body, "/data/id"));
    }
    let (general, staff) = (ids[0].clone(), ids[1].clone());
    let (status, body) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "dm", "kind": "dm"})),
    )
    .await?;
    assert_eq!(
        (status, code(&body)),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );

    // A moderators' role, and a staff channel hidden from @everyone but open to it.
    let (_, mods) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        &owner,
        Some(json!({"name": "Mods", "position": 1, "permissions": ["manage_messages"]})),
    )
    .await?;
    let mods = text(&mods, "/data/id");
    let overwrite = |target: &str| format!("{channels}/{staff}/overwrites/{target}");
    for (target, body) in [
        (
            id.as_str(),
            json!({"type": "role", "deny": ["view_channel"]}),
        ),
        (
            mods.as_str(),
            json!({"type": "role", "allow": ["view_channel"]}),
        ),
    ] {
        let (status, reply) =
            call(&node, Method::PUT, &overwrite(target), &owner, Some(body)).await?;
        assert_eq!(status, 200, "{reply}");
    }
    let (status, body) = call(
        &node,
        Method::PUT,
        &overwrite(&bob.id),
        &bob,
        Some(json!({"type": "member", "allow": ["view_channel"]})),
    )
    .await?;
    assert_eq!(status, 404, "bob cannot see the channel at all: {body}");
    assert_eq!(
        listed(&node, &id, &owner).await?,
        ["general", "staff", "lounge"]
    );
    assert_eq!(listed(&node, &id, &alice).await?, ["general", "lounge"]);
    let (status, body) = call(&node, Method::GET, &channels, &stranger, None).await?;
    assert_eq!((status, code(&body)), (404, Some("NOT_FOUND")), "{body}");

    // Hidden means absent: history, the room, a WebSocket join.
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/rooms/{staff}/messages"),
        &alice,
        None,
    )
    .await?;
    assert_eq!((status, code(&body)), (404, Some("NOT_FOUND")), "{body}");
    let (status, _) = call(&node, Method::GET, &format!("/rooms/{staff}"), &alice, None).await?;
    assert_eq!(status, 404);
    let mut a = node.ws(&alice).await?;
    let ack = join(&mut a, &staff).await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");
    let mut outsider = node.ws(&stranger).await?;
    let ack = join(&mut outsider, &general).await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");

    // Members talk in the channels they see, without joining anything first.
    let mut b = node.ws(&bob).await?;
    let mut o = node.ws(&owner).await?;
    for ws in [&mut a, &mut b, &mut o] {
        let ack = join(ws, &general).await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let sent = send(&mut b, &general, "hello from bob").await?;
    assert_eq!(sent["ok"], true, "{sent}");
    let bobs = sent["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    a.wait_for(|v| v["type"] == "message:received" && v["data"]["content"] == "hello from bob")
        .await?;
    let (status, history) = call(
        &node,
        Method::GET,
        &format!("/rooms/{general}/messages"),
        &alice,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["data"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    // @everyone pings only from who holds mention_everyone (the owner), not from bob.
    let plain = send(&mut b, &general, "@everyone look").await?;
    assert_eq!(
        plain["data"]["message"]["mentionsEveryone"],
        Value::Null,
        "{plain}"
    );
    let ping = send(&mut o, &general, "@here meeting now").await?;
    assert_eq!(ping["data"]["message"]["mentionsEveryone"], true, "{ping}");

    // Deleting another's message takes manage_messages, which alice gets with the role.
    let delete = json!({"roomId": general, "messageId": bobs});
    let ack = a.request("message:delete", delete.clone()).await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let grant = format!("/communities/{id}/members/{}/roles/{mods}", alice.id);
    let (status, _) = call(&node, Method::PUT, &grant, &owner, None).await?;
    assert_eq!(status, 200);
    // Her sessions are told to look again (the staff channel is hers to see now).
    let told = a.next_event("community:member_updated").await?;
    assert_eq!(told["data"]["communityId"], id.as_str(), "{told}");
    let ack = a.request("message:delete", delete).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        listed(&node, &id, &alice).await?,
        ["general", "staff", "lounge"]
    );
    let ack = join(&mut a, &staff).await?;
    assert_eq!(ack["ok"], true, "the role opens the staff channel: {ack}");

    // An @everyone deny of reactions in general holds for bob, not for the owner.
    let (status, _) = call(
        &node,
        Method::PUT,
        &format!("{channels}/{general}/overwrites/{id}"),
        &owner,
        Some(json!({"type": "role", "deny": ["add_reactions"]})),
    )
    .await?;
    assert_eq!(status, 200);
    let owners = send(&mut o, &general, "react to me").await?;
    let owners = owners["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let react = json!({"roomId": general, "messageId": owners, "emoji": "👍"});
    let ack = b.request("reaction:add", react.clone()).await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let ack = o.request("reaction:add", react).await?;
    assert_eq!(ack["ok"], true, "{ack}");

    // A timeout silences bob at once: no posts, no typing; it lifts.
    let timeout = format!("/communities/{id}/members/{}/timeout", bob.id);
    let (status, _) = call(
        &node,
        Method::PUT,
        &timeout,
        &owner,
        Some(json!({"secs": 60})),
    )
    .await?;
    assert_eq!(status, 200);
    let ack = send(&mut b, &general, "while timed out").await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let ack = b
        .request("typing:start", json!({"roomId": general}))
        .await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let (status, posted) = node
        .post(
            "/api/v1/messages",
            Some(&bob.token),
            json!({"roomId": general, "content": "by hand over REST"}),
        )
        .await?;
    assert_eq!(
        (status, code(&posted)),
        (403, Some("FORBIDDEN")),
        "{posted}"
    );
    let (status, _) = call(
        &node,
        Method::PUT,
        &timeout,
        &owner,
        Some(json!({"secs": 0})),
    )
    .await?;
    assert_eq!(status, 200);
    let ack = send(&mut b, &general, "free again").await?;
    assert_eq!(ack["ok"], true, "{ack}");
    // A timeout also ends by itself, with nothing sent to the channel.
    let (status, _) = call(
        &node,
        Method::PUT,
        &timeout,
        &owner,
        Some(json!({"secs": 1})),
    )
    .await?;
    assert_eq!(status, 200);
    let ack = send(&mut b, &general, "during a short timeout").await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let expires = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let ack = send(&mut b, &general, "after the timeout expired").await?;
        if ack["ok"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < expires,
            "the timeout never expired: {ack}"
        );
    }

    // Taking the role away removes alice from the staff channel live.
    let (status, _) = call(&node, Method::DELETE, &grant, &owner, None).await?;
    assert_eq!(status, 200);
    let removed = a
        .wait_for(|v| v["type"] == "room:removed" && v["data"]["roomId"] == staff.as_str())
        .await?;
    assert_eq!(removed["data"]["by"], id.as_str(), "{removed}");
    let ack = send(&mut a, &staff, "still here?").await?;
    assert_eq!(ack["ok"], false, "{ack}");

    // A kick removes bob from every channel he is in, live.
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/communities/{id}/members/{}", bob.id),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let removed = b
        .wait_for(|v| v["type"] == "room:removed" && v["data"]["roomId"] == general.as_str())
        .await?;
    assert_eq!(removed["data"]["by"], owner.id.as_str(), "{removed}");
    let ack = send(&mut b, &general, "after the kick").await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");

    // Edits and deletes by managers only; the audit log has them all.
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("{channels}/{general}"),
        &alice,
        Some(json!({"name": "renamed"})),
    )
    .await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("{channels}/{general}"),
        &owner,
        Some(json!({"name": "chat", "position": 9})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("{channels}/{staff}"),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(listed(&node, &id, &owner).await?, ["lounge", "chat"]);
    let (status, body) = call(&node, Method::GET, &format!("/rooms/{staff}"), &owner, None).await?;
    assert_eq!(status, 404, "{body}");
    let (_, log) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/audit-log?limit=100"),
        &owner,
        None,
    )
    .await?;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "channel.create",
        "channel.update",
        "channel.delete",
        "channel.overwrite.update",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    Ok(())
}

#[tokio::test]
async fn guests_read_open_channels_only_and_a_ban_can_take_recent_messages_with_it()
-> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let guest = node.register("guest").await?;
    let id = found(&node, &owner, "Channels", &[&member]).await?;
    let channels = format!("/communities/{id}/channels");
    let (status, open) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "announcements", "allowGuests": true})),
    )
    .await?;
    assert_eq!(status, 201, "{open}");
    assert_eq!(open["data"]["allowGuests"], true, "{open}");
    let open = text(&open, "/data/id");
    let (_, closed) = call(
        &node,
        Method::POST,
        &channels,
        &owner,
        Some(json!({"name": "members only"})),
    )
    .await?;
    let closed = text(&closed, "/data/id");

    // A guest reads the open channel (history and live), and nothing else; no posts.
    let mut o = node.ws(&owner).await?;
    let mut m = node.ws(&member).await?;
    let mut g = node.ws(&guest).await?;
    for ws in [&mut o, &mut m] {
        for room in [&open, &closed] {
            assert_eq!(join(ws, room).await?["ok"], true);
        }
    }
    assert_eq!(send(&mut o, &open, "welcome").await?["ok"], true);
    let (status, history) = call(
        &node,
        Method::GET,
        &format!("/rooms/{open}/messages"),
        &guest,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["data"][0]["content"], "welcome", "{history}");
    let ack = join(&mut g, &open).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = join(&mut g, &closed).await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND", "{ack}");
    let ack = send(&mut g, &open, "a guest speaks").await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    assert_eq!(send(&mut o, &open, "live to guests").await?["ok"], true);
    g.wait_for(|v| v["type"] == "message:received" && v["data"]["content"] == "live to guests")
        .await?;
    let (status, _) = call(&node, Method::GET, &channels, &guest, None).await?;
    assert_eq!(status, 404, "the community itself stays closed to guests");

    // The member posts in both; a ban taking the last hour's messages deletes them all, live.
    let mut posted = Vec::new();
    for room in [&open, &closed, &open] {
        let ack = send(&mut m, room, "soon gone").await?;
        posted.push(
            ack["data"]["message"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let (status, body) = call(
        &node,
        Method::PUT,
        &format!(
            "/communities/{id}/bans/{}?deleteMessageSecs=999999999",
            member.id
        ),
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
        &format!(
            "/communities/{id}/bans/{}?deleteMessageSecs=3600",
            member.id
        ),
        &owner,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["messagesDeleted"], 3, "{body}");
    for message in &posted {
        o.wait_for(|v| {
            v["type"] == "message:deleted" && v["data"]["messageId"] == message.as_str()
        })
        .await?;
    }
    let (_, history) = call(
        &node,
        Method::GET,
        &format!("/rooms/{open}/messages"),
        &owner,
        None,
    )
    .await?;
    // Deleted messages stay as tombstones (no content), as any deletion does.
    let kept: Vec<&str> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["deleted"] != true)
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(kept, ["live to guests", "welcome"], "{history}");

    // Banned, the former member is no guest either.
    let (status, _) = call(
        &node,
        Method::GET,
        &format!("/rooms/{open}/messages"),
        &member,
        None,
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}
