//! A room's members: read when it starts (rooms of their own: a community channel reads its
//! members as they act, `channel.rs`), joined by code, leaving or removed.

use std::collections::HashMap;

use voiceflow_schema::StoreError;
use voiceflow_wire::Snowflake;

use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::server::{JoinReply, RoomRemoved, events};

use super::{Author, Member, RoomState};
use crate::context::NodeContext;
use crate::error::ActorError;

/// Every member of `room`, with their current usernames (a member whose account is gone is
/// left out).
pub(super) async fn read(
    ctx: &NodeContext,
    room: Snowflake,
) -> Result<HashMap<Snowflake, Member>, StoreError> {
    let mut members = HashMap::new();
    let list = ctx.store.room_members(room).await?;
    // Names 32 at a time, not one round trip after another (large rooms).
    for chunk in list.chunks(32) {
        let mut names = tokio::task::JoinSet::new();
        for m in chunk {
            let (store, m) = (ctx.store.clone(), m.clone());
            names
                .spawn(async move { Ok::<_, StoreError>((store.user_by_id(m.user_id).await?, m)) });
        }
        while let Some(done) = names.join_next().await {
            let (user, m) = done.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            let Some(user) = user else { continue };
            members.insert(
                m.user_id,
                Member {
                    role: m.role,
                    username: user.username,
                    joined_at: m.joined_at,
                },
            );
        }
    }
    Ok(members)
}

impl RoomState {
    /// Join by code: become a member (ROOM_FULL at `maxUsers`).
    pub async fn handle_add_member(&mut self, author: Author) -> Result<JoinReply, ActorError> {
        if self.is_channel() {
            // A channel is joined through its community; by code only if one may view it.
            self.require(author.user_id, Permissions::VIEW_CHANNEL, "")
                .await?;
        }
        self.add_member(&author).await?;
        Ok(self.join_reply(true, (0, false)))
    }

    /// Leave the room for good: membership removed, live sessions unsubscribed.
    /// Removes `user` from the room; `removed_by` is the admin who removed them (their
    /// sessions are told with `room:removed`), `None` when they left.
    pub async fn handle_remove_member(
        &mut self,
        user: Snowflake,
        removed_by: Option<Snowflake>,
    ) -> Result<(), ActorError> {
        if self.is_channel() && !self.members.contains_key(&user) {
            // Not seen here since the room started: a stored membership still goes.
            return self.remove_unseen(user).await;
        }
        let Some(member) = self.members.get(&user).cloned() else {
            return Err(ActorError::Forbidden("not a member of this room"));
        };
        self.ctx.store.remove_member(self.room.id, user).await?;
        self.members.remove(&user);
        for session_id in self.live.sessions_of(user) {
            if let Some(session) = self.live.get(&session_id) {
                if let Some(by) = removed_by {
                    session.to.push(frame::event(
                        events::ROOM_REMOVED,
                        &RoomRemoved {
                            room_id: self.room.id,
                            by,
                        },
                    ));
                }
                session.to.forget_room(self.room.id);
            }
            self.handle_leave(session_id, user, None);
        }
        let author = Author {
            user_id: user,
            username: member.username,
        };
        let what = if removed_by.is_some() {
            "was removed from the room"
        } else {
            "left the room"
        };
        if !self.is_channel() {
            self.queue_system_message(&author, what);
        }
        Ok(())
    }
}
