//! What changes to a community do to its channels: permission changes reach the running
//! channels (also on other nodes), kicked, banned and departed members leave them, a ban may
//! take the member's recent messages, and deleting a community deletes them.

use futures_util::{StreamExt, stream};
use voiceflow_actors::ActorError;
use voiceflow_actors::room::RoomMsg;
use voiceflow_schema::{CommunityRecord, RoomRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::community::{MemberUpdated, events as community_events};
use voiceflow_wire::v1::frame;

use crate::error::ApiError;
use crate::state::AppState;

/// How many channels' records one request reads at a time.
const READS_IN_FLIGHT: usize = 16;

/// Deletes a channel's room (its live sessions get `room:deleted`) and takes it out of the
/// community; `by` must hold `MANAGE_CHANNELS` in it (the room checks).
pub(super) async fn delete_channel(
    s: &AppState,
    community: Snowflake,
    channel: Snowflake,
    by: Snowflake,
) -> Result<(), ApiError> {
    let deleted = s
        .ctx
        .directory
        .call(channel, |reply| RoomMsg::DeleteRoom { by, reply })
        .await;
    match deleted {
        // Gone already (a delete that failed half-way and is tried again).
        Ok(()) | Err(ActorError::RoomNotFound) => {}
        Err(e) => return Err(e.into()),
    }
    s.ctx.store.remove_channel(community, channel).await?;
    Ok(())
}

/// Deletes every channel of a community (its owner deletes it).
pub(super) async fn delete_all(
    s: &AppState,
    community: Snowflake,
    by: Snowflake,
) -> Result<(), ApiError> {
    for placed in s.ctx.store.community_channels(community).await? {
        delete_channel(s, community, placed.channel_id, by).await?;
    }
    Ok(())
}

/// Tells every running channel of `community` that who may do what changed (a role, a
/// grant, a timeout, a kick or ban, an override): each reads the permissions again and
/// removes the live sessions of whoever may no longer view it.
pub(super) async fn permissions_changed(
    s: &AppState,
    community: Snowflake,
) -> Result<(), ApiError> {
    let placed = s.ctx.store.community_channels(community).await?;
    let rooms: Vec<Option<RoomRecord>> = stream::iter(placed)
        .map(|placed| async move { s.ctx.store.room_by_id(placed.channel_id).await })
        .buffer_unordered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for room in rooms.into_iter().flatten() {
        let id = room.id;
        s.ctx
            .directory
            .send_if_running(id, RoomMsg::Updated(Box::new(room)));
    }
    Ok(())
}

/// Tells `user`'s sessions that what they may do in `community` changed
/// (`community:member_updated`): a channel that became visible shows up at once.
pub(super) fn member_changed(s: &AppState, community: Snowflake, user: Snowflake) {
    let event = MemberUpdated {
        community_id: community,
        user_id: user,
    };
    let frame = frame::event(community_events::MEMBER_UPDATED, &event);
    voiceflow_actors::remote::notify_user(&s.ctx, user, &frame);
}

/// Messages read per page while looking for a banned member's messages.
const PURGE_PAGE: u32 = 100;

/// Deletes `author`'s messages posted since `since_ms` in every channel of `community` (a
/// ban with `deleteMessageSecs`); answers how many. Each goes through its channel's room as
/// a deletion by the community's owner (the ban's authority: the moderator's own
/// `manage_messages` is not required), so live members see `message:deleted`.
pub(super) async fn purge_messages(
    s: &AppState,
    community: &CommunityRecord,
    author: Snowflake,
    since_ms: u64,
) -> Result<u32, ApiError> {
    let store = &s.ctx.store;
    let mut deleted = 0;
    for placed in store.community_channels(community.id).await? {
        let room = placed.channel_id;
        let mut before = None;
        'pages: loop {
            // Newest first: stop at the first message older than the span.
            let page = store.messages_before(room, before, PURGE_PAGE).await?;
            for message in &page {
                if message.created_at < since_ms {
                    break 'pages;
                }
                let theirs = message.user_id == author && message.kind != MessageType::System;
                if !theirs || message.deleted_at.is_some() {
                    continue;
                }
                let by = community.owner_id;
                let done = s
                    .ctx
                    .directory
                    .call(room, |reply| RoomMsg::DeleteMessage {
                        message_id: message.id,
                        by,
                        reply,
                    })
                    .await;
                match done {
                    Ok(()) => deleted += 1,
                    // Deleted meanwhile.
                    Err(ActorError::MessageNotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match page.last() {
                Some(last) if page.len() == PURGE_PAGE as usize => before = Some(last.id),
                _ => break,
            }
        }
    }
    Ok(deleted)
}

/// Takes `user` out of every channel of `community` they are a member of: kicked or banned
/// (`by` the moderator: their live sessions get `room:removed`) or gone (`by` `None`).
pub(super) async fn remove_from_channels(
    s: &AppState,
    community: Snowflake,
    user: Snowflake,
    by: Option<Snowflake>,
) -> Result<(), ApiError> {
    for placed in s.ctx.store.community_channels(community).await? {
        let channel = placed.channel_id;
        if s.ctx.store.member(channel, user).await?.is_none() {
            continue;
        }
        let removed = s
            .ctx
            .directory
            .call(channel, |reply| RoomMsg::RemoveMember {
                user_id: user,
                removed_by: by,
                reply,
            })
            .await;
        match removed {
            // Left meanwhile.
            Ok(()) | Err(ActorError::Forbidden(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
