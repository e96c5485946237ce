//! Web Push: the deployment's VAPID key pair (`deployment_keys`, one row shared by every node)
//! and each user's registered devices (`push_subscriptions`).

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;

/// The deployment's VAPID key pair (RFC 8292), P-256: created once by the first node that
/// needs it ([`crate::Store::create_vapid_keys`]), read by the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapidKeyRecord {
    /// The private scalar, 32 bytes big-endian.
    pub private_key: Vec<u8>,
    /// The public key, 65 bytes uncompressed SEC1 (`0x04 ‖ x ‖ y`).
    pub public_key: Vec<u8>,
    /// When it was created (Unix ms).
    pub created_at: u64,
}

/// One device of a user: the browser's `PushSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscriptionRecord {
    /// Whose device.
    pub user_id: Snowflake,
    /// The push service URL (unique per device and application server key).
    pub endpoint: String,
    /// The device's P-256 public key, 65 bytes uncompressed.
    pub p256dh: Vec<u8>,
    /// The authentication secret, 16 bytes.
    pub auth: Vec<u8>,
    /// When it was registered (Unix ms).
    pub created_at: u64,
}
