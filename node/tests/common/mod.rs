//! The one helper every integration test uses: start a real `voiceflow-node` process on
//! 127.0.0.1:0 with a temporary data dir, talk to it with real HTTP and WebSocket clients,
//! stop it gracefully or with SIGKILL. Processes are killed when the handle drops.

#![allow(dead_code)]

pub mod cluster;
pub mod community;
pub mod front_door;
pub mod load;
pub mod proxy;
pub mod push_service;
pub mod voice;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Settings tests commonly shorten; written to a config file for the node. Rate limits are
/// off (tests register many users from one address and send fast); `node/tests/limits.rs`
/// tests them with [`FAST_CONFIG_LIMITED`].
pub const FAST_CONFIG: &str = "password_hash_memory_kib = 1024\npassword_hash_iterations = 1\n\
     typing_ttl_ms = 600\nlimits.rate_limits = false\n";

/// [`FAST_CONFIG`] with the default rate limits on; add a `[limits]` table to change them.
pub const FAST_CONFIG_LIMITED: &str =
    "password_hash_memory_kib = 1024\npassword_hash_iterations = 1\ntyping_ttl_ms = 600\n";

/// Config for a node on the CQL test server named by `VOICEFLOW_TEST_CQL` (e.g. the bridge
/// started by `scripts/cassandra start`), in `keyspace`: [`FAST_CONFIG`], `storage = "scylla"`
/// and a `[scylla]` table with the test-server options. `None` when the variable is unset.
/// The `[scylla]` table comes last, so append nothing top-level after it.
pub fn scylla_config(keyspace: &str) -> Option<String> {
    let points = voiceflow_schema::cql::testing::contact_points_from_env()?;
    let points: Vec<String> = points.iter().map(|p| format!("{p:?}")).collect();
    Some(format!(
        "{FAST_CONFIG}storage = \"scylla\"\n\n[scylla]\ncontact_points = [{}]\n\
         keyspace = \"{keyspace}\"\nfetch_schema_metadata = false\n\
         await_schema_agreement = false\nrequest_timeout_ms = 3000\nconnect_timeout_ms = 3000\n",
        points.join(", ")
    ))
}

/// A node process.
pub struct TestNode {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

impl TestNode {
    /// A fresh node with a fresh data dir.
    pub async fn start() -> Result<TestNode> {
        Self::start_with(FAST_CONFIG).await
    }

    /// A fresh node with extra config lines.
    pub async fn start_with(config: &str) -> Result<TestNode> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut node = Self::start_in(&dir, config).await?;
        node._tmp = Some(tmp);
        Ok(node)
    }

    /// A node on an existing data dir (restart after a stop or a crash).
    pub async fn start_in(dir: &Path, config: &str) -> Result<TestNode> {
        Self::start_in_with_env(dir, config, &[]).await
    }

    /// [`Self::start_in`] with extra environment variables for the node process.
    pub async fn start_in_with_env(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
    ) -> Result<TestNode> {
        let config_path = dir.join("node.toml");
        std::fs::write(&config_path, config)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_voiceflow-node"))
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env(
                "RUST_LOG",
                std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn voiceflow-node")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            let echo = std::env::var_os("TEST_NODE_ECHO").is_some();
            // Echoed lines name their node by its address once it is known.
            let mut name = String::from("node");
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                if !sent && let Some(addr) = line.strip_prefix("VOICEFLOW_LISTENING ") {
                    name = format!("node {}", addr.trim());
                    let _ = tx.send(addr.trim().to_owned());
                    sent = true;
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await?
            .context("node did not report its address within 30 s")?;
        let node = TestNode {
            child: Some(child),
            addr: addr.parse()?,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
        };
        Ok(node)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) -> Option<tempfile::TempDir> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self._tmp.take()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            bail!("not running")
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        for _ in 0..300 {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        bail!("node did not exit within 15 s of SIGTERM")
    }

    /// Keeps the data dir alive past this handle.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    // ---- REST ----

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// Every stored message of a room (system messages too), oldest first, through the REST
    /// history pages of `limit` messages.
    pub async fn history(&self, token: &str, room: &str, limit: usize) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let path = match &before {
                Some(b) => format!("/api/v1/rooms/{room}/messages?limit={limit}&before={b}"),
                None => format!("/api/v1/rooms/{room}/messages?limit={limit}"),
            };
            let (status, page) = self.get(&path, Some(token)).await?;
            anyhow::ensure!(status == 200, "history: {status} {page}");
            let data = page["data"].as_array().cloned().unwrap_or_default();
            before = data
                .iter()
                .rev()
                .find_map(|m| m["id"].as_str().map(str::to_owned));
            all.extend(data);
            if page["hasMore"] != true {
                break;
            }
        }
        all.reverse();
        Ok(all)
    }

    /// Registers `name` (email `name@example.com`, password `password123`).
    /// Creates a room of `kind` (`voice`, `stage`) as `user`; returns its id (fails unless 201).
    pub async fn create_voice_room(&self, user: &User, name: &str, kind: &str) -> Result<String> {
        let body = json!({"name": name, "kind": kind});
        let (status, room) = self.post("/api/v1/rooms", Some(&user.token), body).await?;
        if status != 201 || room["data"]["kind"] != kind {
            bail!("creating a {kind} room: {status} {room}");
        }
        Ok(room["data"]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// The node's Prometheus `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        Ok(self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    /// An unlabelled value from the node's Prometheus `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let text = self.metrics_text().await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }

    pub async fn register(&self, name: &str) -> Result<User> {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": "password123", "confirmPassword": "password123"}),
            )
            .await?;
        if status != 201 {
            bail!("register {name}: {status} {body}");
        }
        Ok(User {
            id: body["data"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            token: body["data"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            refresh: body["data"]["refreshToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: name.to_owned(),
        })
    }

    /// Creates a room owned by `owner`; returns (id, join code).
    pub async fn create_room(
        &self,
        owner: &User,
        name: &str,
        settings: Value,
        max_users: u32,
    ) -> Result<(String, String)> {
        let (status, body) = self
            .post(
                "/api/v1/rooms",
                Some(&owner.token),
                json!({"name": name, "maxUsers": max_users, "settings": settings}),
            )
            .await?;
        if status != 201 {
            bail!("create room: {status} {body}");
        }
        Ok((
            body["data"]["id"].as_str().unwrap_or_default().to_owned(),
            body["data"]["joinCode"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    pub async fn join_code(&self, user: &User, code: &str) -> Result<(u16, Value)> {
        self.post(
            &format!("/api/v1/rooms/{code}/join"),
            Some(&user.token),
            json!({}),
        )
        .await
    }

    pub async fn ws(&self, user: &User) -> Result<WsClient> {
        WsClient::connect(self.addr, &user.token).await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
    pub refresh: String,
    pub name: String,
}

/// A WebSocket client speaking the JSON protocol.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Frames received while waiting for something else.
    pub backlog: std::collections::VecDeque<Value>,
    /// The `hello` frame.
    pub hello: Value,
}

impl WsClient {
    pub async fn connect(addr: SocketAddr, token: &str) -> Result<WsClient> {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}")).await?;
        let mut client = WsClient {
            ws,
            next_id: 0,
            backlog: Default::default(),
            hello: Value::Null,
        };
        let hello = client.next_event("hello").await?;
        client.hello = hello.clone();
        if hello["data"]["protocol"] != 1 {
            bail!("bad hello {hello}");
        }
        Ok(client)
    }

    pub async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::text(text.to_owned())).await?;
        Ok(())
    }

    /// Sends an event with an id (no waiting).
    pub async fn send(&mut self, event: &str, data: Value) -> Result<u64> {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&json!({"type": event, "id": id, "data": data}).to_string())
            .await?;
        Ok(id)
    }

    /// Sends an event and waits for its ack (other frames go to the backlog).
    pub async fn request(&mut self, event: &str, data: Value) -> Result<Value> {
        let id = self.send(event, data).await?;
        self.ack(id).await
    }

    pub async fn ack(&mut self, id: u64) -> Result<Value> {
        self.wait_for(|v| v["type"] == "ack" && v["id"] == id).await
    }

    /// The next frame of type `event` (from the backlog first).
    pub async fn next_event(&mut self, event: &str) -> Result<Value> {
        let event = event.to_owned();
        self.wait_for(move |v| v["type"] == event.as_str()).await
    }

    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(pos) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(pos).ok_or_else(|| anyhow!("backlog"));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("timed out waiting for a frame")?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str())?;
                    if pred(&v) {
                        return Ok(v);
                    }
                    self.backlog.push_back(v);
                }
                Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("ws error: {e}"),
                None => bail!("ws ended"),
            }
        }
    }

    /// The next frame (`Ok(None)`: the stream ended), or `Err(close code)` on a close frame.
    pub async fn next_frame(&mut self) -> std::result::Result<Option<Value>, Option<u16>> {
        match tokio::time::timeout(Duration::from_secs(15), self.ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => Ok(serde_json::from_str(text.as_str()).ok()),
            Ok(Some(Ok(Message::Close(frame)))) => Err(frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => Ok(Some(Value::Null)),
            Ok(Some(Err(_))) | Ok(None) | Err(_) => Ok(None),
        }
    }

    /// Reads (and so answers the server's pings) until the connection ends; for a client that
    /// should stay alive in the background: `tokio::spawn(client.keep_reading())`.
    pub async fn keep_reading(mut self) {
        while let Some(Ok(_)) = self.ws.next().await {}
    }

    /// Waits until the server closes the connection; returns the close code.
    pub async fn closed(&mut self) -> Result<Option<u16>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("timed out waiting for close")?
            {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    /// The next frame (backlog first) if one arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        match tokio::time::timeout(wait, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(text.as_str()).ok(),
            _ => None,
        }
    }

    /// Whether a frame matching `pred` arrives within `wait`.
    pub async fn sees_within(&mut self, wait: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        if self.backlog.iter().any(&pred) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = frame
                && let Ok(v) = serde_json::from_str::<Value>(text.as_str())
            {
                if pred(&v) {
                    return true;
                }
                self.backlog.push_back(v);
            }
        }
        false
    }
}
