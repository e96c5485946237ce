//! Prometheus metrics. Counters and histograms are recorded with the `metrics` macros where
//! things happen; gauges that are cheaper to read than to track (open connections, running
//! rooms) are set when `/metrics` is scraped.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use warp::reply::Response;

use crate::state::AppState;

/// Renders the process's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<PrometheusHandle>);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder once per process (tests run several nodes in one process).
    pub fn install() -> Option<Metrics> {
        HANDLE
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets(&[
                        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                    ])
                    .ok()
                    .and_then(|b| b.install_recorder().ok())
            })
            .clone()
            .map(|h| Metrics(Arc::new(h)))
    }

    /// The text exposition.
    pub fn render(&self, state: &AppState) -> Response {
        // One fact, one source: the session registry counts the WebSocket sessions, the
        // directory the running rooms. `voiceflow_connections_open` is the older name of
        // `voiceflow_sessions`, kept for a release.
        let sessions = state.ctx.sessions.len() as f64;
        metrics::gauge!("voiceflow_sessions").set(sessions);
        metrics::gauge!("voiceflow_connections_open").set(sessions);
        metrics::gauge!("voiceflow_rooms_running").set(state.ctx.directory.active_rooms() as f64);
        let text = self.0.render();
        warp::Reply::into_response(warp::reply::with_header(
            text,
            "content-type",
            "text/plain; version=0.0.4",
        ))
    }
}
