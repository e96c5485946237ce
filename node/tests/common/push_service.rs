//! A push service for tests: an HTTPS endpoint (rustls, a self-signed certificate the node is
//! told to trust with `push.extra_root_cas`) that receives Web Push requests as a browser's
//! push service would, and a device (a P-256 key pair and an auth secret made here) that
//! checks the VAPID JWT against the deployment's public key and decrypts the payload with its
//! private key, as a browser does. What each device's endpoint answers is scripted.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use voiceflow_wire::v1::push::{decode_base64url, encode_base64url};

/// What each path answers next: status and extra headers, in order.
type Script = Arc<Mutex<HashMap<String, VecDeque<Answer>>>>;
/// A status and extra headers.
type Answer = (u16, Vec<(String, String)>);

/// One request the service received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path (`/push/<device>`).
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// The encrypted body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// The running service.
pub struct PushService {
    /// `https://localhost:<port>`.
    pub origin: String,
    /// The PEM file of its certificate (for `push.extra_root_cas`).
    pub ca_file: PathBuf,
    /// Scripted answers per path (status, extra headers); a path without one gets 201.
    script: Script,
    rx: mpsc::UnboundedReceiver<Received>,
    _dir: tempfile::TempDir,
}

impl PushService {
    /// Starts it on 127.0.0.1 (named `localhost` in its certificate).
    pub async fn start() -> Result<PushService> {
        let dir = tempfile::tempdir()?;
        let pair = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&pair)?;
        let ca_file = dir.path().join("push-ca.pem");
        std::fs::write(&ca_file, cert.pem())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(pair.serialize_der())
            .map_err(|e| anyhow!("key: {e}"))?;
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("https://localhost:{}", listener.local_addr()?.port());
        let (tx, rx) = mpsc::unbounded_channel();
        let script: Script = Default::default();
        let answers = script.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, tx, answers) = (acceptor.clone(), tx.clone(), answers.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, tx, answers).await;
                    }
                });
            }
        });
        Ok(PushService {
            origin,
            ca_file,
            script,
            rx,
            _dir: dir,
        })
    }

    /// Config lines (dotted, top-level) that make a node trust this service and retry fast.
    pub fn config(&self) -> String {
        format!(
            "push.extra_root_cas = [{:?}]\npush.backoff_initial_ms = 200\n\
             push.backoff_max_ms = 5000\npush.max_subscriptions_per_user = 2\n\
             push.contact = \"mailto:ops@voiceflow.test\"\n",
            self.ca_file
        )
    }

    /// The next answers of `path`, in order.
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        if let Ok(mut script) = self.script.lock() {
            script.entry(path.to_owned()).or_default().extend(answers);
        }
    }

    /// The next request (any path), within 15 s.
    pub async fn next(&mut self) -> Result<Received> {
        tokio::time::timeout(std::time::Duration::from_secs(15), self.rx.recv())
            .await
            .context("no push request within 15 s")?
            .ok_or_else(|| anyhow!("push service stopped"))
    }

    /// A request arriving within `wait`, if any (to assert that none does).
    pub async fn within(&mut self, wait: std::time::Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Reads one HTTP/1.1 request, answers it as scripted and closes the connection.
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    tx: mpsc::UnboundedSender<Received>,
    answers: Script,
) -> Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; len - body.len()];
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    let (status, extra) = answers
        .lock()
        .ok()
        .and_then(|mut a| a.get_mut(&path).and_then(VecDeque::pop_front))
        .unwrap_or((201, Vec::new()));
    let _ = tx.send(Received {
        path,
        headers,
        body,
        at: Instant::now(),
    });
    let mut response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n");
    for (k, v) in extra {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// A browser's push subscription: its key pair and auth secret, and its endpoint.
pub struct Device {
    /// The endpoint URL.
    pub endpoint: String,
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Device {
    /// A device whose endpoint is `<origin>/push/<name>`.
    pub fn new(service: &PushService, name: &str) -> Device {
        let secret = loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        rand::rng().fill_bytes(&mut auth);
        Device {
            endpoint: format!("{}/push/{name}", service.origin),
            secret,
            auth,
        }
    }

    /// The path of its endpoint.
    pub fn path(&self) -> String {
        self.endpoint
            .split_once("localhost:")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, p)| format!("/{p}"))
            .unwrap_or_default()
    }

    /// `PushSubscription.toJSON()`.
    pub fn subscription(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": encode_base64url(&self.secret.public_key().to_sec1_bytes()),
                "auth": encode_base64url(&self.auth),
            }
        })
    }

    /// Checks a request as a push service and a browser would: the VAPID JWT (ES256, signed
    /// with the deployment's key `vapid_key`, audience the service's origin, not expired,
    /// `sub` the configured contact), the headers, and the payload decrypted with this
    /// device's private key. Returns the payload.
    pub fn open(&self, req: &Received, vapid_key: &str, origin: &str) -> Result<Value> {
        ensure!(
            req.path == self.path(),
            "for {} not {}",
            req.path,
            self.path()
        );
        let authz = req
            .headers
            .get("authorization")
            .context("no Authorization")?;
        let rest = authz
            .strip_prefix("vapid t=")
            .context("not a vapid scheme")?;
        let (jwt, k) = rest.split_once(", k=").context("no k=")?;
        ensure!(k == vapid_key, "k= is not the deployment's key");
        let public = decode_base64url(vapid_key).context("key not base64url")?;
        ensure!(
            public.len() == 65 && public[0] == 4,
            "not an uncompressed P-256 key"
        );
        let decoding = DecodingKey::from_ec_components(
            &encode_base64url(&public[1..33]),
            &encode_base64url(&public[33..65]),
        )?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[origin]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &decoding, &validation)
            .context("VAPID JWT does not verify")?
            .claims;
        ensure!(
            claims["sub"] == "mailto:ops@voiceflow.test",
            "sub: {claims}"
        );
        let exp = claims["exp"].as_u64().unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        ensure!(
            exp > now && exp <= now + 24 * 3600,
            "exp {exp} not within 24 h"
        );
        ensure!(
            req.headers.get("content-encoding").map(String::as_str) == Some("aes128gcm"),
            "content-encoding"
        );
        ensure!(req.headers.contains_key("ttl"), "no TTL");
        ensure!(req.headers.contains_key("urgency"), "no Urgency");
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(req.body.clone(), &self.secret, &auth)
            .map_err(|e| anyhow!("cannot decrypt: {e}"))?;
        Ok(serde_json::from_slice(&plain)?)
    }
}
