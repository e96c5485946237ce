//! The audit log on a real node: every kind of change through the REST API leaves exactly the
//! entry its action names, with actor, target and the reason from `X-Audit-Log-Reason`; the
//! log is read with `view_audit_log` only, filtered by action and actor, and has no way to
//! edit or delete an entry. (A voice move's entry is checked with real WebRTC peers in
//! `community_voice.rs`.)

mod common;

use std::collections::BTreeMap;

use anyhow::Result;
use common::community::{call, code, found, text, with_reason};
use common::{TestNode, User};
use reqwest::Method;
use serde_json::{Value, json};

/// `method path` as `user`, which must answer 2xx; the reply.
async fn ok(
    node: &TestNode,
    user: &User,
    (method, path): (Method, &str),
    body: Value,
) -> Result<Value> {
    let body = (!body.is_null()).then_some(body);
    let (status, reply) = call(node, method.clone(), path, user, body).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{method} {path}: {status} {reply}"
    );
    Ok(reply)
}

/// Every entry of the log, newest first, following `nextBefore`.
async fn whole_log(node: &TestNode, owner: &User, id: &str) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut before = String::new();
    loop {
        let path = format!("/communities/{id}/audit-log?limit=100{before}");
        let page = ok(node, owner, (Method::GET, &path), Value::Null).await?;
        all.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["nextBefore"].as_str() {
            Some(next) if page["hasMore"] == true => before = format!("&before={next}"),
            _ => return Ok(all),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_its_entry_and_entries_cannot_be_changed() -> Result<()> {
    let node = TestNode::start().await?;
    let owner = node.register("owner").await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let dave = node.register("dave").await?;
    let id = found(&node, &owner, "Audited", &[&alice, &bob]).await?;
    let c = |rest: &str| format!("/communities/{id}{rest}");

    ok(
        &node,
        &owner,
        (Method::PATCH, &c("")),
        json!({"description": "d"}),
    )
    .await?;
    let role = ok(
        &node,
        &owner,
        (Method::POST, &c("/roles")),
        json!({"name": "Mods"}),
    )
    .await?;
    let role = text(&role, "/data/id");
    ok(
        &node,
        &owner,
        (Method::PATCH, &c(&format!("/roles/{role}"))),
        json!({"color": 255}),
    )
    .await?;
    let grant = c(&format!("/members/{}/roles/{role}", alice.id));
    ok(&node, &owner, (Method::PUT, &grant), Value::Null).await?;
    ok(&node, &owner, (Method::DELETE, &grant), Value::Null).await?;
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/roles/{role}"))),
        Value::Null,
    )
    .await?;
    let invite = ok(&node, &owner, (Method::POST, &c("/invites")), json!({})).await?;
    let invite_code = text(&invite, "/data/code");
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/invites/{invite_code}"))),
        Value::Null,
    )
    .await?;
    let category = ok(
        &node,
        &owner,
        (Method::POST, &c("/categories")),
        json!({"name": "Talk"}),
    )
    .await?;
    let category = text(&category, "/data/id");
    ok(
        &node,
        &owner,
        (Method::PATCH, &c(&format!("/categories/{category}"))),
        json!({"name": "T"}),
    )
    .await?;
    let channel = ok(
        &node,
        &owner,
        (Method::POST, &c("/channels")),
        json!({"name": "general"}),
    )
    .await?;
    let channel = text(&channel, "/data/id");
    ok(
        &node,
        &owner,
        (Method::PATCH, &c(&format!("/channels/{channel}"))),
        json!({"name": "g"}),
    )
    .await?;
    let overwrite = c(&format!("/channels/{channel}/overwrites/{id}"));
    ok(
        &node,
        &owner,
        (Method::PUT, &overwrite),
        json!({"type": "role", "deny": ["add_reactions"]}),
    )
    .await?;
    ok(&node, &owner, (Method::DELETE, &overwrite), Value::Null).await?;
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/channels/{channel}"))),
        Value::Null,
    )
    .await?;
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/categories/{category}"))),
        Value::Null,
    )
    .await?;
    let member = |u: &User, rest: &str| c(&format!("/members/{}{rest}", u.id));
    ok(
        &node,
        &owner,
        (Method::PUT, &member(&alice, "/timeout")),
        json!({"secs": 60}),
    )
    .await?;
    ok(
        &node,
        &owner,
        (Method::PUT, &member(&alice, "/voice")),
        json!({"mute": true}),
    )
    .await?;
    // A kick, with the reason the moderator gave.
    let status = with_reason(&node, Method::DELETE, &member(&bob, ""), &owner, "spam").await?;
    assert_eq!(status, 200);
    ok(
        &node,
        &owner,
        (Method::PUT, &c(&format!("/bans/{}", carol.id))),
        Value::Null,
    )
    .await?;
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/bans/{}", carol.id))),
        Value::Null,
    )
    .await?;
    // Join approval: one request accepted, one declined.
    ok(
        &node,
        &owner,
        (Method::PATCH, &c("")),
        json!({"requireApproval": true}),
    )
    .await?;
    let invite = ok(&node, &owner, (Method::POST, &c("/invites")), json!({})).await?;
    let join = format!("/invites/{}/join", text(&invite, "/data/code"));
    for user in [&carol, &dave] {
        ok(&node, user, (Method::POST, &join), Value::Null).await?;
    }
    ok(
        &node,
        &owner,
        (Method::PUT, &c(&format!("/join-requests/{}", carol.id))),
        Value::Null,
    )
    .await?;
    ok(
        &node,
        &owner,
        (Method::DELETE, &c(&format!("/join-requests/{}", dave.id))),
        Value::Null,
    )
    .await?;

    let log = whole_log(&node, &owner, &id).await?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &log {
        *counts.entry(text(entry, "/action")).or_default() += 1;
        assert_eq!(entry["actorId"], owner.id.as_str(), "{entry}");
    }
    let expected: BTreeMap<String, usize> = [
        ("community.update", 2),
        ("role.create", 1),
        ("role.update", 1),
        ("role.delete", 1),
        ("member.role_add", 1),
        ("member.role_remove", 1),
        // `found` let the first members in with one.
        ("invite.create", 3),
        ("invite.revoke", 1),
        ("category.create", 1),
        ("category.update", 1),
        ("category.delete", 1),
        ("channel.create", 1),
        ("channel.update", 1),
        ("channel.overwrite.update", 1),
        ("channel.overwrite.delete", 1),
        ("channel.delete", 1),
        ("member.timeout", 1),
        ("member.voice", 1),
        ("member.kick", 1),
        ("member.ban", 1),
        ("member.unban", 1),
        ("member.join_accept", 1),
        ("member.join_decline", 1),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_owned(), n))
    .collect();
    assert_eq!(counts, expected, "one entry per change");
    let kick = log
        .iter()
        .find(|e| e["action"] == "member.kick")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&kick["targetId"], &kick["reason"]),
        (&json!(bob.id), &json!("spam")),
        "{kick}"
    );

    // Filters.
    let path = c("/audit-log?action=member.ban");
    let bans = ok(&node, &owner, (Method::GET, &path), Value::Null).await?;
    assert_eq!(bans["data"].as_array().map(Vec::len), Some(1), "{bans}");
    let path = c(&format!("/audit-log?actor={}", alice.id));
    let none = ok(&node, &owner, (Method::GET, &path), Value::Null).await?;
    assert_eq!(none["data"], json!([]), "{none}");

    // Only with view_audit_log; and nothing edits or deletes an entry.
    let (status, body) = call(&node, Method::GET, &c("/audit-log"), &alice, None).await?;
    assert_eq!((status, code(&body)), (403, Some("FORBIDDEN")), "{body}");
    let entry = text(&log[0], "/id");
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let (status, _) = call(
            &node,
            method.clone(),
            &c(&format!("/audit-log/{entry}")),
            &owner,
            None,
        )
        .await?;
        assert!(
            matches!(status, 404 | 405),
            "{method} on an entry: {status}"
        );
    }
    assert_eq!(whole_log(&node, &owner, &id).await?.len(), log.len());
    Ok(())
}
