//! Web Push through a real node and a real (test) push service over HTTPS: the node encrypts
//! per RFC 8291 and signs a VAPID JWT with the deployment's key; the test's service checks
//! the JWT against `GET /push/vapid-public-key` and decrypts each payload with the device's
//! private key, as a browser would. Mentions, direct messages and calls push to a user with
//! no focused session and not to one with; `none` and muted settings push nothing; 410 drops
//! the device; 429 is retried after `Retry-After`; a device gets one push per message (a DM
//! that also mentions, an edit); an `@everyone` pushes like a mention by name. Bad
//! subscriptions get stable error codes.
//!
//! Absence is asserted after a positive control: the next push of the device must be the
//! control's, and nothing else may arrive within [`QUIET`] after it (pushes of one user can
//! race by a few milliseconds, since each is offered from its own task).

mod common;

use std::time::Duration;

use common::push_service::{Device, PushService, Received};
use common::{FAST_CONFIG, TestNode, User, WsClient, scylla_config};
use reqwest::Method;
use serde_json::{Value, json};
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// How long nothing may arrive after a positive control.
const QUIET: Duration = Duration::from_millis(700);

struct World {
    node: TestNode,
    service: PushService,
    vapid: String,
}

impl World {
    async fn rest(&self, method: Method, path: &str, user: &User, body: Value) -> (u16, Value) {
        self.node
            .call(
                method,
                &format!("/api/v1{path}"),
                Some(&user.token),
                Some(body),
            )
            .await
            .unwrap_or((0, Value::Null))
    }

    async fn subscribe(&self, user: &User, device: &Device) -> anyhow::Result<()> {
        let (status, body) = self
            .rest(
                Method::POST,
                "/push/subscriptions",
                user,
                device.subscription(),
            )
            .await;
        anyhow::ensure!(status == 201, "subscribe: {status} {body}");
        Ok(())
    }

    /// The next push, opened by `device` (it must be for that device).
    async fn push_for(&mut self, device: &Device) -> anyhow::Result<(Received, Value)> {
        let req = self.service.next().await?;
        let payload = device.open(&req, &self.vapid, &self.service.origin)?;
        Ok((req, payload))
    }

    /// Nothing more arrives within [`QUIET`].
    async fn quiet(&mut self) -> anyhow::Result<()> {
        match self.service.within(QUIET).await {
            None => Ok(()),
            Some(extra) => anyhow::bail!("unexpected push to {}", extra.path),
        }
    }
}

async fn send(ws: &mut WsClient, room: &str, content: &str) -> anyhow::Result<String> {
    let ack = ws
        .request("message:send", json!({"roomId": room, "content": content}))
        .await?;
    anyhow::ensure!(ack["ok"] == true, "not sent: {ack}");
    Ok(ack["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn dm(world: &World, by: &User, with: &User, ws: &mut WsClient) -> anyhow::Result<String> {
    let (status, body) = world
        .rest(Method::POST, "/dms", by, json!({"userId": with.id}))
        .await;
    anyhow::ensure!(status == 200 || status == 201, "dm: {status} {body}");
    let room = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    let ack = ws.request("room:join", json!({"roomId": room})).await?;
    anyhow::ensure!(ack["ok"] == true, "join dm: {ack}");
    Ok(room)
}

/// Subscriptions that are refused, each with its code and field; the per-user cap; deleting.
async fn bad_subscriptions(world: &World, user: &User, good: &Device) -> anyhow::Result<()> {
    let key = good.subscription()["keys"]["p256dh"].clone();
    let auth = good.subscription()["keys"]["auth"].clone();
    let cases = [
        (
            json!({"endpoint": "http://push.example/x", "keys": {"p256dh": key, "auth": auth}}),
            "endpoint",
        ),
        (
            json!({"endpoint": "https:///x", "keys": {"p256dh": key, "auth": auth}}),
            "endpoint",
        ),
        (
            json!({"endpoint": good.endpoint, "keys": {"p256dh": "AAAA", "auth": auth}}),
            "keys.p256dh",
        ),
        (
            json!({"endpoint": good.endpoint, "keys": {"p256dh": key, "auth": "not base64!"}}),
            "keys.auth",
        ),
        (json!({"endpoint": good.endpoint}), "keys"),
        (
            json!({"endpoint": 5, "keys": {"p256dh": key, "auth": auth}}),
            "endpoint",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = world
            .rest(Method::POST, "/push/subscriptions", user, body.clone())
            .await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "VALIDATION_ERROR", "{answer}");
        assert_eq!(
            answer["error"]["details"]["field"], field,
            "{body} → {answer}"
        );
    }
    let (status, _) = world
        .node
        .post("/api/v1/push/subscriptions", None, good.subscription())
        .await?;
    assert_eq!(status, 401);
    // The cap is 2 (see `PushService::config`); re-registering a known endpoint is no new one.
    let extra = [
        Device::new(&world.service, "spare1"),
        Device::new(&world.service, "spare2"),
    ];
    world.subscribe(user, &extra[0]).await?;
    let (status, body) = world
        .rest(
            Method::POST,
            "/push/subscriptions",
            user,
            extra[0].subscription(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    world.subscribe(user, &extra[1]).await?;
    let (status, body) = world
        .rest(
            Method::POST,
            "/push/subscriptions",
            user,
            good.subscription(),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED");
    for device in &extra {
        let gone = json!({"endpoint": device.endpoint});
        let (status, body) = world
            .rest(Method::DELETE, "/push/subscriptions", user, gone.clone())
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = world
            .rest(Method::DELETE, "/push/subscriptions", user, gone)
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
    Ok(())
}

async fn scenario(world: &mut World) -> anyhow::Result<()> {
    let node = &world.node;
    let (status, key) = node.get("/api/v1/push/vapid-public-key", None).await?;
    assert_eq!(status, 200, "{key}");
    world.vapid = key["data"]["publicKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(world.vapid.len(), 87, "65 bytes, base64url");

    let ann = node.register("ann").await?;
    let bob = node.register("bob").await?;
    let carl = node.register("carl").await?;
    let dave = node.register("dave").await?;
    let phone = Device::new(&world.service, "bob-phone");
    bad_subscriptions(world, &bob, &phone).await?;
    world.subscribe(&bob, &phone).await?;
    let mut ann_ws = world.node.ws(&ann).await?;
    let (room, code) = world
        .node
        .create_room(&ann, "general", json!({}), 10)
        .await?;
    ann_ws.request("room:join", json!({"roomId": room})).await?;
    let (status, body) = world.node.join_code(&bob, &code).await?;
    anyhow::ensure!(status == 200, "bob joins: {status} {body}");

    // A mention of a user with no session at all.
    let id = send(&mut ann_ws, &room, &format!("<@{}> lunch?", bob.id)).await?;
    let (req, payload) = world.push_for(&phone).await?;
    assert_eq!(payload["kind"], "mention", "{payload}");
    assert_eq!(payload["roomId"], room);
    assert_eq!(payload["messageId"], id);
    assert_eq!(payload["url"], format!("/rooms/{room}"));
    assert!(
        payload["body"]
            .as_str()
            .unwrap_or_default()
            .contains("lunch?")
    );
    assert_eq!(
        req.headers.get("urgency").map(String::as_str),
        Some("normal")
    );

    // An edit does not push again; a DM that also mentions pushes once; a call pushes.
    let edit =
        json!({"messageId": id, "roomId": room, "content": format!("<@{}> lunch at 1?", bob.id)});
    let ack = ann_ws.request("message:update", edit).await?;
    anyhow::ensure!(ann_ws_ok(&ack), "edit: {ack}");
    let dm_room = dm(world, &ann, &bob, &mut ann_ws).await?;
    let dm_id = send(&mut ann_ws, &dm_room, &format!("hey <@{}>", bob.id)).await?;
    let (_, payload) = world.push_for(&phone).await?;
    assert_eq!(payload["messageId"], dm_id, "the edit pushed: {payload}");
    assert!(
        payload["kind"] == "dm" || payload["kind"] == "mention",
        "{payload}"
    );
    world.quiet().await?;
    let ack = ann_ws
        .request("call:start", json!({"roomId": dm_room}))
        .await?;
    anyhow::ensure!(ack["ok"] == true, "call: {ack}");
    let (req, payload) = world.push_for(&phone).await?;
    assert_eq!(payload["kind"], "call", "{payload}");
    assert_eq!(payload["roomId"], dm_room);
    assert_eq!(req.headers.get("urgency").map(String::as_str), Some("high"));
    ann_ws
        .request("call:cancel", json!({"roomId": dm_room}))
        .await?;

    // A focused session holds pushes back; an unfocused one does not.
    let mut bob_ws = world.node.ws(&bob).await?;
    let ack = bob_ws
        .request("session:focus", json!({"focused": true}))
        .await?;
    assert_eq!(ack["data"]["focused"], true, "{ack}");
    let held = send(&mut ann_ws, &room, &format!("<@{}> focused", bob.id)).await?;
    bob_ws
        .wait_for(|v| v["type"] == "mention:created" && v["data"]["messageId"] == held)
        .await?;
    bob_ws
        .request("session:focus", json!({"focused": false}))
        .await?;
    let control = send(&mut ann_ws, &room, &format!("<@{}> away", bob.id)).await?;
    let (_, payload) = world.push_for(&phone).await?;
    assert_eq!(
        payload["messageId"], control,
        "pushed while focused: {payload}"
    );
    world.quiet().await?;
    drop(bob_ws);

    // `none`, then muted: nothing; back to inheriting: pushed.
    let path = format!("/rooms/{room}/notification-settings");
    let far = 4_000_000_000_000u64;
    for setting in [json!({"level": "none"}), json!({"muteUntil": far})] {
        let (status, body) = world.rest(Method::PUT, &path, &bob, setting).await;
        assert_eq!(status, 200, "{body}");
        send(&mut ann_ws, &room, &format!("<@{}> silent", bob.id)).await?;
    }
    let (status, _) = world.rest(Method::PUT, &path, &bob, json!({})).await;
    assert_eq!(status, 200);
    let control = send(&mut ann_ws, &room, &format!("<@{}> loud", bob.id)).await?;
    let (_, payload) = world.push_for(&phone).await?;
    assert_eq!(
        payload["messageId"], control,
        "pushed despite settings: {payload}"
    );
    world.quiet().await?;

    // @everyone from the room's admin pushes like a mention by name.
    let wide = send(&mut ann_ws, &room, "@everyone deploy at 5").await?;
    let (_, payload) = world.push_for(&phone).await?;
    assert_eq!(payload["messageId"], wide, "{payload}");
    assert_eq!(payload["kind"], "mention", "{payload}");
    assert_eq!(payload["title"], "ann mentioned @everyone", "{payload}");
    world.quiet().await?;

    // 410: the device is dropped; the next DM reaches only the user's other device.
    let (old, new) = (
        Device::new(&world.service, "carl-old"),
        Device::new(&world.service, "carl-new"),
    );
    world.subscribe(&carl, &old).await?;
    world.service.script(&old.path(), vec![(410, Vec::new())]);
    let carl_room = dm(world, &ann, &carl, &mut ann_ws).await?;
    let first = send(&mut ann_ws, &carl_room, "are you there?").await?;
    let (_, payload) = world.push_for(&old).await?;
    assert_eq!(payload["messageId"], first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while world.node.metric("voiceflow_push_gone_total").await? < 1.0 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "410 not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.subscribe(&carl, &new).await?;
    let second = send(&mut ann_ws, &carl_room, "hello?").await?;
    let (_, payload) = world.push_for(&new).await?;
    assert_eq!(payload["messageId"], second);
    world.quiet().await?;
    let (status, _) = world
        .rest(
            Method::DELETE,
            "/push/subscriptions",
            &carl,
            json!({"endpoint": old.endpoint}),
        )
        .await;
    assert_eq!(status, 404, "the 410 deleted the subscription");

    // 429 with Retry-After: 1 is retried after a second, with the same payload.
    let laptop = Device::new(&world.service, "dave-laptop");
    world.subscribe(&dave, &laptop).await?;
    let busy = vec![("retry-after".to_owned(), "1".to_owned())];
    world.service.script(&laptop.path(), vec![(429, busy)]);
    let dave_room = dm(world, &ann, &dave, &mut ann_ws).await?;
    let sent = send(&mut ann_ws, &dave_room, "ping").await?;
    let (first, a) = world.push_for(&laptop).await?;
    let (second, b) = world.push_for(&laptop).await?;
    assert_eq!(a, b);
    assert_eq!(a["messageId"], sent);
    let waited = second.at.duration_since(first.at);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    world.quiet().await?;
    Ok(())
}

fn ann_ws_ok(ack: &Value) -> bool {
    ack["ok"] == true
}

async fn run(config: String) -> anyhow::Result<()> {
    let service = PushService::start().await?;
    let voice = "voice.udp_port = 0\n";
    let node = TestNode::start_with(&format!("{}{voice}{config}", service.config())).await?;
    let mut world = World {
        node,
        service,
        vapid: String::new(),
    };
    scenario(&mut world).await
}

#[tokio::test]
async fn mentions_dms_and_calls_push_encrypted_to_unfocused_users() -> anyhow::Result<()> {
    run(FAST_CONFIG.to_owned()).await
}

#[tokio::test]
async fn web_push_works_the_same_on_cql() -> anyhow::Result<()> {
    let test = "web_push_works_the_same_on_cql";
    let keyspace = random_keyspace("vf_push");
    let (Some(config), Some(points)) = (scylla_config(&keyspace), contact_points_from_env()) else {
        announce_skip(test);
        return Ok(());
    };
    let outcome = run(config).await;
    if let Err(e) = drop_keyspace(&CqlConfig::for_test_server(points, &keyspace)).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}
