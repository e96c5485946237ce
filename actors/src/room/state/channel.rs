//! A community channel's permissions, as its room enforces them.
//!
//! A room placed in a community (`channel_communities`) is a channel: who may view it, post,
//! react, connect or moderate in it follows the community's roles, the member's roles and
//! timeout, and the channel's overrides ([`crate::permissions`]), not the room's own
//! admin/member roles. The room reads the roles and overrides once when it starts and a
//! member's grants the first time that member does something here, so a check costs no
//! storage read on the hot path. Whatever changes them (a role edited, granted or taken
//! away, a timeout, a kick or ban, an override) tells every running channel of the community
//! to read them again ([`super::RoomState::handle_updated`]).
//!
//! A channel that a user may not view answers as if it did not exist (`ROOM_NOT_FOUND`), so
//! its existence does not leak. A channel with `allowGuests` lets signed-in people outside
//! the community (and not banned from it) view it, and nothing more: read-only guests.

use std::collections::HashMap;

use voiceflow_schema::{Store, StoreError};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use voiceflow_wire::v1::community::{VoiceMoved, events as community_events};
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::voice::events as voice_events;

use super::{Author, Member, RoomState};
use crate::error::ActorError;
use crate::permissions::{ChannelOverwrites, CommunityRoles, MemberGrants};

/// The most users whose grants a channel remembers; past it the memory is emptied and
/// members are read again as they act (bounds a channel of a 100,000-member community).
const MAX_REMEMBERED_USERS: usize = 10_000;

/// Whether a non-member is banned from the community.
type Banned = bool;

/// A member's server mute and deafen (`PUT /communities/:id/members/:userId/voice`): a
/// server-muted member is not heard even with `speak`, a server-deafened one hears nobody.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct VoiceModeration {
    pub(super) muted: bool,
    pub(super) deafened: bool,
}

/// What a channel knows of its community's permissions.
pub(super) struct ChannelGuard {
    /// The community (its id is also `@everyone`'s).
    pub(super) community: Snowflake,
    roles: CommunityRoles,
    overwrites: ChannelOverwrites,
    /// Users whose membership was read: their grants and voice moderation, or `Err` for a
    /// non-member (with whether they are banned from the community).
    users: HashMap<Snowflake, Result<(MemberGrants, VoiceModeration), Banned>>,
    /// A reload failed: read everything again before the next check.
    stale: bool,
}

impl ChannelGuard {
    /// The guard of room `room`, or `None` if the room is not in a community.
    pub(super) async fn load(
        store: &dyn Store,
        room: Snowflake,
    ) -> Result<Option<ChannelGuard>, StoreError> {
        let Some(community) = store.channel_community(room).await? else {
            return Ok(None);
        };
        let mut guard = ChannelGuard {
            community,
            roles: CommunityRoles::default(),
            overwrites: ChannelOverwrites::default(),
            users: HashMap::new(),
            stale: true,
        };
        guard.reload(store, room).await?;
        Ok(Some(guard))
    }

    /// Reads the roles and overrides again and forgets every member's grants.
    async fn reload(&mut self, store: &dyn Store, room: Snowflake) -> Result<(), StoreError> {
        self.stale = true;
        self.users.clear();
        metrics::counter!("voiceflow_channel_permission_reads_total", "what" => "reload")
            .increment(1);
        let (community, roles, overwrites) = tokio::try_join!(
            store.community_by_id(self.community),
            store.community_roles(self.community),
            store.channel_overwrites(room),
        )?;
        // A deleted community leaves nobody any permission here (owner 0 is nobody).
        self.roles = match community {
            Some(community) => CommunityRoles::of(&community, &roles),
            None => CommunityRoles::default(),
        };
        self.overwrites = ChannelOverwrites::of(self.community, &overwrites);
        self.stale = false;
        Ok(())
    }

    /// What `user` may do in the channel at `now_ms`: for a non-member, `VIEW_CHANNEL` if
    /// the channel takes `guests` and they are not banned, else nothing.
    async fn permissions(
        &mut self,
        store: &dyn Store,
        (room, guests): (Snowflake, bool),
        user: Snowflake,
        now_ms: u64,
    ) -> Result<Permissions, StoreError> {
        if self.stale {
            self.reload(store, room).await?;
        }
        if !self.users.contains_key(&user) {
            // Counted so a benchmark can show checks read nothing once a member is known.
            metrics::counter!("voiceflow_channel_permission_reads_total", "what" => "member")
                .increment(1);
            let known = match store.community_member(self.community, user).await? {
                Some(member) => {
                    let voice = VoiceModeration {
                        muted: member.voice_muted,
                        deafened: member.voice_deafened,
                    };
                    Ok((MemberGrants::from(&member), voice))
                }
                None => Err(store.ban(self.community, user).await?.is_some()),
            };
            if self.users.len() >= MAX_REMEMBERED_USERS {
                self.users.clear();
            }
            self.users.insert(user, known);
        }
        Ok(match self.users.get(&user) {
            // A server mute holds whatever the roles say, even for administrators.
            Some(Ok((grants, voice))) if voice.muted => self
                .roles
                .in_channel(grants, &self.overwrites, now_ms)
                .difference(Permissions::SPEAK),
            Some(Ok((grants, _))) => self.roles.in_channel(grants, &self.overwrites, now_ms),
            Some(Err(false)) if guests => Permissions::VIEW_CHANNEL,
            Some(Err(_)) | None => Permissions::empty(),
        })
    }
}

impl ChannelGuard {
    /// The community's roles and the channel's overrides, for deciding members' permissions
    /// off the actor (who a wide mention reaches).
    pub(super) fn rules(&self) -> (CommunityRoles, ChannelOverwrites) {
        (self.roles.clone(), self.overwrites.clone())
    }

    /// Whether `role` is one of the community's roles (not `@everyone`).
    pub(super) fn has_role(&self, role: Snowflake) -> bool {
        self.roles.has_role(role)
    }

    /// `user`'s server mute and deafen, as last read (a member's grants are read by
    /// [`ChannelGuard::permissions`] first).
    fn voice_moderation(&self, user: Snowflake) -> VoiceModeration {
        match self.users.get(&user) {
            Some(Ok((_, voice))) => *voice,
            _ => VoiceModeration::default(),
        }
    }
}

impl RoomState {
    /// `user`'s server mute and deafen in this channel (none outside communities); call
    /// after [`RoomState::channel_permissions`] for the same user.
    pub(super) fn voice_moderation(&self, user: Snowflake) -> VoiceModeration {
        self.channel
            .as_ref()
            .map(|guard| guard.voice_moderation(user))
            .unwrap_or_default()
    }

    /// What `user` may do here: `None` for a room outside communities (its own rules apply),
    /// else their permissions in this channel now.
    pub(super) async fn channel_permissions(
        &mut self,
        user: Snowflake,
    ) -> Result<Option<Permissions>, ActorError> {
        let room = (self.room.id, self.room.settings.allow_guests);
        let store = self.ctx.store.clone();
        match self.channel.as_mut() {
            None => Ok(None),
            Some(guard) => Ok(Some(
                guard.permissions(&*store, room, user, now_ms()).await?,
            )),
        }
    }

    /// Refuses `user` unless they hold `need` in this channel (`ROOM_NOT_FOUND` if they may
    /// not even view it); a user who may becomes a member of the channel's room on first use.
    /// Rooms outside communities pass (their own rules apply).
    pub(super) async fn require(
        &mut self,
        user: Snowflake,
        need: Permissions,
        refusal: &'static str,
    ) -> Result<(), ActorError> {
        let Some(held) = self.channel_permissions(user).await? else {
            return Ok(());
        };
        if !held.contains(Permissions::VIEW_CHANNEL) {
            return Err(ActorError::RoomNotFound);
        }
        if !held.contains(need) {
            return Err(ActorError::Forbidden(refusal));
        }
        if !self.members.contains_key(&user) {
            self.admit(user).await?;
        }
        Ok(())
    }

    /// A user who may view the channel and was not seen here since the room started: their
    /// stored membership of its room (with their current name), or a new one. A channel's
    /// room does not read its members when it starts (they may be a 100,000-member
    /// community's), so this is where each is read, once.
    async fn admit(&mut self, user: Snowflake) -> Result<(), ActorError> {
        let store = self.ctx.store.clone();
        let (stored, account) =
            tokio::try_join!(store.member(self.room.id, user), store.user_by_id(user))?;
        let username = account.map(|u| u.username).unwrap_or_default();
        match stored {
            Some(m) => {
                self.members.insert(
                    user,
                    Member {
                        role: m.role,
                        username,
                        joined_at: m.joined_at,
                    },
                );
                Ok(())
            }
            None => {
                let author = Author {
                    user_id: user,
                    username,
                };
                self.add_member(&author).await
            }
        }
    }

    /// Removes a member this channel's room has not seen since it started (kicked, banned or
    /// gone from the community): their stored membership, if any. They have no live session
    /// here (a join would have admitted them).
    pub(super) async fn remove_unseen(&mut self, user: Snowflake) -> Result<(), ActorError> {
        match self.ctx.store.member(self.room.id, user).await? {
            Some(_) => Ok(self.ctx.store.remove_member(self.room.id, user).await?),
            None => Err(ActorError::Forbidden("not a member of this room")),
        }
    }

    /// Whether `user` may delete others' messages: `MANAGE_MESSAGES` in a channel, a room
    /// admin elsewhere.
    pub(super) async fn moderates_messages(&mut self, user: Snowflake) -> Result<bool, ActorError> {
        Ok(match self.channel_permissions(user).await? {
            Some(held) => held.contains(Permissions::MANAGE_MESSAGES),
            None => self
                .members
                .get(&user)
                .is_some_and(|m| m.role == voiceflow_schema::Role::Admin),
        })
    }

    /// The community's permissions changed: read them again, and remove from the channel
    /// everyone live here who may no longer view it (they get `room:removed`, naming the
    /// community as who removed them).
    pub async fn reload_channel(&mut self) {
        let room = self.room.id;
        let store = self.ctx.store.clone();
        let Some(guard) = self.channel.as_mut() else {
            return;
        };
        if let Err(e) = guard.reload(&*store, room).await {
            // Stale: the next check reads everything again first.
            tracing::warn!(room = %room, error = %e, "channel permissions not reloaded");
            return;
        }
        let community = guard.community;
        let mut live_users: Vec<Snowflake> = self.live.values().map(|s| s.user_id).collect();
        live_users.sort_unstable();
        live_users.dedup();
        for user in live_users {
            let view = match self.channel_permissions(user).await {
                Ok(held) => held.is_none_or(|p| p.contains(Permissions::VIEW_CHANNEL)),
                Err(_) => true,
            };
            if view || !self.members.contains_key(&user) {
                continue;
            }
            if let Err(e) = self.handle_remove_member(user, Some(community)).await {
                tracing::warn!(room = %room, user = %user, error = %e, "not removed");
            }
        }
        // Who may still speak in the voice room (a timeout or a lost `speak` silences at once)
        // and publish video (a lost `video` stops their camera and screen share at once).
        let mut speakers: Vec<Snowflake> = self.voice_users();
        speakers.sort_unstable();
        speakers.dedup();
        let mut rights = HashMap::new();
        for user in speakers {
            let (speak, video) = match self.channel_permissions(user).await {
                Ok(held) => (
                    held.is_none_or(|p| p.contains(Permissions::SPEAK)),
                    held.is_none_or(|p| p.contains(Permissions::VIDEO)),
                ),
                Err(_) => continue,
            };
            let deafened = self.voice_moderation(user).deafened;
            rights.insert(user, (speak, video, deafened));
        }
        self.set_voice_rights(&rights);
    }

    /// `typing:start`: in a channel, only who may post.
    pub async fn may_type(&mut self, user: Snowflake) -> Result<(), ActorError> {
        self.require(user, Permissions::SEND_MESSAGES, "you may not post here")
            .await
    }

    /// A moderator takes `user` out of the voice session (every session of theirs), into
    /// `moved_to` if set: the moved sessions get `voice:moved`, everyone else
    /// `voice:user_left` with reason `moved`. The REST side checked the moderator's rights.
    pub fn disconnect_voice(
        &mut self,
        user: Snowflake,
        moved_to: Option<Snowflake>,
        by: Snowflake,
    ) -> Result<(), ActorError> {
        let sessions = self.voice_sessions_of(user);
        if sessions.is_empty() {
            return Err(ActorError::Client(ErrorBody::new(
                ErrorCode::NotFound,
                "they are not in this voice channel",
            )));
        }
        let moved = VoiceMoved {
            channel_id: self.room.id,
            to_channel_id: moved_to,
            by,
        };
        let frame = frame::event(community_events::VOICE_MOVED, &moved);
        for session in sessions {
            self.voice_tell(session, &frame);
            self.voice_remove(session, "moved");
        }
        Ok(())
    }

    /// Whether this room is a community channel.
    pub(super) fn is_channel(&self) -> bool {
        self.channel.is_some()
    }
}

impl RoomState {
    /// The voice sessions of `user`.
    fn voice_sessions_of(&self, user: Snowflake) -> Vec<u64> {
        self.voice
            .as_ref()
            .map(|v| {
                v.entries
                    .iter()
                    .filter(|(_, e)| e.user_id == user)
                    .map(|(session, _)| *session)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends `frame` to one voice session.
    fn voice_tell(&self, session: u64, frame: &voiceflow_wire::v1::frame::Frame) {
        if let Some(entry) = self.voice.as_ref().and_then(|v| v.entries.get(&session)) {
            entry.tell(frame.clone());
        }
    }

    /// The users in the voice room, a user once per session.
    pub(super) fn voice_users(&self) -> Vec<Snowflake> {
        self.voice
            .as_ref()
            .map(|v| v.entries.values().map(|e| e.user_id).collect())
            .unwrap_or_default()
    }

    /// Whether each of these users may speak now, may publish video, and is server-deafened
    /// (a community channel's permissions or a member's voice moderation changed): the SFU is
    /// told of every session whose rights change, and everyone of their new state
    /// (`voice:state`; a participant who lost `video` shows `video: false, screen: false`,
    /// and must turn them on again once it is given back).
    pub(super) fn set_voice_rights(&mut self, rights: &HashMap<Snowflake, (bool, bool, bool)>) {
        let Some(voice) = self.voice.as_mut() else {
            return;
        };
        let mut changed = Vec::new();
        for (session_id, entry) in voice.entries.iter_mut() {
            let Some(&(speak, video, deafened)) = rights.get(&entry.user_id) else {
                continue;
            };
            if (entry.speak, entry.may_video, entry.server_deafened) != (speak, video, deafened) {
                entry.speak = speak;
                entry.server_deafened = deafened;
                entry.may_video = video;
                if !video {
                    entry.video = false;
                    entry.screen = false;
                }
                changed.push((*session_id, entry.rights()));
            }
        }
        let channel = voice.channel.clone();
        let views: Vec<_> = match self.voice.as_ref() {
            Some(voice) => changed
                .iter()
                .filter_map(|(session_id, _)| voice.entries.get(session_id))
                .map(|entry| self.participant_view(entry))
                .collect(),
            None => Vec::new(),
        };
        tokio::spawn(async move {
            for (session_id, rights) in changed {
                let _ = channel.set_rights(session_id, rights).await;
            }
        });
        for view in views {
            self.voice_broadcast(&frame::event(voice_events::STATE, &view));
        }
    }
}
