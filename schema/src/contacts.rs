//! Who may reach a user: the people they blocked (`user_blocks`) and whom they accept direct
//! messages and calls from (`user_settings`).

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;

/// One user blocking another (`user_blocks`: user → blocked user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Who blocks.
    pub user_id: Snowflake,
    /// Whom.
    pub blocked_id: Snowflake,
    /// Since when.
    pub created_at: u64,
}

/// Who may open a direct conversation with a user or call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactPolicy {
    /// Anyone (except people they blocked).
    #[default]
    Everyone,
    /// People who share a room with them (direct conversations do not count).
    SharedRoom,
    /// Nobody new; an existing conversation stays readable but takes no new calls.
    Nobody,
}

impl ContactPolicy {
    /// Stable wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactPolicy::Everyone => "everyone",
            ContactPolicy::SharedRoom => "shared_room",
            ContactPolicy::Nobody => "nobody",
        }
    }

    /// Inverse of [`ContactPolicy::as_str`].
    pub fn parse(s: &str) -> Option<ContactPolicy> {
        Some(match s {
            "everyone" => ContactPolicy::Everyone,
            "shared_room" => ContactPolicy::SharedRoom,
            "nobody" => ContactPolicy::Nobody,
            _ => return None,
        })
    }
}

/// A user's privacy settings (`user_settings`); absent means the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserSettings {
    /// The user.
    pub user_id: Snowflake,
    /// Who may open a DM with them or call them.
    pub contact: ContactPolicy,
}
