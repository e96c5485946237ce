//! Mentions of users (`user_mentions`) and notification settings (`notification_settings`).

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::notify::NotificationSetting;

/// A user named in a message (`<@id>`), indexed by user and message id so that a user's
/// recent mentions across rooms are one newest-first slice. Written with the message (in the
/// same commit); a row is a candidate: an edit that drops the mention, a deletion or a lost
/// membership leaves it, and readers check the message as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionRecord {
    /// Who is mentioned.
    pub user_id: Snowflake,
    /// The message.
    pub message_id: Snowflake,
    /// Its room.
    pub room_id: Snowflake,
}

impl MentionRecord {
    /// The rows a stored message's mentions make.
    pub fn of(message: &crate::model::MessageRecord) -> impl Iterator<Item = MentionRecord> + '_ {
        message.extra.mentions.iter().map(|user| MentionRecord {
            user_id: *user,
            message_id: message.id,
            room_id: message.room_id,
        })
    }
}

/// The scope id of a user's default notification setting (room and community ids are
/// never 0).
pub const DEFAULT_SCOPE: Snowflake = Snowflake(0);

/// A user's own notification setting for one scope: a room, a community, or their default
/// ([`DEFAULT_SCOPE`]). A scope set to inherit everything is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSettingRecord {
    /// The user.
    pub user_id: Snowflake,
    /// The room or community, or [`DEFAULT_SCOPE`].
    pub scope_id: Snowflake,
    /// The setting.
    pub setting: NotificationSetting,
}
