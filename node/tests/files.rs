//! Attachments through a real node: multipart and raw uploads, types sniffed from the bytes,
//! downloads by members only (Bearer header or `?token=`), 401/403/404, the size limit (413,
//! nothing stored), files surviving a restart, and the CQL blob store behind a node.

mod common;

use anyhow::{Context, Result};
use common::{FAST_CONFIG, TestNode, User};
use serde_json::{Value, json};
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// A 1×1 PNG's first bytes (magic number and IHDR) plus some payload.
fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    bytes.extend((0..3000u32).map(|i| (i % 251) as u8));
    bytes
}

/// A multipart/form-data body with a `file` part (claiming `claimed_type`) and another field.
fn multipart(filename: &str, claimed_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----voiceflow-test-boundary-7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhello\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: {claimed_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_multipart(
    node: &TestNode,
    user: &User,
    room: &str,
    filename: &str,
    bytes: &[u8],
) -> Result<(u16, Value)> {
    let (content_type, body) = multipart(filename, "text/plain", bytes);
    let resp = node
        .http
        .post(node.url(&format!("/api/v1/files?roomId={room}")))
        .bearer_auth(&user.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    Ok((
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    ))
}

async fn upload_raw(
    node: &TestNode,
    token: &str,
    query: &str,
    bytes: Vec<u8>,
) -> Result<(u16, Value)> {
    let resp = node
        .http
        .post(node.url(&format!("/api/v1/files?{query}")))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await?;
    Ok((
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    ))
}

/// GET `path` with an optional bearer token: status, headers, body bytes.
async fn fetch(
    node: &TestNode,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let mut req = node.http.get(node.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok((status, headers, resp.bytes().await?.to_vec()))
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Files (not directories) under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn uploads_are_sniffed_and_served_to_members_only() -> Result<()> {
    let node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let carol = node.register("carol").await?;
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    node.join_code(&bob, &code).await?;

    // Multipart, claimed text/plain, really a PNG; the path in the name is dropped.
    let image = png();
    let (status, body) = upload_multipart(&node, &alice, &room, "../../pic.png", &image).await?;
    assert_eq!(status, 201, "{body}");
    let file = &body["data"];
    let id = file["id"].as_str().context("id")?.to_owned();
    assert_eq!(file["name"], "pic.png");
    assert_eq!(file["size"], image.len());
    assert_eq!(file["mimeType"], "image/png");
    assert_eq!(file["url"], format!("/api/v1/files/{id}"));
    assert_eq!(file["roomId"], room);
    assert_eq!(file["uploadedBy"], alice.id);
    assert!(file["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Bob (a member) downloads it, with the header or with ?token= as an <img> would.
    let url = format!("/api/v1/files/{id}");
    let (status, headers, bytes) = fetch(&node, &url, Some(&bob.token)).await?;
    assert_eq!(status, 200);
    assert_eq!(bytes, image);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"], image.len().to_string().as_str());
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "private");
    let disposition = headers["content-disposition"].to_str()?;
    assert!(
        disposition.starts_with("inline; filename=\"pic.png\""),
        "{disposition}"
    );
    let (status, _, bytes) = fetch(&node, &format!("{url}?token={}", bob.token), None).await?;
    assert_eq!((status, bytes == image), (200, true));
    assert_eq!(headers["accept-ranges"], "bytes");
    // One byte range at a time, as players seek: 206 with the part, 416 past the end.
    let total = image.len();
    for (range, part, shown) in [
        ("bytes=2-5", 2..6, format!("bytes 2-5/{total}")),
        (
            "bytes=-4",
            total - 4..total,
            format!("bytes {}-{}/{total}", total - 4, total - 1),
        ),
        (
            "bytes=10-",
            10..total,
            format!("bytes 10-{}/{total}", total - 1),
        ),
    ] {
        let resp = node
            .http
            .get(node.url(&url))
            .bearer_auth(&bob.token)
            .header("range", range)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 206, "{range}");
        assert_eq!(resp.headers()["content-range"], shown.as_str(), "{range}");
        assert_eq!(
            resp.bytes().await?.to_vec(),
            image[part].to_vec(),
            "{range}"
        );
    }
    let past = node
        .http
        .get(node.url(&url))
        .bearer_auth(&bob.token)
        .header("range", format!("bytes={total}-"))
        .send()
        .await?;
    assert_eq!(past.status().as_u16(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{total}").as_str()
    );
    let (status, meta) = node.get(&format!("{url}/meta"), Some(&bob.token)).await?;
    assert_eq!(status, 200);
    assert_eq!(&meta["data"], file);

    // Raw bodies: the client's content type is ignored either way.
    let (status, body) = upload_raw(
        &node,
        &bob.token,
        &format!("roomId={room}&name=notes.txt"),
        "héllo wörld\n".as_bytes().to_vec(),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["mimeType"], "text/plain");
    let text_url = body["data"]["url"].as_str().context("url")?.to_owned();
    let (status, headers, _) = fetch(&node, &text_url, Some(&alice.token)).await?;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(
        headers["content-disposition"]
            .to_str()?
            .starts_with("attachment; filename=\"notes.txt\"")
    );
    let (status, body) = upload_raw(
        &node,
        &bob.token,
        &format!("roomId={room}&name=blob.bin"),
        vec![0xff, 0xfe, 0x00, 0x81, 0x82],
    )
    .await?;
    assert_eq!(
        (status, &body["data"]["mimeType"]),
        (201, &json!("application/octet-stream"))
    );

    // Carol is not in the room: she can neither read nor upload.
    let (status, _, body) = fetch(&node, &url, Some(&carol.token)).await?;
    assert_eq!((status, error_code(&body).as_str()), (403, "FORBIDDEN"));
    let (status, meta) = node.get(&format!("{url}/meta"), Some(&carol.token)).await?;
    assert_eq!((status, &meta["error"]["code"]), (403, &json!("FORBIDDEN")));
    let (status, body) = upload_multipart(&node, &carol, &room, "x.png", &image).await?;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("FORBIDDEN")));

    // No token, a bad token, an unknown id.
    let (status, _, body) = fetch(&node, &url, None).await?;
    assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHORIZED"));
    let (status, _, _) = fetch(&node, &format!("{url}?token=garbage"), None).await?;
    assert_eq!(status, 401);
    let (status, _, body) = fetch(&node, "/api/v1/files/12345", Some(&bob.token)).await?;
    assert_eq!((status, error_code(&body).as_str()), (404, "NOT_FOUND"));
    let resp = node
        .http
        .post(node.url(&format!("/api/v1/files?roomId={room}&name=a.txt")))
        .body("x")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);

    // Bad requests name the field.
    let (status, body) = upload_raw(&node, &bob.token, "name=a.txt", b"x".to_vec()).await?;
    assert_eq!(
        (status, &body["error"]["details"]["field"]),
        (400, &json!("roomId"))
    );
    let (status, body) =
        upload_raw(&node, &bob.token, &format!("roomId={room}"), b"x".to_vec()).await?;
    assert_eq!(
        (status, &body["error"]["details"]["field"]),
        (400, &json!("name"))
    );
    let (status, body) = upload_raw(
        &node,
        &bob.token,
        &format!("roomId={room}&name=empty.txt"),
        Vec::new(),
    )
    .await?;
    assert_eq!(
        (status, &body["error"]["details"]["field"]),
        (400, &json!("file"))
    );
    let (status, _) = upload_raw(&node, &bob.token, "roomId=999&name=a.txt", b"x".to_vec()).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_nothing_is_stored() -> Result<()> {
    let node = TestNode::start_with(&format!("{FAST_CONFIG}files.max_bytes = 1000\n")).await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let blobs = node.data_dir.join("data").join("blobs");

    let query = format!("roomId={room}&name=big.bin");
    let (status, body) = upload_raw(&node, &alice.token, &query, vec![7u8; 1001]).await?;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(body["error"]["details"]["limit"], 1000);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1000"))
    );
    // A multipart body within the early Content-Length allowance is cut off while reading.
    let (status, body) = upload_multipart(&node, &alice, &room, "big.png", &png()).await?;
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("PAYLOAD_TOO_LARGE"))
    );
    assert_eq!(files_under(&blobs), 0, "nothing stored");

    let (status, body) = upload_raw(&node, &alice.token, &query, vec![7u8; 1000]).await?;
    assert_eq!(status, 201, "exactly the limit is fine: {body}");
    assert_eq!(files_under(&blobs), 2, "the file and its metadata");
    // Clients learn the limit when they connect, to refuse big files before uploading them.
    let ws = node.ws(&alice).await?;
    assert_eq!(ws.hello["data"]["maxUploadBytes"], 1000, "{}", ws.hello);
    assert_eq!(ws.hello["data"]["maxFrameBytes"], 64 * 1024);
    Ok(())
}

#[tokio::test]
async fn files_survive_a_restart() -> Result<()> {
    let mut node = TestNode::start().await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let image = png();
    let (status, body) = upload_multipart(&node, &alice, &room, "pic.png", &image).await?;
    assert_eq!(status, 201, "{body}");
    let url = body["data"]["url"].as_str().context("url")?.to_owned();

    assert_eq!(node.terminate()?, Some(0));
    let dir = node.take_dir().context("dir")?;
    let node = TestNode::start_in(dir.path(), FAST_CONFIG).await?;
    let (status, headers, bytes) = fetch(&node, &url, Some(&alice.token)).await?;
    assert_eq!((status, bytes == image), (200, true));
    assert_eq!(headers["content-type"], "image/png");
    let (status, meta) = node.get(&format!("{url}/meta"), Some(&alice.token)).await?;
    assert_eq!((status, &meta["data"]), (200, &body["data"]));
    Ok(())
}

#[tokio::test]
async fn a_node_on_cql_keeps_files_in_the_cql_store() -> Result<()> {
    let test = "files::a_node_on_cql_keeps_files_in_the_cql_store";
    let keyspace = random_keyspace("vf_files");
    let (Some(config), Some(points)) =
        (common::scylla_config(&keyspace), contact_points_from_env())
    else {
        announce_skip(test);
        return Ok(());
    };
    let cql = voiceflow_schema::cql::CqlConfig::for_test_server(points, &keyspace);
    let outcome = async {
        let mut node = TestNode::start_with(&config).await?;
        let alice = node.register("alice").await?;
        let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
        // Over one 512 KiB chunk.
        let mut big = png();
        big.extend((0..600_000u32).map(|i| (i % 253) as u8));
        let (status, body) = upload_multipart(&node, &alice, &room, "big.png", &big).await?;
        anyhow::ensure!(status == 201, "{status} {body}");
        let url = body["data"]["url"].as_str().context("url")?.to_owned();
        assert_eq!(
            files_under(&node.data_dir.join("data").join("blobs")),
            0,
            "nothing in a local directory"
        );
        assert_eq!(node.terminate()?, Some(0));
        let dir = node.take_dir().context("dir")?;
        let node = TestNode::start_in(dir.path(), &config).await?;
        let (status, headers, bytes) = fetch(&node, &url, Some(&alice.token)).await?;
        assert_eq!((status, bytes.len(), bytes == big), (200, big.len(), true));
        assert_eq!(headers["content-type"], "image/png");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = drop_keyspace(&cql).await {
        eprintln!("could not drop keyspace {keyspace}: {e}");
    }
    outcome
}
