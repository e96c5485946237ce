//! What a room follows of its members' accounts: renames, and which sessions may type.

use voiceflow_schema::Store;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::RoomRef;

use super::RoomState;
use crate::error::ActorError;

/// The answer to a `room:leave` of a session the room is not serving (not subscribed, or the
/// room is not running): fine for a member (nothing to do), FORBIDDEN for anyone else,
/// ROOM_NOT_FOUND for a room that does not exist.
pub async fn leave_answer(
    store: &dyn Store,
    room_id: Snowflake,
    user: Snowflake,
) -> Result<RoomRef, ActorError> {
    if store.member(room_id, user).await?.is_some() {
        return Ok(RoomRef { room_id });
    }
    match store.room_by_id(room_id).await? {
        Some(_) => Err(ActorError::Forbidden("not a member of this room")),
        None => Err(ActorError::RoomNotFound),
    }
}

impl RoomState {
    /// Whether `session_id` of `user` is in this room's live set (joined and not left).
    pub fn is_subscribed(&self, session_id: u64, user: Snowflake) -> bool {
        self.live
            .get(&session_id)
            .is_some_and(|s| s.user_id == user)
    }

    /// The name messages of `user` are stamped with: the member's current account name, as the
    /// room knows it (loaded from storage, then kept up to date by renames), not the one a
    /// session or a token was opened with.
    pub fn current_name(&self, user: Snowflake) -> Option<&str> {
        self.members.get(&user).map(|m| m.username.as_str())
    }

    /// In a direct conversation, a post is refused when either person blocked the other.
    pub(super) async fn dm_allowed(&self, author: Snowflake) -> Result<(), ActorError> {
        if self.room.kind != voiceflow_schema::RoomKind::Dm {
            return Ok(());
        }
        let Some(other) = self.members.keys().copied().find(|id| *id != author) else {
            return Ok(());
        };
        match crate::contacts::blocked_between(self.ctx.store.as_ref(), author, other).await? {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// A member renamed their account: member lists, live sessions and voice show the new
    /// name, and their next messages carry it.
    pub fn handle_renamed(&mut self, user: Snowflake, username: String) {
        if let Some(member) = self.members.get_mut(&user) {
            member.username = username.clone();
        }
        self.live.rename(user, &username);
        if let Some(voice) = self.voice.as_mut() {
            for entry in voice.entries.values_mut().filter(|e| e.user_id == user) {
                entry.username = username.clone();
            }
        }
    }
}
