//! Connection settings of the ScyllaDB backend, as they appear in the node's TOML under
//! `[scylla]`. Every field has a default, so `storage = "scylla"` alone connects to a local
//! single-node cluster on 127.0.0.1:9042.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Read/write consistency level of every non-serial request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of all replicas, across datacenters.
    Quorum,
    /// Every replica.
    All,
    /// A majority of the replicas in the local datacenter (the default).
    #[default]
    LocalQuorum,
    /// A majority in every datacenter.
    EachQuorum,
    /// One replica in the local datacenter.
    LocalOne,
}

impl Consistency {
    /// The driver's value.
    pub fn to_driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            Consistency::One => C::One,
            Consistency::Two => C::Two,
            Consistency::Three => C::Three,
            Consistency::Quorum => C::Quorum,
            Consistency::All => C::All,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::LocalOne => C::LocalOne,
        }
    }
}

/// Consistency of the Paxos phase of lightweight transactions (unique claims and the
/// refresh-token compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SerialConsistency {
    /// Linearizable across the whole cluster.
    Serial,
    /// Linearizable within the local datacenter (the default).
    #[default]
    LocalSerial,
}

impl SerialConsistency {
    /// The driver's value.
    pub fn to_driver(self) -> scylla::statement::SerialConsistency {
        match self {
            SerialConsistency::Serial => scylla::statement::SerialConsistency::Serial,
            SerialConsistency::LocalSerial => scylla::statement::SerialConsistency::LocalSerial,
        }
    }
}

/// How to reach and use the CQL cluster. (`Debug` leaves the password out.)
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CqlConfig {
    /// `host:port` of one or more nodes to bootstrap from; the rest are discovered.
    pub contact_points: Vec<String>,
    /// Keyspace holding every table; created (with `replication_factor`) if missing.
    pub keyspace: String,
    /// Replicas per datacenter for a newly created keyspace (3 for production clusters).
    pub replication_factor: u32,
    /// Local datacenter. When set, the keyspace uses `NetworkTopologyStrategy` with
    /// `replication_factor` replicas in it and requests prefer its nodes; when unset,
    /// `SimpleStrategy`.
    pub datacenter: Option<String>,
    /// User name for password authentication (with `password`).
    pub username: Option<String>,
    /// Password for password authentication (with `username`).
    pub password: Option<String>,
    /// Encrypt connections with TLS (rustls); needs `tls_ca_file`. The driver verifies the
    /// node certificate against the node's IP address.
    pub tls: bool,
    /// PEM file with the CA certificate(s) that signed the node certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// Consistency of reads and writes.
    pub consistency: Consistency,
    /// Consistency of lightweight transactions' Paxos phase.
    pub serial_consistency: SerialConsistency,
    /// Client-side limit of one request including its retries, milliseconds.
    pub request_timeout_ms: u64,
    /// Limit of opening one connection, milliseconds.
    pub connect_timeout_ms: u64,
    /// Wait for schema agreement after migrations change the schema (multi-node clusters).
    pub await_schema_agreement: bool,
    /// Fetch schema metadata for token-aware routing. Must be `false` against the Cassandra
    /// 2.1 test server, which has no `system_schema` keyspace.
    pub fetch_schema_metadata: bool,
}

impl std::fmt::Debug for CqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlConfig")
            .field("contact_points", &self.contact_points)
            .field("keyspace", &self.keyspace)
            .field("replication_factor", &self.replication_factor)
            .field("datacenter", &self.datacenter)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("consistency", &self.consistency)
            .field("serial_consistency", &self.serial_consistency)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("await_schema_agreement", &self.await_schema_agreement)
            .field("fetch_schema_metadata", &self.fetch_schema_metadata)
            .finish()
    }
}

impl Default for CqlConfig {
    fn default() -> Self {
        CqlConfig {
            contact_points: vec!["127.0.0.1:9042".into()],
            keyspace: "voiceflow".into(),
            replication_factor: 1,
            datacenter: None,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            request_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            await_schema_agreement: true,
            fetch_schema_metadata: true,
        }
    }
}

impl CqlConfig {
    /// Settings for the Cassandra 2.1 test server behind the v4↔v3 bridge at
    /// `contact_points`: no schema-metadata fetch and no schema-agreement wait, the rest
    /// default.
    pub fn for_test_server(contact_points: Vec<String>, keyspace: &str) -> CqlConfig {
        CqlConfig {
            contact_points,
            keyspace: keyspace.to_owned(),
            await_schema_agreement: false,
            fetch_schema_metadata: false,
            ..CqlConfig::default()
        }
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The per-connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Checks what serde cannot; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.contact_points.is_empty() {
            return Err("scylla.contact_points must name at least one host:port".into());
        }
        if let Some(bad) = self
            .contact_points
            .iter()
            .find(|p| p.trim().is_empty() || !p.contains(':'))
        {
            return Err(format!(
                "scylla.contact_points entry {bad:?} is not host:port"
            ));
        }
        if !is_identifier(&self.keyspace) {
            return Err(format!(
                "scylla.keyspace {:?} must be 1-48 of a-z, 0-9 and _, starting with a letter",
                self.keyspace
            ));
        }
        if self.replication_factor == 0 || self.replication_factor > 15 {
            return Err("scylla.replication_factor must be 1-15".into());
        }
        if let Some(dc) = &self.datacenter
            && (dc.is_empty() || dc.contains('\''))
        {
            return Err("scylla.datacenter must be a non-empty name without quotes".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("scylla.username and scylla.password go together".into());
        }
        if self.tls && self.tls_ca_file.is_none() {
            return Err("scylla.tls needs scylla.tls_ca_file".into());
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err("scylla timeouts must be positive".into());
        }
        Ok(())
    }

    /// The `replication` map of `CREATE KEYSPACE`.
    pub fn replication(&self) -> String {
        match &self.datacenter {
            Some(dc) => format!(
                "{{'class': 'NetworkTopologyStrategy', '{dc}': {}}}",
                self.replication_factor
            ),
            None => format!(
                "{{'class': 'SimpleStrategy', 'replication_factor': {}}}",
                self.replication_factor
            ),
        }
    }
}

/// A lower-case CQL identifier that needs no quoting.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 48
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_local_quorum() {
        let config = CqlConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.consistency, Consistency::LocalQuorum);
        assert_eq!(
            config.replication(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let bad = |f: fn(&mut CqlConfig)| {
            let mut config = CqlConfig::default();
            f(&mut config);
            config.validate().expect_err("invalid")
        };
        assert!(bad(|c| c.contact_points.clear()).contains("contact_points"));
        assert!(bad(|c| c.contact_points = vec!["nohost".into()]).contains("contact_points"));
        assert!(bad(|c| c.keyspace = "Bad-Name".into()).contains("keyspace"));
        assert!(bad(|c| c.keyspace = "x; DROP".into()).contains("keyspace"));
        assert!(bad(|c| c.replication_factor = 0).contains("replication_factor"));
        assert!(bad(|c| c.datacenter = Some("dc'1".into())).contains("datacenter"));
        assert!(bad(|c| c.username = Some("u".into())).contains("password"));
        assert!(bad(|c| c.tls = true).contains("tls_ca_file"));
        assert!(bad(|c| c.request_timeout_ms = 0).contains("timeouts"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = CqlConfig {
            username: Some("vf".into()),
            password: Some("hunter2".into()),
            ..CqlConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("vf") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn datacenter_selects_network_topology() {
        let config = CqlConfig {
            datacenter: Some("dc1".into()),
            replication_factor: 3,
            ..CqlConfig::default()
        };
        assert_eq!(
            config.replication(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        );
    }
}
