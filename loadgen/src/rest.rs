//! REST setup client: registration, room creation and REST room joins (never timed).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

/// Password used for every generated user (at least 8 characters).
const PASSWORD: &str = "loadgen-Passw0rd";

/// A `/api/v1` client.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    /// Access token (valid for 15 minutes).
    pub token: Arc<str>,
}

/// A created room.
#[derive(Clone, Debug)]
pub struct Room {
    pub id: String,
    pub join_code: String,
}

/// Renders a JSON id (decimal string or number) as a string.
fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Api {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            base: format!("{}/api/v1", base_url.trim_end_matches('/')),
        })
    }

    /// POSTs `body` and returns the envelope's `data`, or an error carrying the
    /// envelope's `error.code` / `error.message`.
    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Value> {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("POST {path}: reading body"))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            anyhow!(
                "POST {path}: HTTP {status}, body is not JSON: {}",
                truncate(&text)
            )
        })?;
        if v.get("success").and_then(Value::as_bool) == Some(true) {
            return Ok(v.get("data").cloned().unwrap_or(Value::Null));
        }
        let code = v
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let message = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        bail!("POST {path}: HTTP {status}: {code}: {message}")
    }

    /// Registers one user and returns its id and access token.
    pub async fn register(&self, username: &str, email: &str) -> Result<User> {
        let body = json!({
            "username": username,
            "email": email,
            "password": PASSWORD,
            "confirmPassword": PASSWORD,
        });
        let data = self.post("/auth/register", None, &body).await?;
        let token = data
            .get("token")
            .and_then(Value::as_str)
            .context("register reply has no data.token")?;
        let id =
            id_string(data.pointer("/user/id")).context("register reply has no data.user.id")?;
        Ok(User {
            id,
            token: token.into(),
        })
    }

    /// Creates a public room that needs no approval.
    pub async fn create_room(&self, token: &str, name: &str, max_users: usize) -> Result<Room> {
        let body = json!({
            "name": name,
            "description": "voiceflow-loadgen room",
            "maxUsers": max_users.clamp(2, 500),
            "settings": {
                "isPublic": true,
                "allowGuests": false,
                "requireApproval": false,
                "recordMessages": true,
            },
        });
        let data = self.post("/rooms", Some(token), &body).await?;
        let id = id_string(data.get("id")).context("create-room reply has no data.id")?;
        let join_code = data
            .get("joinCode")
            .and_then(Value::as_str)
            .context("create-room reply has no data.joinCode")?
            .to_owned();
        Ok(Room { id, join_code })
    }

    /// Makes the token's user a member of the room.
    pub async fn join_room(&self, token: &str, join_code: &str) -> Result<()> {
        self.post(&format!("/rooms/{join_code}/join"), Some(token), &json!({}))
            .await
            .map(drop)
    }
}

/// Registers `count` users `<run_id>_<i>`, `concurrency` at a time, in index order.
pub async fn register_many(
    api: &Api,
    run_id: &str,
    count: usize,
    concurrency: usize,
) -> Result<Vec<User>> {
    let started = Instant::now();
    eprintln!("setup: registering {count} users ({concurrency} at a time)");
    let done = AtomicUsize::new(0);
    let users: Vec<User> = stream::iter(0..count)
        .map(|i| {
            let done = &done;
            async move {
                let name = format!("{run_id}_{i}");
                let user = api
                    .register(&name, &format!("{name}@example.com"))
                    .await
                    .with_context(|| format!("registering user {name}"))?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(200) {
                    eprintln!("setup: {n}/{count} users registered");
                }
                Ok::<_, anyhow::Error>(user)
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    eprintln!(
        "setup: {count} users registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(users)
}

/// Creates one room per `(owner, name, maxUsers)`; then each owner also joins its room
/// through REST, tolerating an error there (the creator is normally already a member).
pub async fn create_rooms(
    api: &Api,
    specs: Vec<(Arc<str>, String, usize)>,
    concurrency: usize,
) -> Result<Vec<Room>> {
    let started = Instant::now();
    let count = specs.len();
    let rooms: Vec<Room> = stream::iter(specs)
        .map(|(token, name, max_users)| async move {
            let room = api
                .create_room(&token, &name, max_users)
                .await
                .with_context(|| format!("creating room {name}"))?;
            // Idempotent from our point of view: a creator is usually already a member.
            let _ = api.join_room(&token, &room.join_code).await;
            Ok::<_, anyhow::Error>(room)
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    eprintln!(
        "setup: {count} rooms created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(rooms)
}

/// Joins every `(token, joinCode)` pair through REST; the first failure aborts.
pub async fn join_many(
    api: &Api,
    joins: Vec<(Arc<str>, String)>,
    concurrency: usize,
) -> Result<()> {
    let started = Instant::now();
    let count = joins.len();
    stream::iter(joins)
        .map(|(token, code)| async move {
            api.join_room(&token, &code)
                .await
                .with_context(|| format!("joining room with code {code}"))
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "setup: {count} room memberships added in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
