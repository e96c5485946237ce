//! Approval of joins on a real node: a community with `requireApproval` turns an invite's
//! join into a request that the owner and `kick_members` holders hear of live, list, accept
//! or decline; the requester hears the answer; a request spends one use of the invite; the
//! requester may withdraw; everyone else is refused with stable codes; the audit log keeps
//! each answer.

mod common;

use anyhow::Result;
use common::community::{call, code, found, item, text};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::json;

/// A role named `name` with `permissions` in community `id`, granted to `to`.
async fn grant_role(
    node: &TestNode,
    owner: &User,
    id: &str,
    (name, permissions): (&str, serde_json::Value),
    to: &User,
) -> Result<String> {
    let (status, role) = call(
        node,
        Method::POST,
        &format!("/communities/{id}/roles"),
        owner,
        Some(json!({"name": name, "permissions": permissions})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{role}");
    let role = text(&role, "/data/id");
    let path = format!("/communities/{id}/members/{}/roles/{role}", to.id);
    let (status, body) = call(node, Method::PUT, &path, owner, None).await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_wait_for_approval_and_both_sides_hear_the_answer() -> Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let moderator = node.register("moderator").await?;
    let plain = node.register("plain").await?;
    let [bob, dave, eve] = [
        node.register("bob").await?,
        node.register("dave").await?,
        node.register("eve").await?,
    ];
    let id = found(&node, &owner, "Gated", &[&moderator, &plain]).await?;
    grant_role(
        &node,
        &owner,
        &id,
        ("Moderator", json!(["kick_members"])),
        &moderator,
    )
    .await?;

    // Only a manager may require approval; the community says it does.
    let settings = json!({"requireApproval": true});
    let path = format!("/communities/{id}");
    let (status, body) = call(&node, Method::PATCH, &path, &plain, Some(settings.clone())).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = call(&node, Method::PATCH, &path, &owner, Some(settings)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["requireApproval"], true, "{body}");

    let (_, invite) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/invites"),
        &owner,
        Some(json!({"maxUses": 5})),
    )
    .await?;
    let invite_code = text(&invite, "/data/code");
    let join = format!("/invites/{invite_code}/join");
    let mut owner_ws = node.ws(&owner).await?;
    let mut moderator_ws = node.ws(&moderator).await?;
    let mut plain_ws = node.ws(&plain).await?;
    let mut bob_ws = node.ws(&bob).await?;

    // Bob asks: 202, not a member yet; the owner and the moderator hear of it, a plain
    // member does not.
    let (status, body) = call(&node, Method::POST, &join, &bob, None).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"],
        json!({"communityId": id, "joined": false, "requested": true})
    );
    for ws in [&mut owner_ws, &mut moderator_ws] {
        let event = ws.next_event("community:join_request").await?;
        assert_eq!(event["data"]["userId"], bob.id.as_str(), "{event}");
        assert_eq!(event["data"]["username"], "bob", "{event}");
        assert_eq!(event["data"]["communityId"], id.as_str(), "{event}");
    }
    let (status, _) = call(&node, Method::GET, &path, &bob, None).await?;
    assert_eq!(status, 404, "a requester is no member");
    // Asking again spends no second use.
    let (status, _) = call(&node, Method::POST, &join, &bob, None).await?;
    assert_eq!(status, 202);
    let (_, invites) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/invites"),
        &owner,
        None,
    )
    .await?;
    let ours = item(&invites, "code", &invite_code);
    assert_eq!(ours["uses"], 1, "{invites}");

    // Listing needs kick_members; the moderator sees Bob's request.
    let requests = format!("/communities/{id}/join-requests");
    let (status, body) = call(&node, Method::GET, &requests, &plain, None).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = call(&node, Method::GET, &requests, &moderator, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["userId"], bob.id.as_str(), "{body}");
    assert_eq!(body["data"][0]["username"], "bob", "{body}");
    assert_eq!(body["hasMore"], false);

    // A plain member may not answer; the moderator accepts; Bob hears it and is in.
    let bob_request = format!("{requests}/{}", bob.id);
    let (status, body) = call(&node, Method::PUT, &bob_request, &plain, None).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = call(&node, Method::PUT, &bob_request, &moderator, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["accepted"], true, "{body}");
    let decided = bob_ws.next_event("community:join_decided").await?;
    assert_eq!(decided["data"]["accepted"], true, "{decided}");
    assert_eq!(decided["data"]["by"], moderator.id.as_str(), "{decided}");
    let told = owner_ws.next_event("community:join_decided").await?;
    assert_eq!(told["data"]["userId"], bob.id.as_str(), "{told}");
    let (status, _) = call(&node, Method::GET, &path, &bob, None).await?;
    assert_eq!(status, 200, "bob is a member now");
    // Answered once: a second answer finds nothing.
    let (status, body) = call(&node, Method::PUT, &bob_request, &owner, None).await?;
    assert_eq!((status, code(&body)), (404, Some("NOT_FOUND")), "{body}");

    // Dave asks and withdraws; Eve asks and is declined.
    let mut eve_ws = node.ws(&eve).await?;
    for user in [&dave, &eve] {
        let (status, _) = call(&node, Method::POST, &join, user, None).await?;
        assert_eq!(status, 202);
    }
    let dave_request = format!("{requests}/{}", dave.id);
    let (status, body) = call(&node, Method::DELETE, &dave_request, &dave, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["accepted"], false);
    let eve_request = format!("{requests}/{}", eve.id);
    // Eve may not answer for Dave, nor accept herself.
    let (status, _) = call(&node, Method::PUT, &eve_request, &eve, None).await?;
    assert_eq!(
        status, 404,
        "a requester is no member: the community does not show"
    );
    let (status, body) = call(&node, Method::DELETE, &eve_request, &owner, None).await?;
    assert_eq!(status, 200, "{body}");
    let decided = eve_ws.next_event("community:join_decided").await?;
    assert_eq!(decided["data"]["accepted"], false, "{decided}");
    let (status, _) = call(&node, Method::GET, &path, &eve, None).await?;
    assert_eq!(status, 404, "eve was declined");
    let (_, body) = call(&node, Method::GET, &requests, &owner, None).await?;
    assert_eq!(body["data"], json!([]), "nothing pending");

    // The audit log keeps both answers (not the withdrawal).
    let (_, log) = call(
        &node,
        Method::GET,
        &format!("/communities/{id}/audit-log?limit=100"),
        &owner,
        None,
    )
    .await?;
    let actions: Vec<(String, String)> = log["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(e, "/action"), text(e, "/targetId")))
        .collect();
    assert!(
        actions.contains(&("member.join_accept".into(), bob.id.clone())),
        "{log}"
    );
    assert!(
        actions.contains(&("member.join_decline".into(), eve.id.clone())),
        "{log}"
    );
    assert!(!actions.iter().any(|(_, t)| t == &dave.id), "{log}");

    // Without approval, an invite lets people straight in again.
    let (status, _) = call(
        &node,
        Method::PATCH,
        &path,
        &owner,
        Some(json!({"requireApproval": false})),
    )
    .await?;
    assert_eq!(status, 200);
    let (status, body) = call(&node, Method::POST, &join, &dave, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["joined"], true, "{body}");
    // The plain member heard of no request at all.
    assert!(
        !plain_ws
            .sees_within(std::time::Duration::from_millis(300), |v| {
                v["type"] == "community:join_request"
            })
            .await
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_outside_communities_take_members_by_approval_and_guests_read_only() -> Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let erin = node.register("erin").await?;
    let settings = json!({"isPublic": true, "requireApproval": true});
    let (room, code) = node
        .create_room(&alice, "by approval", settings, 10)
        .await?;
    let mut alice_ws = node.ws(&alice).await?;
    let mut bob_ws = node.ws(&bob).await?;

    // A public room that requires approval is not joined by id; by its code, one asks.
    let refused = bob_ws.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let (status, body) = node.join_code(&bob, &code).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["requested"], true, "{body}");
    let asked = alice_ws.next_event("room:join_request").await?;
    assert_eq!(asked["data"]["userId"], bob.id.as_str(), "{asked}");
    let requests = format!("/rooms/{room}/join-requests");
    let (status, _) = call(&node, Method::GET, &requests, &bob, None).await?;
    assert_eq!(status, 403, "only admins list requests");
    let (_, listed) = call(&node, Method::GET, &requests, &alice, None).await?;
    assert_eq!(listed["data"][0]["username"], "bob", "{listed}");

    // Accepted: bob hears it and joins.
    let bob_request = format!("{requests}/{}", bob.id);
    let (status, body) = call(&node, Method::PUT, &bob_request, &alice, None).await?;
    assert_eq!(status, 200, "{body}");
    let decided = bob_ws.next_event("room:join_decided").await?;
    assert_eq!(decided["data"]["accepted"], true, "{decided}");
    let joined = bob_ws.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(joined["ok"], true, "{joined}");

    // A private room that takes guests: a non-member reads (live and history) but does not
    // post; one that does not take them refuses her.
    let guests = json!({"isPublic": false, "allowGuests": true});
    let (open, _) = node
        .create_room(&alice, "guests welcome", guests, 10)
        .await?;
    let (closed, _) = node
        .create_room(&alice, "members only", json!({"isPublic": false}), 10)
        .await?;
    let mut erin_ws = node.ws(&erin).await?;
    let ack = erin_ws
        .request("room:join", json!({"roomId": open}))
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = erin_ws
        .request("room:join", json!({"roomId": closed}))
        .await?;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let sent = erin_ws
        .request("message:send", json!({"roomId": open, "content": "hi"}))
        .await?;
    assert_eq!(sent["error"]["code"], "FORBIDDEN", "{sent}");
    let (status, _) = node
        .get(&format!("/api/v1/rooms/{open}/messages"), Some(&erin.token))
        .await?;
    assert_eq!(status, 200, "a guest reads the history");
    let (status, _) = node
        .get(
            &format!("/api/v1/rooms/{closed}/messages"),
            Some(&erin.token),
        )
        .await?;
    assert_eq!(status, 403);
    // What members post reaches the guest live.
    let ack = alice_ws
        .request("room:join", json!({"roomId": open}))
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = alice_ws
        .request(
            "message:send",
            json!({"roomId": open, "content": "welcome"}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let live = erin_ws.next_event("message:received").await?;
    assert_eq!(live["data"]["content"], "welcome", "{live}");
    Ok(())
}
