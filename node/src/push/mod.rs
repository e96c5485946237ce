//! Web Push delivery: a bounded queue per node that presence actors fill (through
//! [`PushSink`]) and workers drain: for each device of the user, the payload is encrypted per
//! RFC 8291 (aes128gcm, `web-push-native`), signed for with the deployment's VAPID key
//! ([`vapid`]) and POSTed to the device's push service over rustls, at most
//! `push.concurrency` requests at a time. Timeouts, 5xx and 429 are retried with exponential
//! backoff (a 429's `Retry-After` is honoured, capped by `backoff_max_ms`); 404 and 410 mean
//! the device is gone, and its subscription is deleted. A device gets at most one push per
//! message or call (`dedupe`), remembered for the last [`DEDUPE_KEEP`] pushes.

mod http;
pub mod vapid;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{Semaphore, mpsc};
use voiceflow_actors::push::PushSink;
use voiceflow_schema::{PushSubscriptionRecord, Store};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::push::{PushKind, PushPayload};

use crate::config::PushConfig;
pub use vapid::Vapid;

/// How many (device, message) pairs a node remembers to push each at most once.
const DEDUPE_KEEP: usize = 65_536;

/// What the front door needs of Web Push.
#[derive(Clone)]
pub struct PushService {
    /// The deployment's VAPID key pair.
    pub vapid: Arc<Vapid>,
    /// The delivery queue (`None`: `push.enabled = false`).
    pub sink: Option<Arc<Pusher>>,
}

/// Loads (or creates) the VAPID keys and, if enabled, starts the delivery workers.
pub async fn start(config: &PushConfig, store: Arc<dyn Store>) -> anyhow::Result<PushService> {
    let vapid = Arc::new(
        Vapid::load_or_create(&*store, &config.contact)
            .await
            .context("cannot load or create the VAPID keys")?,
    );
    let sink = match config.enabled {
        true => Some(Arc::new(Pusher::start(config, store, vapid.clone())?)),
        false => None,
    };
    Ok(PushService { vapid, sink })
}

/// One push for one user, as queued.
struct Job {
    user: Snowflake,
    payload: PushPayload,
    dedupe: u64,
}

/// The queue's sending side.
pub struct Pusher {
    tx: mpsc::Sender<Job>,
}

impl PushSink for Pusher {
    fn push(&self, user: Snowflake, payload: PushPayload, dedupe: u64) {
        match self.tx.try_send(Job {
            user,
            payload,
            dedupe,
        }) {
            Ok(()) => metrics::counter!("voiceflow_push_queued_total").increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("voiceflow_push_dropped_total", "reason" => "queue_full")
                    .increment(1);
                tracing::warn!(%user, "push queue full: push dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// What the workers share.
struct Worker {
    config: PushConfig,
    store: Arc<dyn Store>,
    vapid: Arc<Vapid>,
    tls: Arc<rustls::ClientConfig>,
    slots: Semaphore,
    sent: parking_lot::Mutex<Recent>,
}

/// The (device, message) pairs pushed lately, oldest first.
#[derive(Default)]
struct Recent {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Recent {
    /// Whether `key` is new (and now remembered).
    fn first_time(&mut self, key: (String, u64)) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == DEDUPE_KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

impl Pusher {
    fn start(
        config: &PushConfig,
        store: Arc<dyn Store>,
        vapid: Arc<Vapid>,
    ) -> anyhow::Result<Pusher> {
        let (tx, mut rx) = mpsc::channel::<Job>(config.queue_size.max(1));
        let worker = Arc::new(Worker {
            tls: tls(config)?,
            slots: Semaphore::new(config.concurrency.max(1)),
            config: config.clone(),
            store,
            vapid,
            sent: Default::default(),
        });
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let worker = worker.clone();
                tokio::spawn(async move { worker.fan_out(job).await });
            }
        });
        Ok(Pusher { tx })
    }
}

/// TLS for push services: rustls with the web's roots and `extra_root_cas`.
fn tls(config: &PushConfig) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in &config.extra_root_cas {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read push.extra_root_cas {}", path.display()))?;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("bad certificate in {}", path.display()))?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "no certificate in {}", path.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// How one attempt ended.
enum Attempt {
    /// Accepted by the push service.
    Sent,
    /// The device is gone (404/410).
    Gone,
    /// Try again after this long.
    Retry(Duration),
    /// Refused for good (another 4xx, or the payload cannot be encrypted).
    Failed(String),
}

impl Worker {
    /// Sends `job` to each of the user's devices that did not get it yet.
    async fn fan_out(self: Arc<Self>, job: Job) {
        let devices = match self.store.push_subscriptions(job.user).await {
            Ok(devices) => devices,
            Err(e) => {
                tracing::warn!(user = %job.user, error = %e, "push devices not read");
                return;
            }
        };
        let body = match serde_json::to_vec(&job.payload) {
            Ok(body) => Arc::new(body),
            Err(e) => {
                tracing::warn!(error = %e, "push payload not encoded");
                return;
            }
        };
        for device in devices {
            if !self
                .sent
                .lock()
                .first_time((device.endpoint.clone(), job.dedupe))
            {
                metrics::counter!("voiceflow_push_dropped_total", "reason" => "duplicate")
                    .increment(1);
                continue;
            }
            let worker = self.clone();
            let (body, kind) = (body.clone(), job.payload.kind);
            tokio::spawn(async move { worker.deliver(device, &body, kind).await });
        }
    }

    /// Delivers to one device, retrying as the push service allows.
    async fn deliver(&self, device: PushSubscriptionRecord, body: &[u8], kind: PushKind) {
        let mut backoff = Duration::from_millis(self.config.backoff_initial_ms);
        let max_wait = Duration::from_millis(self.config.backoff_max_ms);
        for attempt in 1..=self.config.max_attempts {
            let outcome = {
                let Ok(_slot) = self.slots.acquire().await else {
                    return;
                };
                self.attempt(&device, body, kind, backoff).await
            };
            let wait = match outcome {
                Attempt::Sent => {
                    metrics::counter!("voiceflow_push_sent_total").increment(1);
                    return;
                }
                Attempt::Gone => {
                    metrics::counter!("voiceflow_push_gone_total").increment(1);
                    if let Err(e) = self
                        .store
                        .delete_push_subscription(device.user_id, &device.endpoint)
                        .await
                    {
                        tracing::warn!(error = %e, "expired push device not deleted");
                    }
                    return;
                }
                Attempt::Failed(why) => {
                    metrics::counter!("voiceflow_push_failed_total").increment(1);
                    tracing::info!(user = %device.user_id, %why, "push refused");
                    return;
                }
                Attempt::Retry(wait) => wait.min(max_wait),
            };
            if attempt == self.config.max_attempts {
                break;
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(max_wait);
        }
        metrics::counter!("voiceflow_push_failed_total").increment(1);
        tracing::info!(user = %device.user_id, "push given up after retries");
    }

    /// One request; `backoff` is the wait a retryable failure without `Retry-After` gets.
    async fn attempt(
        &self,
        device: &PushSubscriptionRecord,
        body: &[u8],
        kind: PushKind,
        backoff: Duration,
    ) -> Attempt {
        let endpoint = match http::Endpoint::parse(&device.endpoint) {
            Ok(endpoint) => endpoint,
            Err(e) => return Attempt::Failed(format!("endpoint: {e:#}")),
        };
        let key = p256::PublicKey::from_sec1_bytes(&device.p256dh);
        let (Ok(key), true) = (key, device.auth.len() == 16) else {
            return Attempt::Failed("stored keys are not a P-256 key and a 16-byte secret".into());
        };
        let auth = web_push_native::Auth::clone_from_slice(&device.auth);
        let encrypted = match web_push_native::encrypt(body.to_vec(), &key, &auth) {
            Ok(encrypted) => encrypted,
            Err(e) => return Attempt::Failed(format!("encryption: {e}")),
        };
        let authorization = match self.vapid.authorization(&endpoint.origin()) {
            Ok(header) => header,
            Err(e) => return Attempt::Failed(format!("{e:#}")),
        };
        let urgency = match kind {
            PushKind::Call => "high",
            PushKind::Mention | PushKind::Dm => "normal",
        };
        let headers = [
            ("ttl", self.config.ttl_secs.to_string()),
            ("urgency", urgency.to_owned()),
            ("content-encoding", "aes128gcm".to_owned()),
            ("content-type", "application/octet-stream".to_owned()),
            ("content-length", encrypted.len().to_string()),
            ("authorization", authorization),
        ];
        let timeout = self.config.request_timeout();
        let answer = match http::post(&self.tls, &endpoint, &headers, encrypted, timeout).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(error = %e, "push request failed");
                return Attempt::Retry(backoff);
            }
        };
        match answer.status {
            200..=299 => Attempt::Sent,
            404 | 410 => Attempt::Gone,
            429 => Attempt::Retry(answer.retry_after.map_or(backoff, Duration::from_secs)),
            500..=599 => Attempt::Retry(backoff),
            status => Attempt::Failed(format!("push service answered {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_pairs_are_pushed_once_and_the_oldest_are_forgotten() {
        let mut recent = Recent::default();
        assert!(recent.first_time(("a".into(), 1)));
        assert!(!recent.first_time(("a".into(), 1)));
        assert!(recent.first_time(("b".into(), 1)));
        for i in 0..DEDUPE_KEEP as u64 {
            recent.first_time(("c".into(), i + 10));
        }
        assert_eq!(recent.order.len(), DEDUPE_KEEP);
        assert!(
            recent.first_time(("a".into(), 1)),
            "forgotten after DEDUPE_KEEP"
        );
    }
}
