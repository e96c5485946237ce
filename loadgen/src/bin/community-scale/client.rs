//! The node under test: its process (started on the seeded data dir, its RSS read from
//! `/proc`), REST calls as a user, and a WebSocket client that waits for acks.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running node.
pub struct Node {
    child: Child,
    pub addr: String,
    pub http: reqwest::Client,
}

impl Node {
    /// Starts `bin` on `dir` (config `dir/node.toml`, data `dir/data`) and waits until it
    /// reports its address.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Node> {
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            "limits.rate_limits = false\npassword_hash_memory_kib = 1024\n\
             password_hash_iterations = 1\n",
        )?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env(
                "RUST_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("VOICEFLOW_LISTENING ") {
                    return Ok::<_, anyhow::Error>(addr.trim().to_owned());
                }
            }
            bail!("node exited before listening")
        })
        .await
        .context("node did not listen within 120 s")??;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Node {
            child,
            addr,
            http: reqwest::Client::new(),
        })
    }

    /// The node's resident set in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        let pid = self.child.id().ok_or_else(|| anyhow!("node exited"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS"))?;
        Ok(kib / 1024.0)
    }

    /// The node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str) -> Result<String> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": email, "password": crate::seed::PASSWORD})),
            )
            .await?;
        anyhow::ensure!(status == 200, "login {email}: {status} {body}");
        body["data"]["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token: {body}"))
    }

    /// `method /api/v1{path}`; the status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("http://{}/api/v1{path}", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// The sum of a Prometheus counter over its labels.
    pub async fn counter(&self, name: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// A WebSocket session.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Ws {
    /// Connects as the holder of `token`.
    pub async fn connect(addr: &str, token: &str) -> Result<Ws> {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}")).await?;
        Ok(Ws { stream, next_id: 1 })
    }

    /// Sends `event` and waits for its ack: `Ok(data)` or `Err(error code)`.
    pub async fn request(&mut self, event: &str, data: Value) -> Result<Result<Value, String>> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"type": event, "id": id, "data": data}).to_string();
        self.stream.send(Message::text(frame)).await?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(60), self.stream.next())
                .await
                .context("no ack within 60 s")?;
            let Some(message) = next else {
                bail!("socket closed");
            };
            let text = match message? {
                Message::Text(text) => text,
                Message::Close(frame) => bail!("closed by the node: {frame:?}"),
                _ => continue,
            };
            let frame: Value = serde_json::from_str(&text)?;
            if frame["type"] == "ack" && frame["id"] == id {
                return Ok(match frame["ok"].as_bool() {
                    Some(true) => Ok(frame["data"].clone()),
                    _ => Err(frame["error"]["code"]
                        .as_str()
                        .unwrap_or("UNKNOWN")
                        .to_owned()),
                });
            }
        }
    }
}
