//! Running a case against each backend, and the record fixtures every case uses.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use voiceflow_schema::cql::testing::{
    announce_skip, contact_points_from_env, drop_keyspace, test_config,
};
use voiceflow_schema::cql::{CqlConfig, CqlStore};
pub use voiceflow_schema::fixtures::*;
use voiceflow_schema::*;

/// Where a case's stores live.
#[derive(Clone)]
enum Kind {
    /// A temporary directory for the embedded store.
    Embedded(Arc<tempfile::TempDir>),
    /// A throw-away keyspace on the CQL test server.
    Cql(CqlConfig),
}

/// A backend a case opens stores from; clones share the same data.
#[derive(Clone)]
pub struct Backend {
    kind: Kind,
}

impl Backend {
    /// Opens a store on this backend's data. Drop every handle before opening again.
    pub async fn open(&self) -> Arc<dyn Store> {
        match &self.kind {
            Kind::Embedded(dir) => {
                Arc::new(EmbeddedStore::open(dir.path()).expect("open embedded"))
            }
            Kind::Cql(config) => Arc::new(CqlStore::connect(config).await.expect("connect CQL")),
        }
    }
}

/// Runs `case` on a fresh embedded store directory.
pub async fn run_embedded<F, Fut>(case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    case(Backend {
        kind: Kind::Embedded(dir),
    })
    .await;
}

/// Runs `case` in a fresh keyspace on the CQL server of `VOICEFLOW_TEST_CQL`, dropping the
/// keyspace afterwards (also when the case fails); skips loudly when the variable is unset.
pub async fn run_cql<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(points) = contact_points_from_env() else {
        announce_skip(&format!("conformance cql::{name}"));
        return;
    };
    let config = test_config(points, "vf_conformance");
    let backend = Backend {
        kind: Kind::Cql(config.clone()),
    };
    let outcome = AssertUnwindSafe(case(backend)).catch_unwind().await;
    if let Err(e) = drop_keyspace(&config).await {
        eprintln!("could not drop keyspace {}: {e}", config.keyspace);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The ids of some messages.
pub fn ids(messages: &[MessageRecord]) -> Vec<u64> {
    messages.iter().map(|m| m.id.0).collect()
}
