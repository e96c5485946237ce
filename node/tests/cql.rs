//! A node on the CQL backend (`storage = "scylla"`): refusing to start when the cluster is
//! down, accounts, rooms, chat and history across a restart, and the CQL server going away
//! while the node runs (requests fail with STORAGE_UNAVAILABLE, nothing unstored is
//! acknowledged, service resumes when it is back), tested by really stopping and restarting
//! the server with `scripts/cassandra`.
//!
//! Needs `VOICEFLOW_TEST_CQL` (contact points) and, for the outage test,
//! `VOICEFLOW_TEST_CQL_DIR` (the `scripts/cassandra` directory); both are printed by
//! `scripts/cassandra start` and `.ci/cassandra.sh start`. Without them these tests skip,
//! loudly. Each test uses its own keyspace and drops it at the end.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestNode, scylla_config};
use serde_json::{Value, json};
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, random_keyspace,
};

/// Tests here that use the shared CQL server run one at a time (one of them stops it).
static CQL_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The node config and the keyspace (to drop later) for a test, or `None` after the skip
/// notice when no CQL server is configured.
fn node_config(test: &str) -> Option<(String, CqlConfig)> {
    let keyspace = random_keyspace("vf_node");
    let Some(config) = scylla_config(&keyspace) else {
        announce_skip(test);
        return None;
    };
    let points = contact_points_from_env()?;
    Some((config, CqlConfig::for_test_server(points, &keyspace)))
}

/// `scripts/cassandra` in this repository.
fn cassandra_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cassandra")
}

/// Runs `scripts/cassandra <command> <dir>` and fails if it does.
fn cassandra(command: &str, dir: &str) -> anyhow::Result<()> {
    let status = Command::new("bash")
        .arg(cassandra_script())
        .arg(command)
        .arg(dir)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "scripts/cassandra {command} failed: {status}"
    );
    Ok(())
}

/// Starts the CQL server again when dropped, so a failing outage test leaves it running for
/// the tests after it.
struct RestartOnDrop(String);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if let Err(e) = cassandra("server-start", &self.0) {
            eprintln!("could not restart the CQL server: {e}");
        }
    }
}

/// The ids of every user message of a room, oldest first, through REST history pages of 7
/// (joins are logged as system messages; the tests compare what users sent).
async fn history(node: &TestNode, token: &str, room: &str) -> anyhow::Result<Vec<String>> {
    Ok(node
        .history(token, room, 7)
        .await?
        .iter()
        .filter(|m| m["type"] != "system")
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect())
}

/// The id of an acknowledged message, or an error carrying the ack.
fn acked_id(ack: &Value) -> anyhow::Result<String> {
    anyhow::ensure!(ack["ok"] == true, "not acknowledged: {ack}");
    Ok(ack["data"]["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_the_cluster_is_down() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"scylla\"\n[scylla]\ncontact_points = [\"127.0.0.1:{port}\"]\n\
             connect_timeout_ms = 2000\nfetch_schema_metadata = false\n"
        ),
    )?;
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_voiceflow-node"))
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(config.with_file_name("data"))
            .env("RUST_LOG", "error")
            .output()
    })
    .await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "started anyway: {stdout}");
    assert!(
        !stdout.contains("VOICEFLOW_LISTENING"),
        "it must not listen: {stdout}"
    );
    assert!(
        stderr.contains("cannot open the ScyllaDB store") && stderr.contains(&port.to_string()),
        "unclear error: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    Ok(())
}

#[tokio::test]
async fn accounts_rooms_chat_and_history_survive_a_restart() -> anyhow::Result<()> {
    let Some((config, cql)) = node_config("cql::accounts_rooms_chat_and_history_survive_a_restart")
    else {
        return Ok(());
    };
    let _server = CQL_SERVER.lock().await;
    let mut node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let bob = node.register("bob").await?;
    let (status, body) = node
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "ALICE", "email": "other@example.com", "password": "password123", "confirmPassword": "password123"}),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    let (room, code) = node.create_room(&alice, "General", json!({}), 10).await?;
    assert_eq!(node.join_code(&bob, &code).await?.0, 200);

    let mut a = node.ws(&alice).await?;
    let mut b = node.ws(&bob).await?;
    for ws in [&mut a, &mut b] {
        let ack = ws.request("room:join", json!({"roomId": room})).await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let mut pending = Vec::new();
    for i in 0..20 {
        pending.push(
            a.send(
                "message:send",
                json!({"roomId": room, "content": format!("m{i}"), "nonce": format!("n{i}")}),
            )
            .await?,
        );
    }
    let mut sent = Vec::new();
    for id in pending {
        sent.push(acked_id(&a.ack(id).await?)?);
    }
    for id in &sent {
        let frame = b
            .wait_for(|v| v["type"] == "message:received" && v["data"]["type"] != "system")
            .await?;
        assert_eq!(frame["data"]["id"].as_str(), Some(id.as_str()));
    }
    // A retried nonce returns the stored message.
    let again = a
        .request(
            "message:send",
            json!({"roomId": room, "content": "m3", "nonce": "n3"}),
        )
        .await?;
    assert_eq!(acked_id(&again)?, sent[3]);
    assert_eq!(history(&node, &bob.token, &room).await?, sent);

    // A graceful restart keeps everything (the data lives in the cluster).
    drop((a, b));
    assert_eq!(node.terminate()?, Some(0));
    let dir = node.take_dir().ok_or_else(|| anyhow::anyhow!("dir"))?;
    let node = TestNode::start_in(dir.path(), &config).await?;
    let (status, login) = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "password123"}),
        )
        .await?;
    assert_eq!(status, 200, "{login}");
    assert_eq!(history(&node, &bob.token, &room).await?, sent);
    drop(node);
    drop_keyspace(&cql).await?;
    Ok(())
}

#[tokio::test]
async fn the_server_going_away_fails_requests_and_service_resumes() -> anyhow::Result<()> {
    let test = "cql::the_server_going_away_fails_requests_and_service_resumes";
    let Some((config, cql)) = node_config(test) else {
        return Ok(());
    };
    let Ok(dir) = std::env::var("VOICEFLOW_TEST_CQL_DIR") else {
        voiceflow_schema::cql::testing::loud(&format!(
            "*** SKIPPED {test}: VOICEFLOW_TEST_CQL_DIR is not set, so the server cannot be \
             stopped and restarted. ***"
        ));
        return Ok(());
    };
    let _server = CQL_SERVER.lock().await;
    let node = TestNode::start_with(&config).await?;
    let alice = node.register("alice").await?;
    let (room, _) = node.create_room(&alice, "General", json!({}), 10).await?;
    let mut ws = node.ws(&alice).await?;
    ws.request("room:join", json!({"roomId": room})).await?;
    let mut acked = Vec::new();
    for i in 0..5 {
        let ack = ws
            .request(
                "message:send",
                json!({"roomId": room, "content": format!("before {i}"), "nonce": format!("b{i}")}),
            )
            .await?;
        acked.push(acked_id(&ack)?);
    }

    let restart = RestartOnDrop(dir.clone());
    cassandra("server-stop", &dir)?;
    let ack = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "while down", "nonce": "down-1"}),
        )
        .await?;
    assert_eq!(
        ack["ok"], false,
        "acknowledged while the server is down: {ack}"
    );
    assert_eq!(ack["error"]["code"], "STORAGE_UNAVAILABLE", "{ack}");
    let (status, body) = node
        .get(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&alice.token),
        )
        .await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE", "{body}");
    let (status, body) = node
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "bob", "email": "bob@example.com", "password": "password123", "confirmPassword": "password123"}),
        )
        .await?;
    assert_eq!(status, 503, "{body}");

    cassandra("server-start", &dir)?;
    drop(restart);
    // The driver reconnects on its own; the client retries with the same nonce.
    let deadline = Instant::now() + Duration::from_secs(60);
    let resent = loop {
        let ack = ws
            .request(
                "message:send",
                json!({"roomId": room, "content": "while down", "nonce": "down-1"}),
            )
            .await?;
        if ack["ok"] == true {
            break acked_id(&ack)?;
        }
        assert_eq!(ack["error"]["code"], "STORAGE_UNAVAILABLE", "{ack}");
        assert!(Instant::now() < deadline, "service did not resume: {ack}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    acked.push(resent);
    let after = ws
        .request(
            "message:send",
            json!({"roomId": room, "content": "after", "nonce": "a1"}),
        )
        .await?;
    acked.push(acked_id(&after)?);
    // Exactly the acknowledged messages, once each, in order.
    assert_eq!(history(&node, &alice.token, &room).await?, acked);
    let bob = node.register("bob").await?;
    assert!(!bob.token.is_empty());
    drop(node);
    drop_keyspace(&cql).await?;
    Ok(())
}
