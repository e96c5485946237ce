//! The ScyllaDB backend: the [`Store`](crate::Store) on the `scylla` driver (CQL native protocol v4).
//!
//! - [`config`]: connection settings (`[scylla]` in the node's TOML).
//! - [`migrate`]: versioned, idempotent schema migrations from `schema/cql/`, run by
//!   [`CqlStore::connect`] before anything else.
//! - `statements`: every statement, prepared once; the backend sends no unprepared data
//!   statement.
//! - `users`, `rooms`, `messages`, `tokens`, `contacts`, `communities`: one method per CQL
//!   access path (`store_impl` delegates the [`Store`](crate::Store) to them), mirroring the
//!   embedded store's behaviour (the conformance suite in `schema/tests/conformance/` runs the
//!   same tests against both).
//! - `commit`: per-room group commit of message appends.
//! - [`bridge`]: the protocol v4 ↔ v3 proxy that lets the driver reach the Cassandra 2.1 test
//!   server; [`testing`]: helpers for tests and benchmarks that use a CQL server.
//!
//! Consistency is configurable (LOCAL_QUORUM by default), every request has a client-side
//! timeout, idempotent statements are retried by the driver's default retry policy, and every
//! driver failure surfaces as [`StoreError::Unavailable`] naming the operation. A write's future
//! resolves only after the cluster acknowledged it at the configured consistency.
//!
//! Lightweight transactions are used only where uniqueness needs them: claiming a username,
//! email or join code (`INSERT … IF NOT EXISTS`), releasing or taking over such a claim, the
//! refresh-token compare-and-set, invites' uses and join requests, and bumping a room's ownership epoch when a node takes the
//! room over (storage-level fencing, see `events`).

mod audit;
mod bans;
pub mod blobs;
pub mod bridge;
mod channels;
mod codec;
mod commit;
mod communities;
pub mod config;
mod contacts;
mod events;
mod invites;
mod join_requests;
mod member_names;
mod messages;
pub mod migrate;
mod notify;
mod push;
mod read_markers;
mod rooms;
mod statements;
mod store_impl;
pub mod testing;
mod tokens;
mod users;

use std::sync::Arc;

use futures_util::TryStreamExt;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use self::codec::{Lwt, corrupt, driver_error, rows};
use self::commit::GroupCommit;
pub use self::config::{Consistency, CqlConfig, SerialConsistency};
use self::statements::Statements;
use crate::store::{StoreError, StoreResult};

/// One statement of a batch with its values.
pub(crate) type BatchEntry<'a> = (&'a PreparedStatement, Box<dyn SerializeRow + Send + Sync>);

/// The session and its prepared statements, with typed request helpers.
pub(crate) struct Cql {
    session: Session,
    st: Statements,
    ev: events::EventStatements,
    contacts: contacts::ContactStatements,
    communities: communities::CommunityStatements,
    invites: invites::InviteStatements,
    audit: audit::AuditStatements,
    bans: bans::BanStatements,
    channels: channels::ChannelStatements,
    join_requests: join_requests::JoinRequestStatements,
    member_names: member_names::MemberNameStatements,
    notify: notify::NotifyStatements,
    push: push::PushStatements,
}

impl Cql {
    /// Executes `st` and returns the raw result.
    async fn exec(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<QueryResult> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map_err(|e| driver_error(what, e))
    }

    /// Executes a write.
    async fn write(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<()> {
        self.exec(what, st, values).await.map(|_| ())
    }

    /// Executes a bounded read (a key lookup or a `LIMIT`ed slice) in one page.
    async fn select<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        rows(self.exec(what, st, values).await?, what)
    }

    /// The first row of a bounded read.
    async fn first<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        Ok(self.select(what, st, values).await?.into_iter().next())
    }

    /// Reads a whole partition, page by page (the driver's default page size).
    async fn select_all<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self
            .session
            .execute_iter(st.clone(), values)
            .await
            .map_err(|e| driver_error(what, e))?;
        pager
            .rows_stream::<R>()
            .map_err(|e| corrupt(what, e))?
            .try_collect()
            .await
            .map_err(|e| driver_error(what, e))
    }

    /// Executes a lightweight transaction.
    async fn lwt(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Lwt> {
        Lwt::parse(self.exec(what, st, values).await?, what)
    }

    /// Executes statements as one batch of `kind` (a single statement is sent on its own).
    /// A logged batch is applied entirely or, after a failure, eventually entirely (the batch
    /// log replays) or not at all; an unlogged batch is atomic and isolated only within one
    /// partition. Either way the future resolves only once the cluster acknowledged it.
    async fn batch(
        &self,
        what: &str,
        kind: BatchType,
        entries: Vec<BatchEntry<'_>>,
    ) -> StoreResult<()> {
        if entries.len() <= 1 {
            return match entries.into_iter().next() {
                Some((st, values)) => self.write(what, st, values).await,
                None => Ok(()),
            };
        }
        let mut batch = Batch::new(kind);
        let mut values = Vec::with_capacity(entries.len());
        for (st, v) in entries {
            batch.append_statement(st.clone());
            values.push(v);
        }
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, values)
            .await
            .map(|_| ())
            .map_err(|e| driver_error(what, e))
    }
}

/// The ScyllaDB [`Store`](crate::Store). Cheap to share behind an `Arc`; see the module docs.
pub struct CqlStore {
    cql: Arc<Cql>,
    commit: Arc<GroupCommit>,
    keyspace: String,
}

impl std::fmt::Debug for CqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlStore")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

impl CqlStore {
    /// Connects to the cluster, applies pending schema migrations, and prepares every
    /// statement. Fails with [`StoreError::Unavailable`] (whose message names the contact
    /// points) if no node answers within the connect timeout, authentication or TLS fails,
    /// or the schema cannot be applied; with [`StoreError::Corrupt`] if the keyspace is at a
    /// newer schema version than this binary knows.
    pub async fn connect(config: &CqlConfig) -> StoreResult<CqlStore> {
        config
            .validate()
            .map_err(|e| StoreError::Unavailable(format!("invalid CQL settings: {e}")))?;
        let mut balancing = DefaultPolicy::builder().token_aware(config.fetch_schema_metadata);
        if let Some(dc) = &config.datacenter {
            balancing = balancing.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .consistency(config.consistency.to_driver())
            .serial_consistency(Some(config.serial_consistency.to_driver()))
            .request_timeout(Some(config.request_timeout()))
            .retry_policy(Arc::new(DefaultRetryPolicy::new()))
            .load_balancing_policy(balancing.build())
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(config.connect_timeout())
            .default_execution_profile_handle(profile.into_handle())
            .fetch_schema_metadata(config.fetch_schema_metadata)
            .auto_await_schema_agreement(config.await_schema_agreement);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.user(user, password);
        }
        if config.tls {
            builder = builder.tls_context(Some(tls_context(config)?));
        }
        let contact = config.contact_points.join(", ");
        let limit = config.connect_timeout() + config.request_timeout();
        let session = tokio::time::timeout(limit, builder.build())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no CQL node at {contact} answered within {} ms",
                    limit.as_millis()
                ))
            })?
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to CQL nodes {contact}: {e}"))
            })?;
        let version = migrate::migrate(
            &session,
            &config.keyspace,
            &config.replication(),
            config.await_schema_agreement,
        )
        .await?;
        let st = Statements::prepare(&session).await?;
        let ev = events::EventStatements::prepare(&session).await?;
        let contacts = contacts::ContactStatements::prepare(&session).await?;
        let communities = communities::CommunityStatements::prepare(&session).await?;
        let invites = invites::InviteStatements::prepare(&session).await?;
        let audit = audit::AuditStatements::prepare(&session).await?;
        let bans = bans::BanStatements::prepare(&session).await?;
        let channels = channels::ChannelStatements::prepare(&session).await?;
        let join_requests = join_requests::JoinRequestStatements::prepare(&session).await?;
        let member_names = member_names::MemberNameStatements::prepare(&session).await?;
        let notify = notify::NotifyStatements::prepare(&session).await?;
        let push = push::PushStatements::prepare(&session).await?;
        tracing::info!(keyspace = %config.keyspace, version, contact_points = %contact, "CQL store ready");
        Ok(CqlStore {
            cql: Arc::new(Cql {
                session,
                st,
                ev,
                contacts,
                communities,
                invites,
                audit,
                bans,
                channels,
                join_requests,
                member_names,
                notify,
                push,
            }),
            commit: Arc::new(GroupCommit::default()),
            keyspace: config.keyspace.clone(),
        })
    }

    /// The keyspace in use.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }
}

/// A rustls client configuration trusting the CA certificates of `tls_ca_file`.
fn tls_context(config: &CqlConfig) -> StoreResult<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let path = config
        .tls_ca_file
        .as_ref()
        .ok_or_else(|| StoreError::Unavailable("scylla.tls needs scylla.tls_ca_file".into()))?;
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::Unavailable(format!("TLS CA file {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate found"));
    }
    // An explicit provider: with several rustls crypto back ends in one binary (webrtc brings
    // ring) the process-wide default cannot be chosen automatically.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unavailable(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (public part only) for the TLS set-up test.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATWgAwIBAgIUKteb+u8jilQx1GBBAULfeuKj/jkwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRdm9pY2VmbG93LXRlc3QtY2EwIBcNMjYxMTIxMTgxMjE0WhgP
MjEyNjEwMjgxODEyMTRaMBwxGjAYBgNVBAMMEXZvaWNlZmxvdy10ZXN0LWNhMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQJztJ6B5cTnmWyQIi817n5TtJ0zmuido
XC6vu11cqJ9+NAPFYv6Y4ly0P8WJeAWKPH40xO/TsG+CLIYtNS9YZ6NTMFEwHQYD
VR0OBBYEFL766fu3l4836WiuV5WtV/Xp8+lTMB8GA1UdIwQYMBaAFL766fu3l483
6WiuV5WtV/Xp8+lTMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh
AP4yZbewgHYNZ93ZCaFT0VdKMAWfAko175PDxyyCaICpAiEA5/gPxk6trZJXo9em
Jpkv51jjkIadbBS7hkoWFd/e/+s=
-----END CERTIFICATE-----
";

    fn tls_config(path: std::path::PathBuf) -> CqlConfig {
        CqlConfig {
            tls: true,
            tls_ca_file: Some(path),
            ..CqlConfig::default()
        }
    }

    #[test]
    fn tls_trusts_the_configured_ca_and_names_a_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, TEST_CA).expect("write");
        assert!(tls_context(&tls_config(good)).is_ok());

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let err = tls_context(&tls_config(junk)).expect_err("no certificate");
        assert!(err.to_string().contains("junk.pem"), "{err}");

        let missing = dir.path().join("missing.pem");
        let err = tls_context(&tls_config(missing)).expect_err("missing");
        assert!(matches!(err, StoreError::Unavailable(m) if m.contains("missing.pem")));
    }
}
