//! A cluster of real `voiceflow-node` processes on 127.0.0.1 sharing one CQL keyspace, with
//! certificates from `voiceflow-node certs`. Nodes are killed and the keyspace dropped when
//! the cluster drops.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use voiceflow_schema::cql::CqlConfig;
use voiceflow_schema::cql::testing::{contact_points_from_env, drop_keyspace, random_keyspace};

use super::{TestNode, scylla_config};

/// Runs `voiceflow-node certs` into `dir` for `nodes`.
pub fn make_certs(dir: &Path, nodes: &[u16]) -> Result<()> {
    let list: Vec<String> = nodes.iter().map(u16::to_string).collect();
    let status = Command::new(env!("CARGO_BIN_EXE_voiceflow-node"))
        .arg("certs")
        .arg("--dir")
        .arg(dir)
        .arg("--nodes")
        .arg(list.join(","))
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "voiceflow-node certs failed");
    Ok(())
}

/// A free UDP port on loopback (for a node's QUIC endpoint).
fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A cluster under test.
pub struct TestCluster {
    pub nodes: Vec<Option<TestNode>>,
    /// QUIC address of node i+1.
    pub quic: Vec<SocketAddr>,
    pub tmp: tempfile::TempDir,
    keyspace: String,
    points: Vec<String>,
    /// Extra lines for the `[cluster]` table of every node started from now on.
    pub cluster_extra: String,
    /// Extra top-level lines (dotted keys such as `push.contact = …`) of every node started
    /// from now on; they come first in the file, before any table.
    pub top_extra: String,
    /// CQL contact points of particular nodes (by id) instead of the test server's.
    pub contact_points: std::collections::HashMap<usize, SocketAddr>,
}

impl TestCluster {
    /// `n` nodes (ids 1..=n), started one after the other; returns once every node sees all
    /// of them up. `None` (after the skip notice) without a CQL server.
    pub async fn start(n: usize, test: &str) -> Result<Option<TestCluster>> {
        Self::start_with(n, test, "").await
    }

    /// Like [`Self::start`], with extra `[cluster]` lines (e.g. `fault_injection = true`).
    pub async fn start_with(
        n: usize,
        test: &str,
        cluster_extra: &str,
    ) -> Result<Option<TestCluster>> {
        Self::start_configured(n, test, cluster_extra, "").await
    }

    /// Like [`Self::start_with`], with extra top-level lines too (see [`Self::top_extra`]).
    pub async fn start_configured(
        n: usize,
        test: &str,
        cluster_extra: &str,
        top_extra: &str,
    ) -> Result<Option<TestCluster>> {
        let Some(points) = contact_points_from_env() else {
            voiceflow_schema::cql::testing::announce_skip(test);
            return Ok(None);
        };
        let tmp = tempfile::tempdir()?;
        make_certs(&tmp.path().join("certs"), &[1, 2, 3, 4, 5, 6, 7, 8])?;
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            quic: Vec::new(),
            tmp,
            keyspace: random_keyspace("vf_cluster"),
            points,
            cluster_extra: cluster_extra.to_owned(),
            top_extra: top_extra.to_owned(),
            contact_points: Default::default(),
        };
        for _ in 0..n {
            cluster.add().await?;
        }
        cluster.wait_converged(Duration::from_secs(15)).await?;
        Ok(Some(cluster))
    }

    /// The config of node `id` with `certs` as its certificate directory.
    pub fn config(&self, id: usize, certs: &Path, seeds: &[SocketAddr]) -> Result<String> {
        let mut base = scylla_config(&self.keyspace).context("no CQL server")?;
        if let Some(point) = self.contact_points.get(&id) {
            base = base
                .lines()
                .map(|l| match l.starts_with("contact_points =") {
                    true => format!("contact_points = [\"{point}\"]"),
                    false => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
        let quic = self.quic[id - 1];
        Ok(format!(
            "{}node_id = {id}\njwt_secret = \"cluster-test-secret-0123456789\"\n{base}\n\
             [cluster]\nenabled = true\nlisten = \"{quic}\"\nseeds = [{}]\n\
             ca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}\n",
            self.top_extra,
            seeds.join(", "),
            certs.join("ca.pem").display(),
            certs.join(format!("node-{id}.pem")).display(),
            certs.join(format!("node-{id}.key")).display(),
            self.cluster_extra,
        ))
    }

    /// Starts one more node seeded with the live ones; returns its index (1-based id).
    pub async fn add(&mut self) -> Result<usize> {
        let id = self.nodes.len() + 1;
        self.quic
            .push(SocketAddr::from(([127, 0, 0, 1], free_udp_port()?)));
        let seeds = self.live_quic();
        let certs = self.tmp.path().join("certs");
        let config = self.config(id, &certs, &seeds)?;
        let dir = self.node_dir(id)?;
        let node = TestNode::start_in(&dir, &config).await?;
        self.nodes.push(Some(node));
        Ok(id)
    }

    /// Starts node `id` again (after a kill or a drain) in its directory, seeded with the
    /// live nodes.
    pub async fn restart(&mut self, id: usize) -> Result<()> {
        anyhow::ensure!(self.nodes[id - 1].is_none(), "node {id} is running");
        let seeds = self.live_quic();
        let certs = self.tmp.path().join("certs");
        let config = self.config(id, &certs, &seeds)?;
        let dir = self.node_dir(id)?;
        self.nodes[id - 1] = Some(TestNode::start_in(&dir, &config).await?);
        Ok(())
    }

    fn node_dir(&self, id: usize) -> Result<PathBuf> {
        let dir = self.tmp.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn live_quic(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .zip(&self.quic)
            .filter(|(n, _)| n.is_some())
            .map(|(_, q)| *q)
            .collect()
    }

    /// Node `id` (1-based), if running.
    pub fn node(&self, id: usize) -> &TestNode {
        self.nodes[id - 1].as_ref().expect("node is running")
    }

    /// HTTP addresses of the running nodes.
    pub fn live_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().flatten().map(|n| n.addr).collect()
    }

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut node) = self.nodes[id - 1].take() {
            node.kill9();
        }
    }

    /// SIGTERM node `id` (it drains) and wait for it to exit.
    pub fn drain(&mut self, id: usize) -> Result<Option<i32>> {
        match self.nodes[id - 1].take() {
            Some(mut node) => node.terminate(),
            None => bail!("node {id} is not running"),
        }
    }

    /// Cuts node `id` off from `peers` (fault injection; an empty list heals).
    pub async fn block(&self, id: usize, peers: &[usize]) -> Result<()> {
        let (code, body) = self
            .node(id)
            .post(
                "/cluster/faults",
                None,
                serde_json::json!({ "block": peers }),
            )
            .await?;
        anyhow::ensure!(code == 200, "POST /cluster/faults: {code} {body}");
        Ok(())
    }

    /// Node `id` stops hearing `peers` while they still hear it (a one-way cut; fault
    /// injection; an empty list heals).
    pub async fn deaf(&self, id: usize, peers: &[usize]) -> Result<()> {
        let (code, body) = self
            .node(id)
            .post(
                "/cluster/faults",
                None,
                serde_json::json!({ "block": [], "deaf": peers }),
            )
            .await?;
        anyhow::ensure!(code == 200, "POST /cluster/faults: {code} {body}");
        Ok(())
    }

    /// `GET /cluster` of node `id`.
    pub async fn status(&self, id: usize) -> Result<Value> {
        let (code, body) = self.node(id).get("/cluster", None).await?;
        anyhow::ensure!(code == 200, "GET /cluster: {code} {body}");
        Ok(body)
    }

    /// Waits until every running node sees exactly the running nodes up.
    pub async fn wait_converged(&self, within: Duration) -> Result<Duration> {
        let live: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_some())
            .map(|(i, _)| i + 1)
            .collect();
        self.wait_owners(&live, &live, within).await
    }

    /// Waits until each node of `asked` sees exactly `owners` as the room owners.
    pub async fn wait_owners(
        &self,
        asked: &[usize],
        owners: &[usize],
        within: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        let want: Vec<u64> = owners.iter().map(|i| *i as u64).collect();
        loop {
            let mut agreed = true;
            for i in asked.iter().map(|i| i - 1) {
                let status = self.status(i + 1).await?;
                let owners: Vec<u64> = status["owners"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                agreed &= owners == want;
            }
            if agreed {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                bail!("cluster did not converge on {want:?} within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.kill9();
        }
        let config = CqlConfig::for_test_server(self.points.clone(), &self.keyspace);
        // Best effort, on a runtime of its own (drop may run inside or outside one).
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Runtime::new() {
                let _ = rt.block_on(drop_keyspace(&config));
            }
        })
        .join();
    }
}
