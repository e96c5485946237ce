//! Mentions: which users and roles a message names (`<@id>`, `<@&id>`), decided when it is
//! posted or edited, and `mention:created` to each named user once the post is stored.
//!
//! Only users who may read the room count (a member, or in a community channel whoever may
//! view it); only roles of the channel's community count. Role mentions and `@everyone` /
//! `@here` are never expanded into one row or event per member (a community of 100,000 would
//! make the post wait on 100,000 writes): they stay flags of the message, counted when
//! `GET /users/me/rooms` reads it, and seen live by whoever follows the room.

use voiceflow_schema::{DEFAULT_SCOPE, MessageRecord, Store};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::notify::{
    EffectiveNotification, MentionCreated, NotifyKind, WrittenMentions, events, notifies,
};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::push::{PushKind, PushPayload};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::RoomState;
use crate::error::ActorError;

/// Longest snippet of a `mention:created`, in characters.
const SNIPPET_CHARS: usize = 100;

impl RoomState {
    /// Fills `message.extra`'s `mentions`, `mention_roles` and `mentions_everyone` from its
    /// content; more distinct users and roles than `max_mentions` is refused
    /// (`VALIDATION_ERROR` on `content`).
    pub(super) async fn resolve_mentions(
        &mut self,
        message: &mut MessageRecord,
    ) -> Result<(), ActorError> {
        message.extra.mentions_everyone = self.pings_everyone(message).await?;
        let written = WrittenMentions::parse(&message.content);
        let cap = self.ctx.config.max_mentions;
        if written.len() > cap {
            return Err(ActorError::Client(ErrorBody::field(
                "content",
                format!("a message may mention at most {cap} users and roles"),
            )));
        }
        let mut users = Vec::with_capacity(written.users.len());
        for user in written.users {
            if self.may_read(user).await? {
                users.push(user);
            }
        }
        let roles = match &self.channel {
            Some(guard) => written
                .roles
                .into_iter()
                .filter(|role| guard.has_role(*role))
                .collect(),
            None => Vec::new(),
        };
        message.extra.mentions = users;
        message.extra.mention_roles = roles;
        Ok(())
    }

    /// Whether `user` may read this room: in a community channel, whoever may view it; else
    /// its members.
    async fn may_read(&mut self, user: Snowflake) -> Result<bool, ActorError> {
        Ok(match self.channel_permissions(user).await? {
            Some(held) => held.contains(Permissions::VIEW_CHANNEL),
            None => self.members.contains_key(&user),
        })
    }

    /// A stored post named users: each (but its author) gets `mention:created` on every
    /// session, wherever in the cluster. Their settings are read off the actor (a task per
    /// post), so the room never waits on them.
    pub(super) fn announce_mentions(&self, message: &MessageRecord) {
        let users: Vec<Snowflake> = message
            .extra
            .mentions
            .iter()
            .copied()
            .filter(|u| *u != message.user_id)
            .collect();
        if users.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        let community = self.channel.as_ref().map(|g| g.community);
        let created_at = message.created_at;
        let event = MentionCreated {
            room_id: message.room_id,
            message_id: message.id,
            author_id: message.user_id,
            author_name: message.username.clone(),
            snippet: message.content.chars().take(SNIPPET_CHARS).collect(),
            notify: true,
        };
        tokio::spawn(async move {
            for user in users {
                let settings =
                    crate::push::settings_or_default(&*ctx.store, user, event.room_id, community)
                        .await;
                let told = MentionCreated {
                    notify: notifies(&settings, NotifyKind::Mention, now_ms()),
                    ..event.clone()
                };
                if told.notify && ctx.push.is_some() {
                    let payload = PushPayload {
                        kind: PushKind::Mention,
                        room_id: told.room_id,
                        message_id: Some(told.message_id),
                        title: format!("{} mentioned you", told.author_name),
                        body: crate::push::snippet(&told.snippet),
                        url: crate::push::room_url(told.room_id),
                    };
                    let event = crate::push::PushEvent {
                        dedupe: told.message_id.0,
                        at_ms: created_at,
                    };
                    crate::push::send(&ctx, user, payload, event).await;
                }
                // After the push offer, so that on one node a client reacting to this event
                // (a focus report) reaches the presence actor after the offer; across nodes
                // the offer's time decides (`PresenceState::holds_push`).
                let frame = frame::event(events::MENTION_CREATED, &told);
                crate::remote::notify_user(&ctx, user, &frame);
            }
        });
    }
}

impl RoomState {
    /// A stored post in a direct conversation: a push offer to the other member (a
    /// notification per their settings, unless they have a focused session).
    pub(super) fn announce_direct(&self, message: &MessageRecord) {
        let system = message.kind == voiceflow_wire::v1::client::MessageType::System;
        if self.room.kind != voiceflow_wire::room::RoomKind::Dm || self.ctx.push.is_none() || system
        {
            return;
        }
        let body = match message.content.is_empty() {
            true => "sent a file".to_owned(),
            false => crate::push::snippet(&message.content),
        };
        for user in self.members.keys().filter(|u| **u != message.user_id) {
            let payload = PushPayload {
                kind: PushKind::Dm,
                room_id: message.room_id,
                message_id: Some(message.id),
                title: message.username.clone(),
                body: body.clone(),
                url: crate::push::room_url(message.room_id),
            };
            crate::push::offer(
                &self.ctx,
                *user,
                None,
                NotifyKind::Dm,
                payload,
                crate::push::PushEvent {
                    dedupe: message.id.0,
                    at_ms: message.created_at,
                },
            );
        }
    }
}

/// `user`'s setting in room `room` (of `community`, if a channel): the room's own, else the
/// community's, else their default, else `all`.
pub async fn effective_settings(
    store: &dyn Store,
    user: Snowflake,
    room: Snowflake,
    community: Option<Snowflake>,
) -> Result<EffectiveNotification, voiceflow_schema::StoreError> {
    let rows = store.notification_settings(user).await?;
    let scope = |id: Snowflake| rows.iter().find(|r| r.scope_id == id).map(|r| r.setting);
    let (room, community, default) = (scope(room), community.and_then(scope), scope(DEFAULT_SCOPE));
    Ok(EffectiveNotification::resolve(
        room.as_ref(),
        community.as_ref(),
        default.as_ref(),
    ))
}
