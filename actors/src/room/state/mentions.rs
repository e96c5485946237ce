//! Mentions: which users and roles a message names (`<@id>`, `<@&id>`) and whether it pings
//! `@everyone` / `@here`, decided when it is posted or edited; once the change is stored,
//! those it newly reaches are told ([`super::mention_delivery`]).
//!
//! Only users who may read the room count (a member, or in a community channel whoever may
//! view it); only roles of the channel's community count, and roles, `@everyone` and `@here`
//! only from an author who may ping many (`mention_everyone` in a channel, a room admin
//! elsewhere): from anyone else the message posts and pings nobody, as in Discord. The
//! post never waits on the people a wide mention reaches: they are found and written after
//! the commit, off the actor.

use std::collections::HashSet;

use voiceflow_schema::{DEFAULT_SCOPE, MessageRecord, Store};
use voiceflow_wire::v1::notify::{EffectiveNotification, NotifyKind, WrittenMentions};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::push::{PushKind, PushPayload};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::RoomState;
use super::mention_delivery::{Audience, Delivery, MentionReach};
use crate::error::ActorError;

impl RoomState {
    /// Fills `message.extra`'s `mentions`, `mention_roles` and `mentions_everyone` from its
    /// content; more distinct users and roles than `max_mentions` is refused
    /// (`VALIDATION_ERROR` on `content`).
    pub(super) async fn resolve_mentions(
        &mut self,
        message: &mut MessageRecord,
    ) -> Result<(), ActorError> {
        let written = WrittenMentions::parse(&message.content);
        let (everyone, here) = super::changes::says_everyone(&message.content);
        // Asked only when it matters: a channel reads the author's grants for it.
        let many = everyone || here || !written.roles.is_empty();
        let may_ping_many = many && self.may_ping_many(message.user_id).await?;
        message.extra.mentions_everyone = may_ping_many && (everyone || here);
        message.extra.mentions_here = may_ping_many && here && !everyone;
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
            Some(_) if !may_ping_many => Vec::new(),
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

    /// A change was stored: those its message now reaches and did not before (`before`:
    /// its reach before an edit or a deletion; `None` for a post) get a row, a push offer and
    /// `mention:created`; those it no longer reaches lose their row. Done by a task off the
    /// actor (settings reads, a community's member pages), so the room never waits on it.
    pub(super) fn announce_mentions(&self, message: &MessageRecord, before: Option<MentionReach>) {
        let now = MentionReach::of(&message.extra);
        if before.is_none() && now == MentionReach::default() {
            return;
        }
        if before.as_ref() == Some(&now) {
            return;
        }
        let wide = |r: &MentionReach| r.is_wide();
        let audience = if !wide(&now) && !before.as_ref().is_some_and(wide) {
            Audience::Named
        } else {
            match &self.channel {
                Some(guard) => {
                    let (roles, overwrites) = guard.rules();
                    Audience::Community {
                        community: guard.community,
                        roles,
                        overwrites,
                    }
                }
                None => Audience::Members(self.members.keys().copied().collect()),
            }
        };
        let delivery = Delivery {
            ctx: self.ctx.clone(),
            message: message.clone(),
            before,
            community: self.channel.as_ref().map(|g| g.community),
            audience,
            online: self.online_now(),
        };
        tokio::spawn(delivery.run());
    }

    /// Who the room knows to be online: a session here, or a presence report that is not
    /// offline (members of a channel it has not heard of since it started are not known).
    fn online_now(&self) -> HashSet<Snowflake> {
        let mut online: HashSet<Snowflake> = self.social.online().collect();
        online.extend(self.live.values().map(|l| l.user_id));
        online
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
