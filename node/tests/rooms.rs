//! Rooms over REST: create, list, join by code, ROOM_FULL, non-members refused, admin rights;
//! join acks with and without the member list.

mod common;

use common::TestNode;
use serde_json::json;

#[tokio::test]
async fn create_list_join_and_full() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;

    let (status, resp) = node
        .post("/api/v1/rooms", Some(&alice.token), json!({"name": "ab"}))
        .await?;
    assert_eq!(
        (status, resp["error"]["details"]["field"].as_str()),
        (400, Some("name"))
    );
    let (status, _) = node
        .post(
            "/api/v1/rooms",
            Some(&alice.token),
            json!({"name": "abc", "maxUsers": 501}),
        )
        .await?;
    assert_eq!(status, 400);
    let (status, _) = node
        .post(
            "/api/v1/rooms",
            Some(&alice.token),
            json!({"name": "abc", "description": "d".repeat(501)}),
        )
        .await?;
    assert_eq!(status, 400);

    let (status, room) = node
        .post(
            "/api/v1/rooms",
            Some(&alice.token),
            json!({"name": "General", "maxUsers": 2}),
        )
        .await?;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["data"]["settings"]["isPublic"], true);
    let id = room["data"]["id"].as_str().unwrap_or_default().to_owned();
    let code = room["data"]["joinCode"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(code.len(), 8);

    let (status, joined) = node.join_code(&bob, &code).await?;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["data"]["roomId"], id.as_str());
    assert_eq!(
        joined["data"]["participants"].as_array().map(Vec::len),
        Some(2)
    );
    let (status, resp) = node.join_code(&carol, &code).await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("ROOM_FULL"))
    );
    let (status, resp) = node.join_code(&carol, "NOPE2345").await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    let (_, members) = node
        .get(&format!("/api/v1/rooms/{id}/members"), Some(&bob.token))
        .await?;
    let roles: Vec<(String, String)> = members["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["username"].as_str().unwrap_or("").into(),
                        m["role"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        roles,
        vec![
            ("alice".into(), "admin".into()),
            ("bob".into(), "member".into())
        ]
    );

    // Bob's rooms list the room, with his role.
    let (status, mine) = node.get("/api/v1/users/me/rooms", Some(&bob.token)).await?;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["data"][0]["id"], id.as_str());
    assert_eq!(mine["data"][0]["role"], "member");

    // Bob leaves, Carol can join.
    let (status, _) = node
        .post(
            &format!("/api/v1/rooms/{id}/leave"),
            Some(&bob.token),
            json!({}),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(node.join_code(&carol, &code).await?.0, 200);

    // Listing: public rooms, paged, with totals.
    for i in 0..4 {
        node.create_room(&alice, &format!("room {i}"), json!({"isPublic": true}), 10)
            .await?;
    }
    node.create_room(&alice, "secret", json!({"isPublic": false}), 10)
        .await?;
    let (status, page) = node
        .get("/api/v1/rooms?page=1&limit=2", Some(&bob.token))
        .await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["success"], true);
    assert_eq!(page["total"], 5);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    let (_, last) = node
        .get("/api/v1/rooms?page=3&limit=2", Some(&bob.token))
        .await?;
    assert_eq!(last["hasMore"], false);
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        node.get("/api/v1/rooms?limit=0", Some(&bob.token)).await?.0,
        400
    );
    Ok(())
}

#[tokio::test]
async fn private_rooms_refuse_non_members_and_only_admins_edit() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (id, code) = node
        .create_room(&alice, "Private", json!({"isPublic": false}), 10)
        .await?;

    let (status, resp) = node
        .get(&format!("/api/v1/rooms/{id}"), Some(&bob.token))
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let (status, _) = node
        .get(&format!("/api/v1/rooms/{id}/messages"), Some(&bob.token))
        .await?;
    assert_eq!(status, 403);
    let (status, resp) = node
        .post(
            "/api/v1/messages",
            Some(&bob.token),
            json!({"roomId": id, "content": "hi"}),
        )
        .await?;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let mut ws = node.ws(&bob).await?;
    let ack = ws.request("room:join", json!({"roomId": id})).await?;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "FORBIDDEN");
    let ack = ws.request("room:join", json!({"roomId": "12345"})).await?;
    assert_eq!(ack["error"]["code"], "ROOM_NOT_FOUND");

    // With the code Bob becomes a member, but not an admin.
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    assert_eq!(
        node.get(&format!("/api/v1/rooms/{id}"), Some(&bob.token))
            .await?
            .0,
        200
    );
    let (status, _) = node
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/rooms/{id}"),
            Some(&bob.token),
            Some(json!({"name": "Mine"})),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, _) = node
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{id}"),
            Some(&bob.token),
            None,
        )
        .await?;
    assert_eq!(status, 403);
    let (status, resp) = node
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/rooms/{id}"),
            Some(&alice.token),
            Some(json!({"name": "Renamed", "maxUsers": 1})),
        )
        .await?;
    assert_eq!(status, 400, "{resp}");
    let (status, resp) = node
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/rooms/{id}"),
            Some(&alice.token),
            Some(json!({"name": "Renamed"})),
        )
        .await?;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["data"]["name"], "Renamed");

    // Deleting tells live members and removes the room.
    let ack = ws.request("room:join", json!({"roomId": id})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let (status, _) = node
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{id}"),
            Some(&alice.token),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let deleted = ws.next_event("room:deleted").await?;
    assert_eq!(deleted["data"]["roomId"], id.as_str());
    assert_eq!(
        node.get(&format!("/api/v1/rooms/{id}"), Some(&alice.token))
            .await?
            .0,
        404
    );
    Ok(())
}

#[tokio::test]
async fn a_join_can_leave_the_member_list_out_and_still_counts() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);
    assert_eq!(node.join_code(&carol, &code).await?.0, 200);

    // Bob twice (phone and browser): one online user, not two.
    let mut phone = node.ws(&bob).await?;
    let listed = phone.request("room:join", json!({"roomId": room})).await?;
    assert_eq!(
        listed["data"]["participants"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert_eq!(
        (
            listed["data"]["memberCount"].as_u64(),
            listed["data"]["onlineCount"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let mut browser = node.ws(&bob).await?;
    let bare = browser
        .request("room:join", json!({"roomId": room, "members": false}))
        .await?;
    assert_eq!(bare["ok"], true, "{bare}");
    assert_eq!(bare["data"]["participants"], json!([]), "{bare}");
    assert_eq!(
        (
            bare["data"]["memberCount"].as_u64(),
            bare["data"]["onlineCount"].as_u64()
        ),
        (Some(3), Some(1))
    );

    let mut a = node.ws(&alice).await?;
    let counted = a
        .request("room:join", json!({"roomId": room, "members": false}))
        .await?;
    assert_eq!(
        counted["data"]["onlineCount"].as_u64(),
        Some(2),
        "{counted}"
    );
    // Bob's phone leaves; his browser keeps him online. Then the browser goes too.
    phone.request("room:leave", json!({"roomId": room})).await?;
    let again = a
        .request("room:join", json!({"roomId": room, "members": false}))
        .await?;
    assert_eq!(again["data"]["onlineCount"].as_u64(), Some(2), "{again}");
    browser
        .request("room:leave", json!({"roomId": room}))
        .await?;
    let after = a
        .request("room:join", json!({"roomId": room, "members": false}))
        .await?;
    assert_eq!(after["data"]["onlineCount"].as_u64(), Some(1), "{after}");

    // A bad flag is a validation error, not a silent default.
    let refused = a
        .request("room:join", json!({"roomId": room, "members": "yes"}))
        .await?;
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{refused}");
    Ok(())
}
