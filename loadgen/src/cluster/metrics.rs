//! HTTP probes of the nodes (`GET /cluster`, `/healthz`, `/metrics`) and the CPU seconds
//! of the nodes and of this process from `/proc`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::stats::read_cpu_ticks;

pub(super) struct Http {
    client: reqwest::Client,
}

impl Http {
    pub(super) fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    async fn get_text(&self, url: &str) -> Result<String> {
        let resp = self.client.get(url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}");
        }
        Ok(text)
    }

    pub(super) async fn cluster(&self, base: &str) -> Result<Value> {
        let text = self.get_text(&format!("{base}/cluster")).await?;
        Ok(serde_json::from_str(&text)?)
    }

    pub(super) async fn healthy(&self, base: &str) -> bool {
        self.get_text(&format!("{base}/healthz")).await.is_ok()
    }

    /// Sums every sample of every metric by name (labels dropped).
    async fn metrics(&self, base: &str) -> Result<HashMap<String, f64>> {
        let text = self.get_text(&format!("{base}/metrics")).await?;
        let mut out: HashMap<String, f64> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, rest) = match (line.find('{'), line.rfind('}')) {
                (Some(a), Some(b)) if a < b => (&line[..a], &line[b + 1..]),
                _ => match line.split_once(' ') {
                    Some((n, r)) => (n, r),
                    None => continue,
                },
            };
            if let Some(v) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            {
                *out.entry(name.to_owned()).or_default() += v;
            }
        }
        Ok(out)
    }
}

/// Every node's `/metrics` (see [`Http::metrics`]), `None` where it did not answer.
pub(super) type Scrape = Vec<Option<HashMap<String, f64>>>;

pub(super) async fn scrape_all(http: &Http, urls: &[String]) -> Scrape {
    let mut out = Vec::new();
    for url in urls {
        match http.metrics(url).await {
            Ok(m) => out.push(Some(m)),
            Err(e) => {
                eprintln!("warning: GET {url}/metrics: {e:#}");
                out.push(None);
            }
        }
    }
    out
}

/// `(nodeId, state, rooms)` of each member in a `GET /cluster` answer.
pub(super) fn members(status: &Value) -> Vec<(u64, String, u64)> {
    status
        .get("members")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m.get("nodeId").and_then(Value::as_u64).unwrap_or(0),
                        m.get("state")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                        m.get("rooms").and_then(Value::as_u64).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn owners(status: &Value) -> Vec<u64> {
    status
        .get("owners")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// utime + stime of a process (`"self"` or a pid) in seconds (USER_HZ = 100).
fn cpu_secs(pid: &str) -> Option<f64> {
    read_cpu_ticks(pid).map(|ticks| ticks as f64 / 100.0)
}

/// CPU seconds used so far by the nodes (`--node-pids`) and by this process.
pub(super) struct CpuUse {
    pub(super) nodes: Vec<Option<f64>>,
    pub(super) own: Option<f64>,
}

impl CpuUse {
    pub(super) fn read(pids: &[u32]) -> Self {
        let nodes = pids.iter().map(|p| cpu_secs(&p.to_string())).collect();
        Self {
            nodes,
            own: cpu_secs("self"),
        }
    }
}
