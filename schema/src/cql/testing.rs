//! Support for tests and benchmarks that use a CQL server: where it is (the
//! `VOICEFLOW_TEST_CQL` environment variable), throw-away keyspaces, and dropping them.
//!
//! `VOICEFLOW_TEST_CQL` holds comma-separated `host:port` contact points, e.g.
//! `127.0.0.1:19042` (the bridge in front of the Cassandra 2.1 test server started by
//! `scripts/cassandra start`). Tests that need a CQL server skip, saying so loudly on stderr,
//! only when it is unset.

use std::time::Duration;

use rand::Rng;
use scylla::client::session_builder::SessionBuilder;

use super::codec::driver_error;
use super::config::CqlConfig;
use super::migrate::schema_change;
use crate::store::{StoreError, StoreResult};

/// The environment variable naming the test server's contact points.
pub const TEST_CQL_ENV: &str = "VOICEFLOW_TEST_CQL";

/// The contact points in [`TEST_CQL_ENV`], if set and non-empty.
pub fn contact_points_from_env() -> Option<Vec<String>> {
    let raw = std::env::var(TEST_CQL_ENV).ok()?;
    let points: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    (!points.is_empty()).then_some(points)
}

/// Prints the loud notice of a test skipped for want of a CQL server. It goes straight to
/// the process's stderr, past the test harness's output capture, so it shows in a plain
/// `cargo test` run although the skipped test passes.
pub fn announce_skip(test: &str) {
    loud(&format!(
        "*** SKIPPED {test}: {TEST_CQL_ENV} is not set, so the CQL backend was NOT tested. \
         Start a server with `scripts/cassandra start` and export {TEST_CQL_ENV}=127.0.0.1:19042. ***"
    ));
}

/// Writes `line` to the process's stderr, bypassing the test harness's capture.
pub fn loud(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    // Nothing useful can be done if stderr is gone.
    let _ = writeln!(stderr, "{line}");
}

/// A fresh keyspace name, `{prefix}_` and 16 random hex digits.
pub fn random_keyspace(prefix: &str) -> String {
    let suffix: u64 = rand::rng().random();
    format!("{prefix}_{suffix:016x}")
}

/// Settings for a throw-away keyspace on the test server in [`TEST_CQL_ENV`].
pub fn test_config(contact_points: Vec<String>, prefix: &str) -> CqlConfig {
    CqlConfig::for_test_server(contact_points, &random_keyspace(prefix))
}

/// Drops `config.keyspace` (if it exists) through a short-lived session.
pub async fn drop_keyspace(config: &CqlConfig) -> StoreResult<()> {
    config.validate().map_err(StoreError::Unavailable)?;
    let session = tokio::time::timeout(
        config.connect_timeout() + Duration::from_secs(5),
        SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(config.connect_timeout())
            .fetch_schema_metadata(config.fetch_schema_metadata)
            .auto_await_schema_agreement(config.await_schema_agreement)
            .build(),
    )
    .await
    .map_err(|_| StoreError::Unavailable("connect for DROP KEYSPACE timed out".into()))?
    .map_err(|e| driver_error("connect for DROP KEYSPACE", e))?;
    schema_change(
        &session,
        format!("DROP KEYSPACE IF EXISTS {}", config.keyspace),
    )
    .await
}
