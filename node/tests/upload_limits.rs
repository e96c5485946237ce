//! Uploads against a real node under abuse: stalled bodies (memory stays flat, cut off with
//! 408 after `[files] body_idle_timeout_secs`, nothing left on disk), the per-user cap on
//! uploads in progress, the per-user upload bucket, the per-user storage quota (also after a
//! restart), blobs on disk readable by the node's user only, and stalled JSON bodies.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::{FAST_CONFIG, FAST_CONFIG_LIMITED, TestNode, User};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// The node's upload spool (uploads in progress).
fn spool(node: &TestNode) -> PathBuf {
    node.data_dir.join("data").join("blobs").join(".incoming")
}

/// Sizes of the files in the spool.
fn spooled(node: &TestNode) -> Vec<u64> {
    std::fs::read_dir(spool(node))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A raw upload whose headers promise `length` bytes; the body is sent by the caller.
async fn start_raw_upload(
    node: &TestNode,
    user: &User,
    room: &str,
    length: u64,
) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(node.addr).await?;
    let head = format!(
        "POST /api/v1/files?roomId={room}&name=big.bin HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n\r\n",
        node.addr, user.token
    );
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

/// Reads an HTTP response off a raw connection: status and JSON body.
async fn read_response(stream: &mut TcpStream) -> Result<(u16, Value)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("status line")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)));
            }
        }
        if n == 0 {
            bail!("connection closed before a response: {:?}", text);
        }
    }
}

async fn upload(node: &TestNode, user: &User, room: &str, bytes: Vec<u8>) -> Result<(u16, Value)> {
    let resp = node
        .http
        .post(node.url(&format!("/api/v1/files?roomId={room}&name=f.bin")))
        .bearer_auth(&user.token)
        .body(bytes)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").cloned();
    let mut body: Value = resp.json().await.unwrap_or(Value::Null);
    if let Some(v) = retry_after {
        body["retryAfterHeader"] = json!(v.to_str().unwrap_or_default());
    }
    Ok((status, body))
}

async fn room_of(node: &TestNode, owner: &User) -> Result<String> {
    Ok(node
        .create_room(owner, "uploads", json!({"isPublic": true}), 100)
        .await?
        .0)
}

const MIB: usize = 1024 * 1024;

/// The probe's finding, scaled to the test machine's disk: 16 uploads stall part-way. They
/// are spooled to disk (RSS stays within a small bound instead of growing by what they sent)
/// and cut off with 408 once `body_idle_timeout_secs` passes, their partial files removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_uploads_hold_little_memory_and_are_cut_off() -> Result<()> {
    const UPLOADS: usize = 16;
    const SENT: usize = 6 * MIB;
    let node = TestNode::start_with(&format!(
        "{FAST_CONFIG}[files]\nmax_bytes = {}\nbody_idle_timeout_secs = 3\n\
         max_concurrent_per_user = {UPLOADS}\n",
        8 * MIB
    ))
    .await?;
    let alice = node.register("alice").await?;
    let room = room_of(&node, &alice).await?;
    upload(&node, &alice, &room, vec![7u8; 64 * 1024]).await?;
    let before = rss(node.pid())?;

    let chunk = vec![0x5au8; 256 * 1024];
    let mut streams = Vec::new();
    for _ in 0..UPLOADS {
        let mut stream = start_raw_upload(&node, &alice, &room, 8 * MIB as u64).await?;
        for _ in 0..SENT / chunk.len() {
            stream.write_all(&chunk).await?;
        }
        streams.push(stream);
    }
    // Everything sent has reached the node: it is all in the spool.
    wait_until(
        Duration::from_secs(30),
        "the spool to hold every byte",
        || {
            let sizes = spooled(&node);
            sizes.len() == UPLOADS && sizes.iter().all(|s| *s == SENT as u64)
        },
    )
    .await?;
    let during = rss(node.pid())?;
    eprintln!(
        "RSS before {} MiB, with {UPLOADS} uploads stalled after {} MiB: {} MiB",
        before / MIB as u64,
        SENT / MIB,
        during / MIB as u64
    );
    let grown = during.saturating_sub(before);
    assert!(
        grown < 40 * MIB as u64,
        "RSS grew by {} MiB for {} MiB of stalled uploads",
        grown / MIB as u64,
        UPLOADS * SENT / MIB
    );

    let stalled_at = Instant::now();
    for stream in &mut streams {
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), read_response(stream))
            .await
            .context("no answer to a stalled upload")??;
        assert_eq!(status, 408, "{body}");
        assert_eq!(body["error"]["code"], "REQUEST_TIMEOUT", "{body}");
    }
    assert!(stalled_at.elapsed() < Duration::from_secs(15));
    wait_until(Duration::from_secs(10), "the spool to be emptied", || {
        spooled(&node).is_empty()
    })
    .await?;
    // Nothing was stored, and the user can upload again.
    let (status, body) = upload(&node, &alice, &room, vec![1u8; 1000]).await?;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

/// `max_concurrent_per_user` uploads of one user may be in progress; one more gets 429
/// RATE_LIMITED (with `retryAfterMs` and `Retry-After`), other users are not affected, and a
/// finished upload frees its slot.
#[tokio::test]
async fn uploads_in_progress_are_capped_per_user() -> Result<()> {
    let node = TestNode::start_with(&format!(
        "{FAST_CONFIG}[files]\nmax_concurrent_per_user = 2\n"
    ))
    .await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (room, code) = node
        .create_room(&alice, "uploads", json!({"isPublic": true}), 100)
        .await?;
    let (status, body) = node.join_code(&bob, &code).await?;
    assert_eq!(status, 200, "{body}");
    let mut first = start_raw_upload(&node, &alice, &room, 2000).await?;
    first.write_all(&[1u8; 1000]).await?;
    let mut second = start_raw_upload(&node, &alice, &room, 2000).await?;
    second.write_all(&[2u8; 1000]).await?;
    wait_until(Duration::from_secs(10), "two uploads in progress", || {
        spooled(&node).len() == 2
    })
    .await?;

    let (status, body) = upload(&node, &alice, &room, vec![3u8; 100]).await?;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    assert!(
        body["error"]["details"]["retryAfterMs"].as_u64() > Some(0),
        "{body}"
    );
    assert_eq!(body["retryAfterHeader"], "1", "{body}");
    let (status, body) = upload(&node, &bob, &room, vec![4u8; 100]).await?;
    assert_eq!(status, 201, "another user is not limited: {body}");

    first.write_all(&[1u8; 1000]).await?;
    let (status, body) = read_response(&mut first).await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = upload(&node, &alice, &room, vec![5u8; 100]).await?;
    assert_eq!(status, 201, "a finished upload frees its slot: {body}");
    drop(second);
    Ok(())
}

/// `uploads_per_min` uploads per user; the next gets 429 with `Retry-After`.
#[tokio::test]
async fn uploads_are_rate_limited_per_user() -> Result<()> {
    let node = TestNode::start_with(&format!(
        "{FAST_CONFIG_LIMITED}[limits]\nlogins_per_min = 100\nuploads_per_min = 3\n"
    ))
    .await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let room = room_of(&node, &alice).await?;
    let bob_room = room_of(&node, &bob).await?;
    for i in 0..3 {
        let (status, body) = upload(&node, &alice, &room, vec![i; 100]).await?;
        assert_eq!(status, 201, "upload {i}: {body}");
    }
    let (status, body) = upload(&node, &alice, &room, vec![9; 100]).await?;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    let retry: u64 = body["retryAfterHeader"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("Retry-After")?;
    assert!((1..=60).contains(&retry), "{body}");
    let (status, body) = upload(&node, &bob, &bob_room, vec![1; 100]).await?;
    assert_eq!(status, 201, "another user's bucket is full: {body}");
    Ok(())
}

/// What a user has stored counts against `quota_bytes`: an upload that does not fit gets
/// 413 QUOTA_EXCEEDED (with the quota and the usage) and stores nothing; one that fits
/// exactly is taken; a full quota refuses even one byte, also after a restart; another user
/// has their own quota.
#[tokio::test]
async fn the_storage_quota_is_kept_per_user() -> Result<()> {
    quota_case(&format!("{FAST_CONFIG}[files]\n{QUOTA}")).await
}

/// The same with the CQL blob store (usage in its `file_usage` table).
#[tokio::test]
async fn the_storage_quota_is_kept_in_the_cql_store() -> Result<()> {
    let keyspace = random_keyspace("vf_quota");
    let (Some(config), Some(points)) =
        (common::scylla_config(&keyspace), contact_points_from_env())
    else {
        announce_skip("upload_limits::the_storage_quota_is_kept_in_the_cql_store");
        return Ok(());
    };
    let cql = voiceflow_schema::cql::CqlConfig::for_test_server(points, &keyspace);
    let outcome = quota_case(&format!("{config}\n[files]\n{QUOTA}")).await;
    if let Err(e) = drop_keyspace(&cql).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}

const QUOTA: &str = "max_bytes = 8000\nquota_bytes = 10000\n";

async fn quota_case(config: &str) -> Result<()> {
    let mut node = TestNode::start_with(config).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let room = room_of(&node, &alice).await?;
    let bob_room = room_of(&node, &bob).await?;
    let (status, body) = upload(&node, &alice, &room, vec![1; 6000]).await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = upload(&node, &alice, &room, vec![2; 5000]).await?;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{body}");
    assert_eq!(body["error"]["details"]["quota"], 10000, "{body}");
    assert_eq!(body["error"]["details"]["used"], 6000, "{body}");
    let (status, body) = upload(&node, &alice, &room, vec![3; 4000]).await?;
    assert_eq!(status, 201, "fits exactly: {body}");
    let (status, body) = upload(&node, &alice, &room, vec![4; 1]).await?;
    assert_eq!(body["error"]["code"], "QUOTA_EXCEEDED", "{status} {body}");
    let (status, body) = upload(&node, &bob, &bob_room, vec![5; 8000]).await?;
    assert_eq!(status, 201, "bob's quota is his own: {body}");

    let dir = node.take_dir().context("data dir")?;
    node.terminate()?;
    let node = TestNode::start_in(dir.path(), config).await?;
    let (status, body) = upload(&node, &alice, &room, vec![6; 1]).await?;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["error"]["code"], "QUOTA_EXCEEDED",
        "after a restart: {body}"
    );
    Ok(())
}

/// Files (bytes and metadata) are created 0600.
#[tokio::test]
async fn blobs_are_readable_by_the_node_user_only() -> Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let room = room_of(&node, &alice).await?;
    let (status, body) = upload(&node, &alice, &room, b"secret".to_vec()).await?;
    assert_eq!(status, 201, "{body}");
    let blobs = node.data_dir.join("data").join("blobs");
    let mut files = Vec::new();
    collect_files(&blobs, &mut files)?;
    assert_eq!(files.len(), 2, "bytes and metadata: {files:?}");
    for file in files {
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// A JSON body that stops arriving gets 408 REQUEST_TIMEOUT after `rest_body_timeout_secs`.
#[tokio::test]
async fn a_stalled_json_body_times_out() -> Result<()> {
    let node = TestNode::start_with(&format!(
        "{FAST_CONFIG_LIMITED}[limits]\nrate_limits = false\nrest_body_timeout_secs = 1\n"
    ))
    .await?;
    let alice = node.register("alice").await?;
    let mut stream = TcpStream::connect(node.addr).await?;
    let head = format!(
        "POST /api/v1/rooms HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        node.addr, alice.token
    );
    stream.write_all(head.as_bytes()).await?;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .context("a stalled JSON body was never answered")??;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "REQUEST_TIMEOUT", "{body}");
    Ok(())
}
