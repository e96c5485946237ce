//! Helpers for tests of the front door itself: a node started with extra flags whose stderr
//! is kept (to look for panics), raw HTTP/1.1 exchanges over TCP or TLS, and a rustls client
//! that trusts a given certificate.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::TestNode;

/// A node started by [`start_node`], with what it printed.
pub struct Started {
    pub node: TestNode,
    /// Everything the node wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// The `VOICEFLOW_TLS_FINGERPRINT` it printed, if TLS is on.
    pub fingerprint: Option<String>,
    /// The plain-HTTP redirect listener, if configured.
    pub redirect: Option<SocketAddr>,
}

/// Starts a node in `dir` with `config` and extra command-line `args`, keeping its stderr.
pub async fn start_node(dir: &Path, config: &str, args: &[&str]) -> Result<Started> {
    start_node_with(dir, config, args, &[], None).await
}

/// [`start_node`] with environment variables `envs`, under `prlimit --nofile=<n>:<n>` when
/// `nofile` is given.
pub async fn start_node_with(
    dir: &Path,
    config: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    nofile: Option<u64>,
) -> Result<Started> {
    let config_path = dir.join("node.toml");
    std::fs::write(&config_path, config)?;
    let bin = env!("CARGO_BIN_EXE_voiceflow-node");
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command
        .arg("--config")
        .arg(&config_path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("RUST_BACKTRACE", "1")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn voiceflow-node")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let stderr_pipe = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr_pipe);
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&chunk[..n]);
            if std::env::var_os("TEST_NODE_ECHO").is_some() {
                eprint!("{text}");
            }
            sink.lock().push_str(&text);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut fingerprint = None;
        let mut redirect = None;
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(fp) = line.strip_prefix("VOICEFLOW_TLS_FINGERPRINT SHA256 ") {
                fingerprint = Some(fp.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("VOICEFLOW_REDIRECT_LISTENING ") {
                redirect = addr.trim().parse::<SocketAddr>().ok();
            }
            if !sent && let Some(addr) = line.strip_prefix("VOICEFLOW_LISTENING ") {
                let _ = tx.send((addr.trim().to_owned(), fingerprint.clone(), redirect));
                sent = true;
            }
        }
    });
    let (addr, fingerprint, redirect) =
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await?
            .with_context(|| {
                format!(
                    "node did not report its address within 30 s; stderr: {}",
                    stderr.lock()
                )
            })?;
    let node = TestNode {
        child: Some(child),
        addr: addr.parse()?,
        data_dir: dir.to_path_buf(),
        _tmp: None,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?,
    };
    Ok(Started {
        node,
        stderr,
        fingerprint,
        redirect,
    })
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x: another client).
pub async fn connect_from(from: IpAddr, addr: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    Ok(socket.connect(addr).await?)
}

/// Reads until the peer closes (or `wait` passes: `Err`); returns what arrived. A reset
/// counts as a close.
pub async fn read_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    wait: Duration,
) -> Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => bail!(
                "still open after {wait:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` (raw bytes) and reads one response head and its `Content-Length` body.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> Result<(u16, String, String)> {
    stream.write_all(request).await?;
    read_response(stream).await
}

/// Reads one response: (status, head, body). Needs a `Content-Length` or a close.
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(u16, String, String)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = find(&got, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("no status in {head:?}"))?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while got.len() < end + 4 + length {
                let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                    .await
                    .context("timed out reading a body")??;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let body_end = (end + 4 + length).min(got.len());
            let body = String::from_utf8_lossy(&got[end + 4..body_end]).to_string();
            return Ok((status, head, body));
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .context("timed out reading a response head")??;
        if n == 0 {
            bail!(
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        got.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A GET of `path` with `Host: host` on a keep-alive connection.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// A JSON request that closes the connection after its response.
pub fn json_request(
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: &Value,
) -> Vec<u8> {
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A rustls client config trusting exactly the PEM certificates in `pems`.
pub fn client_config(pems: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pems {
        for cert in CertificateDer::pem_file_iter(pem)? {
            roots.add(cert?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection verifies the certificate (a resumed session would not show it).
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A TLS connection to `addr` verified as `name`.
pub async fn tls_connect(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = ServerName::try_from(name.to_owned())?;
    Ok(connector.connect(name, tcp).await?)
}

/// The DER of the certificate the server presented on `stream`.
pub fn server_cert(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
}

/// SHA-256 of `der` as `AB:CD:…` (what the node prints).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let hash = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|s| s.common.hash_provider.hash(der));
    hash.map(|h| {
        h.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .unwrap_or_default()
}

/// A WebSocket over TLS speaking the JSON protocol (the plain [`super::WsClient`] is ws://).
pub struct WssClient {
    pub ws: WebSocketStream<TlsStream<TcpStream>>,
    next_id: u64,
    pub backlog: std::collections::VecDeque<Value>,
}

impl WssClient {
    /// Opens `wss://<name>:<port>/ws?token=…` and waits for `hello`.
    pub async fn connect(
        config: &Arc<rustls::ClientConfig>,
        addr: SocketAddr,
        name: &str,
        token: &str,
    ) -> Result<WssClient> {
        let tls = tls_connect(config, addr, name).await?;
        let url = format!("wss://{name}:{}/ws?token={token}", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls).await?;
        let mut client = WssClient {
            ws,
            next_id: 0,
            backlog: Default::default(),
        };
        client.wait_for(|v| v["type"] == "hello").await?;
        Ok(client)
    }

    /// The certificate this connection was made with.
    pub fn server_cert(&self) -> Option<Vec<u8>> {
        server_cert(self.ws.get_ref())
    }

    /// Sends an event and waits for its ack.
    pub async fn request(&mut self, event: &str, data: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let frame = serde_json::json!({"type": event, "id": id, "data": data}).to_string();
        self.ws.send(Message::text(frame)).await?;
        self.wait_for(move |v| v["type"] == "ack" && v["id"] == id)
            .await
    }

    /// The next frame matching `pred` (backlog first).
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
}
