//! The `[presence]` table.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use voiceflow_actors::presence::PresenceTimings;

/// Presence timings: how sessions report, when a user counts as gone or idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// How often each session tells its user's presence actor it is alive, seconds.
    pub heartbeat_secs: u64,
    /// A session that has not beaten for this long is gone (its node died), seconds; when
    /// all of a user's sessions are gone the user is offline.
    pub session_ttl_secs: u64,
    /// A user whose sessions have all been idle this long shows as away, seconds.
    pub away_after_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            heartbeat_secs: 15,
            session_ttl_secs: 30,
            away_after_secs: 300,
        }
    }
}

impl PresenceConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    /// The presence actors' timings. A new owner waits one heartbeat (and a second) before
    /// declaring anyone offline, so every live session has beaten to it once.
    pub fn timings(&self) -> PresenceTimings {
        PresenceTimings {
            session_ttl: Duration::from_secs(self.session_ttl_secs.max(1)),
            away_after: Duration::from_secs(self.away_after_secs.max(1)),
            warm_up: self.heartbeat() + Duration::from_secs(1),
        }
    }

    /// Rejects timings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_ttl_secs <= self.heartbeat_secs {
            return Err(
                "presence.session_ttl_secs must be longer than presence.heartbeat_secs".into(),
            );
        }
        Ok(())
    }
}
