//! Message search on a real node: the query language, what a caller may find (rooms they
//! read, never a room they left or a channel hidden from them, nothing of a room that keeps no
//! messages), edits and deletions, bad queries, and an index that survives a restart and
//! catches up what a crash kept from it.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use common::community::{call, found, text};
use common::{FAST_CONFIG, TestNode, User};
use reqwest::Method;
use serde_json::{Value, json};

/// Commits every 50 ms, so tests wait little for what they posted.
fn config() -> String {
    format!("{FAST_CONFIG}\n[search]\ncommit_interval_ms = 50\n")
}

/// `GET /api/v1/search` with these parameters, as `user`.
async fn search(node: &TestNode, user: &User, params: &[(&str, &str)]) -> Result<(u16, Value)> {
    let resp = node
        .http
        .get(node.url("/api/v1/search"))
        .query(params)
        .bearer_auth(&user.token)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

/// The message ids `q` finds for `user`, in order.
async fn ids(node: &TestNode, user: &User, q: &str) -> Result<Vec<String>> {
    let (status, body) = search(node, user, &[("q", q)]).await?;
    ensure!(status == 200, "search {q}: {status} {body}");
    ensure!(
        body["partial"] == false,
        "a single node is never partial: {body}"
    );
    Ok(body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["messageId"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// Waits (10 s at most) until `q` finds exactly `want` for `user`.
async fn finds(node: &TestNode, user: &User, q: &str, want: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = ids(node, user, q).await?;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{q}: found {got:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Posts `content` to `room` as `user` (REST); the message id.
async fn post(node: &TestNode, user: &User, room: &str, body: Value) -> Result<String> {
    let mut body = body;
    body["roomId"] = json!(room);
    let (status, sent) = node
        .post("/api/v1/messages", Some(&user.token), body)
        .await?;
    ensure!(status == 201, "post: {status} {sent}");
    Ok(text(&sent, "/data/message/id"))
}

async fn say(node: &TestNode, user: &User, room: &str, content: &str) -> Result<String> {
    post(node, user, room, json!({"content": content})).await
}

/// Today's date in UTC, and the days before and after it, as `YYYY-MM-DD`.
fn days() -> (String, String, String) {
    let now = voiceflow_wire::ids::now_ms();
    let day = |ms: u64| voiceflow_wire::time::rfc3339(ms)[..10].to_owned();
    (day(now - 86_400_000), day(now), day(now + 86_400_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_phrases_operators_edits_and_deletions() -> Result<()> {
    let node = TestNode::start_with(&config()).await?;
    let ann = node.register("ann").await?;
    let bob = node.register("bob").await?;
    let (alpha, code) = node.create_room(&ann, "Alpha", json!({}), 10).await?;
    let (beta, _) = node.create_room(&ann, "Beta", json!({}), 10).await?;
    let (status, joined) = node.join_code(&bob, &code).await?;
    ensure!(status == 200, "{joined}");

    let fox = say(&node, &ann, &alpha, "The quick brown fox").await?;
    let dogs = say(
        &node,
        &bob,
        &alpha,
        "lazy dogs sleep, see https://example.com/dogs",
    )
    .await?;
    let bread = say(&node, &ann, &beta, "brown bread recipe").await?;
    let upload = node
        .http
        .post(node.url(&format!("/api/v1/files?roomId={alpha}&name=report.txt")))
        .bearer_auth(&ann.token)
        .body("numbers")
        .send()
        .await?
        .json::<Value>()
        .await?;
    let file_id = text(&upload, "/data/id");
    let report = post(
        &node,
        &ann,
        &alpha,
        json!({"content": "quarterly report", "type": "file", "fileId": file_id}),
    )
    .await?;

    // Words (every one, any case), newest first; phrases in order.
    finds(&node, &ann, "brown", &[&bread, &fox]).await?;
    finds(&node, &ann, "BROWN fox", &[&fox]).await?;
    finds(&node, &ann, "\"quick brown\"", &[&fox]).await?;
    finds(&node, &ann, "\"brown quick\"", &[]).await?;
    // Operators.
    finds(&node, &ann, "from:bob", &[&dogs]).await?;
    finds(&node, &ann, "from:@ann brown", &[&bread, &fox]).await?;
    finds(&node, &ann, "from:nobody brown", &[]).await?;
    finds(&node, &ann, "brown in:beta", &[&bread]).await?;
    finds(&node, &ann, &format!("brown in:{alpha}"), &[&fox]).await?;
    finds(&node, &ann, "has:link", &[&dogs]).await?;
    finds(&node, &ann, "has:file", &[&report]).await?;
    let (yesterday, today, tomorrow) = days();
    finds(&node, &ann, &format!("brown before:{today}"), &[]).await?;
    finds(
        &node,
        &ann,
        &format!("brown before:{tomorrow}"),
        &[&bread, &fox],
    )
    .await?;
    finds(
        &node,
        &ann,
        &format!("brown after:{yesterday}"),
        &[&bread, &fox],
    )
    .await?;
    finds(&node, &ann, &format!("brown after:{today}"), &[]).await?;
    // The URL's filters are the same as the operators.
    let (status, body) = search(&node, &ann, &[("q", "brown"), ("roomId", &beta)]).await?;
    ensure!(
        status == 200 && body["data"].as_array().map(Vec::len) == Some(1),
        "{body}"
    );
    let (_, body) = search(&node, &ann, &[("has", "link"), ("authorId", &bob.id)]).await?;
    ensure!(body["data"][0]["messageId"] == dogs.as_str(), "{body}");

    // A hit: room name, author, time, and the highlighted span in its snippet.
    let (_, body) = search(&node, &ann, &[("q", "fox"), ("sort", "relevance")]).await?;
    let hit = &body["data"][0];
    ensure!(
        hit["roomName"] == "Alpha" && hit["username"] == "ann",
        "{hit}"
    );
    ensure!(
        hit["createdAt"]
            .as_str()
            .is_some_and(|t| t.starts_with(&today)),
        "{hit}"
    );
    let snippet: Vec<char> = text(hit, "/snippet").chars().collect();
    let (start, end) = (
        hit["highlights"][0][0].as_u64().unwrap_or(0) as usize,
        hit["highlights"][0][1].as_u64().unwrap_or(0) as usize,
    );
    let marked: String = snippet.get(start..end).unwrap_or_default().iter().collect();
    ensure!(marked == "fox", "highlight {marked:?} in {hit}");

    // Bob reads Alpha but not Beta.
    finds(&node, &bob, "brown", &[&fox]).await?;
    finds(&node, &bob, &format!("bread in:{beta}"), &[]).await?;

    // An edit replaces the text; a deleted message is not found from the moment the
    // deletion is acknowledged.
    let mut ws = node.ws(&ann).await?;
    ws.request("room:join", json!({"roomId": alpha})).await?;
    let ack = ws
        .request(
            "message:update",
            json!({"roomId": alpha, "messageId": fox, "content": "the quick red fox"}),
        )
        .await?;
    ensure!(ack["ok"] == true, "{ack}");
    finds(&node, &ann, "red", &[&fox]).await?;
    finds(&node, &ann, "brown", &[&bread]).await?;
    let (status, deleted) = node
        .call(
            Method::DELETE,
            &format!("/api/v1/messages/{dogs}"),
            Some(&bob.token),
            None,
        )
        .await?;
    ensure!(status == 200, "{deleted}");
    ensure!(
        ids(&node, &ann, "lazy dogs").await?.is_empty(),
        "deleted, yet found"
    );
    ensure!(
        ids(&node, &ann, "has:link").await?.is_empty(),
        "deleted, yet found"
    );

    // Bob leaves Alpha: nothing of it any more.
    let (status, left) = node
        .post(
            &format!("/api/v1/rooms/{alpha}/leave"),
            Some(&bob.token),
            json!({}),
        )
        .await?;
    ensure!(status == 200, "{left}");
    finds(&node, &bob, "fox", &[]).await?;
    finds(&node, &bob, &format!("fox in:{alpha}"), &[]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_channel_yields_nothing_and_bad_queries_have_codes() -> Result<()> {
    let node = TestNode::start_with(&config()).await?;
    let owner = node.register("owner").await?;
    let member = node.register("member").await?;
    let id = found(&node, &owner, "Guild", &[&member]).await?;
    let (status, created) = call(
        &node,
        Method::POST,
        &format!("/communities/{id}/channels"),
        &owner,
        Some(json!({"name": "council"})),
    )
    .await?;
    ensure!(status == 201, "{created}");
    let channel = text(&created, "/data/id");
    let plans = say(&node, &owner, &channel, "secret plans").await?;
    finds(&node, &member, "secret", &[&plans]).await?;
    let path = format!("/communities/{id}/channels/{channel}/overwrites/{id}");
    let deny = json!({"type": "role", "deny": ["view_channel"]});
    let (status, body) = call(&node, Method::PUT, &path, &owner, Some(deny)).await?;
    ensure!(status == 200, "{body}");
    finds(&node, &member, "secret", &[]).await?;
    finds(&node, &member, &format!("secret in:{channel}"), &[]).await?;
    finds(&node, &owner, "secret", &[&plans]).await?;

    // A room that keeps no messages is not indexed: a later message of a recorded room is
    // found, the earlier one of the unrecorded room never.
    let off = json!({"recordMessages": false});
    let (unrecorded, _) = node.create_room(&owner, "Ephemeral", off, 10).await?;
    let (recorded, _) = node.create_room(&owner, "Kept", json!({}), 10).await?;
    say(&node, &owner, &unrecorded, "vanishing ink").await?;
    let kept = say(&node, &owner, &recorded, "permanent ink").await?;
    finds(&node, &owner, "ink", &[&kept]).await?;

    // Bad queries: 400 VALIDATION_ERROR with a stable reason.
    let long = "a".repeat(513);
    for (q, reason) in [
        ("", "EMPTY_QUERY"),
        ("to:ann", "UNKNOWN_OPERATOR"),
        ("has:gif", "BAD_OPERAND"),
        ("before:tomorrow", "BAD_OPERAND"),
        ("\"open", "UNCLOSED_QUOTE"),
        ("from:a from:b", "REPEATED_OPERATOR"),
        (long.as_str(), "QUERY_TOO_LONG"),
    ] {
        let (status, body) = search(&node, &member, &[("q", q)]).await?;
        ensure!(status == 400, "{q}: {status} {body}");
        ensure!(body["error"]["code"] == "VALIDATION_ERROR", "{body}");
        ensure!(body["error"]["details"]["reason"] == reason, "{q}: {body}");
    }
    for params in [
        [("q", "x"), ("limit", "101")],
        [("q", "x"), ("sort", "oldest")],
        [("q", "x"), ("roomId", "abc")],
    ] {
        let (status, body) = search(&node, &member, &params).await?;
        ensure!(
            status == 400 && body["error"]["code"] == "VALIDATION_ERROR",
            "{body}"
        );
    }
    let (status, _) = node.get("/api/v1/search?q=x", None).await?;
    ensure!(status == 401, "search needs a token");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_index_and_catches_up_what_a_crash_kept_from_it() -> Result<()> {
    // The index commits only at shutdown: what a kill -9 interrupts never reaches it.
    let slow = format!("{FAST_CONFIG}\n[search]\ncommit_interval_ms = 3600000\n");
    let mut node = TestNode::start_with(&slow).await?;
    let ann = node.register("ann").await?;
    let (room, _) = node.create_room(&ann, "Log", json!({}), 10).await?;
    let early = say(&node, &ann, &room, "early bird").await?;
    ensure!(
        ids(&node, &ann, "early").await?.is_empty(),
        "committed too soon"
    );
    ensure!(
        node.data_dir.join("data/search").is_dir(),
        "the index lives under data_dir"
    );
    // A graceful stop commits the index.
    let dir = node.take_dir().ok_or_else(|| anyhow::anyhow!("no dir"))?;
    ensure!(node.terminate()? == Some(0), "graceful stop");
    let mut node = TestNode::start_in(dir.path(), &slow).await?;
    ensure!(ids(&node, &ann, "early").await? == [early.clone()], "kept");
    // Acknowledged (so in the room's log), then the node dies before the index commits.
    let late = [
        say(&node, &ann, &room, "late owl").await?,
        say(&node, &ann, &room, "late lark").await?,
    ];
    ensure!(
        ids(&node, &ann, "late").await?.is_empty(),
        "committed too soon"
    );
    node.kill9();
    // Restarted: the two entries come back from the log; nothing else is read again.
    let node = TestNode::start_in(dir.path(), &config()).await?;
    finds(&node, &ann, "late", &[&late[1], &late[0]]).await?;
    finds(&node, &ann, "early", &[&early]).await?;
    let read = node.metric("voiceflow_search_caught_up_total").await?;
    ensure!(
        read == 2.0,
        "caught up {read} log entries, not just the 2 missing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_search_off_says_so_and_keeps_no_index() -> Result<()> {
    let node = TestNode::start_with(&format!("{FAST_CONFIG}\n[search]\nenabled = false\n")).await?;
    let ann = node.register("ann").await?;
    let (room, _) = node.create_room(&ann, "Quiet", json!({}), 10).await?;
    say(&node, &ann, &room, "not indexed").await?;
    let (status, body) = search(&node, &ann, &[("q", "indexed")]).await?;
    ensure!(
        status == 503 && body["error"]["code"] == "UNAVAILABLE",
        "{status} {body}"
    );
    ensure!(
        !node.data_dir.join("data/search").exists(),
        "no index directory"
    );
    Ok(())
}
