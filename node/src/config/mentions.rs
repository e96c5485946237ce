//! The `[mentions]` table: how far mentions of many people reach and how much of them is
//! kept per user.

use serde::{Deserialize, Serialize};

/// Each user's mention index (`user_mentions`, behind `GET /users/me/mentions`) keeps about
/// their newest `kept_per_user` rows: a write for a user trims their rows back to it with a
/// chance of one in `trim_one_in` (so a partition holds `kept_per_user` plus a few dozen rows
/// at most, in expectation 1/`trim_one_in` of a trim per write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MentionsConfig {
    /// Newest mention rows kept per user (older ones are deleted; they drop off the list).
    pub kept_per_user: u32,
    /// A mention written for a user trims their rows with a chance of one in this (1: every
    /// write trims).
    pub trim_one_in: u32,
    /// Members read per page when a role or `@everyone` / `@here` mention is delivered in
    /// a community channel (a page's rows are written together).
    pub fanout_page: u32,
}

impl Default for MentionsConfig {
    fn default() -> Self {
        MentionsConfig {
            kept_per_user: 1_000,
            trim_one_in: 32,
            fanout_page: 1_000,
        }
    }
}

impl MentionsConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.kept_per_user == 0 || self.trim_one_in == 0 || self.fanout_page == 0 {
            return Err(
                "mentions.kept_per_user, mentions.trim_one_in and mentions.fanout_page must be > 0"
                    .into(),
            );
        }
        Ok(())
    }
}
