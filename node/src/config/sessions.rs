//! The `[sessions]` table: how tokens and the connections opened with them are checked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Token checks and the refresh grace window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Clock skew allowed when checking a token's `exp` and `nbf`, seconds.
    pub token_leeway_secs: u64,
    /// A refresh token presented again this soon after it was exchanged (several tabs
    /// refreshing at once) gets the same successor instead of revoking the sign-in as reuse,
    /// ms; 0 turns the window off.
    pub refresh_grace_ms: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            token_leeway_secs: 5,
            refresh_grace_ms: 5_000,
        }
    }
}

impl SessionsConfig {
    /// The refresh grace window.
    pub fn refresh_grace(&self) -> Duration {
        Duration::from_millis(self.refresh_grace_ms)
    }

    /// Rejects settings that would defeat the checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.token_leeway_secs > 300 {
            return Err("sessions.token_leeway_secs must be at most 300".into());
        }
        if self.refresh_grace_ms > 60_000 {
            return Err("sessions.refresh_grace_ms must be at most 60000".into());
        }
        Ok(())
    }
}
