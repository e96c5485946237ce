//! The `[push]` table: Web Push delivery.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Web Push (RFC 8030/8291/8292): devices registered with `POST /api/v1/push/subscriptions`
/// get a push for mentions, direct messages and calls while none of the user's sessions is
/// focused. Every node of a cluster should use the same table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Deliver pushes (the subscription endpoints work either way).
    pub enabled: bool,
    /// The VAPID `sub` claim push services may contact: `mailto:` or `https:` URL.
    pub contact: String,
    /// Most devices one user may register; more is refused with `QUOTA_EXCEEDED`.
    pub max_subscriptions_per_user: u32,
    /// Pushes waiting for delivery on a node; past it new ones are dropped (and counted).
    pub queue_size: usize,
    /// Requests to push services in flight at once, per node.
    pub concurrency: usize,
    /// Timeout of one request to a push service (connect and answer), milliseconds.
    pub request_timeout_ms: u64,
    /// Attempts per push and device (timeouts, 5xx, 429) before it is given up.
    pub max_attempts: u32,
    /// Wait before the first retry, milliseconds; doubled for each further one.
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts (also caps a 429's `Retry-After`), milliseconds.
    pub backoff_max_ms: u64,
    /// How long a push service keeps a push for an offline device (`TTL` header), seconds.
    pub ttl_secs: u64,
    /// PEM files of extra root CAs trusted for push services, besides the built-in web
    /// roots (a private push service, or tests). Default none.
    pub extra_root_cas: Vec<PathBuf>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            contact: "mailto:admin@localhost".into(),
            max_subscriptions_per_user: 10,
            queue_size: 10_000,
            concurrency: 32,
            request_timeout_ms: 10_000,
            max_attempts: 5,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60_000,
            ttl_secs: 24 * 3600,
            extra_root_cas: Vec::new(),
        }
    }
}

impl PushConfig {
    /// Timeout of one request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.contact.starts_with("mailto:") || self.contact.starts_with("https://")) {
            return Err("push.contact must be a mailto: or https: URL".into());
        }
        if self.queue_size == 0 || self.concurrency == 0 || self.max_attempts == 0 {
            return Err(
                "push.queue_size, push.concurrency and push.max_attempts must be > 0".into(),
            );
        }
        Ok(())
    }
}
