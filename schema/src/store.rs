//! The storage trait. Its methods follow the CQL tables one-to-one so that the embedded
//! store and the ScyllaDB backend behave the same; the conformance suite checks both.

use async_trait::async_trait;
use voiceflow_wire::Snowflake;

use crate::community::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, CommunityMember,
    CommunityRecord, InviteRecord, JoinRequest, RoleRecord,
};
use crate::contacts::{BlockRecord, UserSettings};
use crate::member_names::{MemberName, NameCursor, NamePrefix};
use crate::model::*;
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::push::{PushSubscriptionRecord, VapidKeyRecord};

/// Storage failures, mapped to client errors in one place (the node's error module).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is taken; `field` names it (`username`, `email`, `join_code`).
    #[error("{field} is already taken")]
    Conflict {
        /// Which unique field collided.
        field: &'static str,
    },
    /// The backend cannot be reached or refused the write; nothing was stored.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Data on disk could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Another room actor took the room over (its ownership epoch is newer than the writer's):
    /// the writer must stop. Whatever this write stored is never served unless the new owner
    /// read it as the log's end before writing anything of its own.
    #[error("room {room} is owned by a newer ownership epoch ({current} > {mine})")]
    Fenced {
        /// The room.
        room: Snowflake,
        /// The writer's ownership epoch.
        mine: u64,
        /// The room's current ownership epoch.
        current: u64,
    },
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything VoiceFlow keeps. Every write is durable when its future resolves (acknowledged
/// writes survive `kill -9`); concurrent writes share one sync (group commit).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- users ----
    /// Inserts a user; `Conflict{username|email}` if either is taken (case-insensitive).
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: Snowflake) -> StoreResult<Option<UserRecord>>;
    /// Looks a user up by email (case-insensitive).
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Looks a user up by username (case-insensitive).
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Replaces a user record; moves the username index if it changed (`Conflict{username}`),
    /// and the user's entries in the member name index of each of their communities.
    async fn update_user(&self, user: &UserRecord) -> StoreResult<()>;

    // ---- rooms ----
    /// Inserts a room and its creator's admin membership; `Conflict{join_code}` on a taken code.
    async fn create_room(&self, room: &RoomRecord, creator: &Membership) -> StoreResult<()>;
    /// Looks a room up by id.
    async fn room_by_id(&self, id: Snowflake) -> StoreResult<Option<RoomRecord>>;
    /// Looks a room up by join code (case-insensitive).
    async fn room_by_code(&self, code: &str) -> StoreResult<Option<RoomRecord>>;
    /// Replaces a room record. A new join code is claimed (`Conflict{join_code}` if another
    /// room holds it) and the old one released: it no longer finds the room.
    async fn update_room(&self, room: &RoomRecord) -> StoreResult<()>;
    /// Deletes a room, its code and every membership; its message log is dropped too.
    async fn delete_room(&self, id: Snowflake) -> StoreResult<()>;
    /// Public rooms, newest first, `offset`/`limit` paging, with the total count.
    async fn list_public_rooms(&self, offset: u64, limit: u32) -> StoreResult<RoomPage>;

    // ---- memberships ----
    /// Adds or replaces a membership (both directions).
    async fn put_member(&self, member: &Membership) -> StoreResult<()>;
    /// Removes a membership (both directions); removing a non-member is not an error.
    async fn remove_member(&self, room_id: Snowflake, user_id: Snowflake) -> StoreResult<()>;
    /// One membership.
    async fn member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<Membership>>;
    /// All members of a room, in join order.
    async fn room_members(&self, room_id: Snowflake) -> StoreResult<Vec<Membership>>;
    /// All rooms of a user.
    async fn user_rooms(&self, user_id: Snowflake) -> StoreResult<Vec<Membership>>;

    // ---- messages ----
    /// Appends messages (any rooms) and their nonce index entries atomically and durably.
    async fn append_messages(&self, messages: &[MessageRecord]) -> StoreResult<()>;
    /// One message by room and id.
    async fn message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>>;
    /// The room a message id belongs to (`messages_by_id`).
    async fn message_room(&self, id: Snowflake) -> StoreResult<Option<Snowflake>>;
    /// Up to `limit` messages with id < `before` (or the newest when `None`), newest first,
    /// walking back across buckets to the room's creation.
    async fn messages_before(
        &self,
        room_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Up to `limit` messages with id > `after`, oldest first (replay after reconnect).
    async fn messages_after(
        &self,
        room_id: Snowflake,
        after: Snowflake,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Turns a message into a tombstone (content cleared, `deleted_at` set).
    async fn tombstone_message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
        at: u64,
    ) -> StoreResult<()>;
    /// The message a (room, user, nonce) produced, if any.
    async fn message_by_nonce(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
        nonce: &str,
    ) -> StoreResult<Option<Snowflake>>;

    // ---- room event logs ----
    /// Takes a room over: bumps its ownership epoch and returns the new one. `after: None`
    /// bumps whatever the current epoch is (a new owner, one lightweight transaction on CQL);
    /// `Some(mine)` renews only if `mine` is still current (an owner retiring its own late
    /// writes after a failed one), else `Fenced`. Every later [`Store::commit_events`] of an
    /// older epoch fails with `Fenced`.
    async fn claim_room(&self, room_id: Snowflake, after: Option<u64>) -> StoreResult<u64>;
    /// Appends entries to room logs (any rooms, seqs in order per room) and upserts the
    /// messages they leave behind, with their by-id and nonce entries. Durable when it
    /// resolves; after a crash mid-way the log is the truth and [`Store::log_head`] repairs
    /// the messages from it. An entry whose `owner_epoch` is older than its room's current
    /// ownership epoch fails the call with `Fenced`, and then none of the call's messages are
    /// written; its log entries may be (CQL writes them first), but an entry never replaces
    /// one of a newer ownership epoch and readers skip entries that follow a newer one.
    async fn commit_events(&self, events: &[RoomEventRecord]) -> StoreResult<()>;
    /// The end of a room's log (`None` for a log never written), after making sure the
    /// messages agree with the log's last entries. The log is resolved as described at
    /// [`Store::commit_events`].
    async fn log_head(&self, room_id: Snowflake) -> StoreResult<Option<LogHead>>;
    /// [`Store::log_head`] for a new owner that took the room over with epoch `claimed`
    /// ([`Store::claim_room`] with `None`) and has written nothing since. A store may read
    /// less: an entry of epoch `claimed - 1` is its predecessor's, and no entry has a newer
    /// epoch, so a last entry of that epoch is the log's end without the fencing window.
    async fn log_head_after_claim(
        &self,
        room_id: Snowflake,
        claimed: u64,
    ) -> StoreResult<Option<LogHead>> {
        let _ = claimed;
        self.log_head(room_id).await
    }
    /// Up to `limit` log entries with seq > `after`, oldest first (resume after reconnect).
    async fn events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>>;

    // ---- read markers ----
    /// Stores a read marker (the caller only moves markers forward).
    async fn put_read_marker(&self, marker: &ReadMarker) -> StoreResult<()>;
    /// A user's marker in every room they have read something in.
    async fn read_markers(&self, user_id: Snowflake) -> StoreResult<Vec<ReadMarker>>;

    // ---- refresh tokens ----
    /// Stores a new refresh token.
    async fn put_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()>;
    /// Looks a refresh token up.
    async fn refresh_token(&self, id: &str) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Marks a token used; `false` if it was already used or revoked (compare-and-set, so two
    /// racing refreshes cannot both win).
    async fn use_refresh_token(&self, id: &str) -> StoreResult<bool>;
    /// Revokes every token of a family.
    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()>;

    // ---- blocks and contact settings ----
    /// `user_id` blocks `blocked_id` (again: the first time is kept).
    async fn put_block(&self, block: &BlockRecord) -> StoreResult<()>;
    /// Lifts a block; lifting one that does not exist is not an error.
    async fn remove_block(&self, user_id: Snowflake, blocked_id: Snowflake) -> StoreResult<()>;
    /// Whether `user_id` blocks `blocked_id`.
    async fn block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<Option<BlockRecord>>;
    /// Everyone `user_id` blocks, by blocked id.
    async fn blocks(&self, user_id: Snowflake) -> StoreResult<Vec<BlockRecord>>;
    /// A user's privacy settings (`None`: the defaults).
    async fn user_settings(&self, user_id: Snowflake) -> StoreResult<Option<UserSettings>>;
    /// Stores a user's privacy settings.
    async fn put_user_settings(&self, settings: &UserSettings) -> StoreResult<()>;

    // ---- communities ----
    /// Inserts a community with its `@everyone` role and its owner's membership.
    async fn create_community(
        &self,
        community: &CommunityRecord,
        everyone: &RoleRecord,
        owner: &CommunityMember,
    ) -> StoreResult<()>;
    /// Looks a community up by id.
    async fn community_by_id(&self, id: Snowflake) -> StoreResult<Option<CommunityRecord>>;
    /// Replaces a community's record; a community deleted meanwhile stays deleted.
    async fn update_community(&self, community: &CommunityRecord) -> StoreResult<()>;
    /// Deletes a community, its roles and its memberships (both directions and the name index).
    async fn delete_community(&self, id: Snowflake) -> StoreResult<()>;
    /// Inserts or replaces a role.
    async fn put_role(&self, role: &RoleRecord) -> StoreResult<()>;
    /// Deletes a role (members that still name it are not rewritten; it is ignored there).
    async fn delete_role(&self, community_id: Snowflake, role_id: Snowflake) -> StoreResult<()>;
    /// Every role of a community, by id.
    async fn community_roles(&self, community_id: Snowflake) -> StoreResult<Vec<RoleRecord>>;
    /// Inserts or replaces a membership (and the user's index entry).
    async fn put_community_member(&self, member: &CommunityMember) -> StoreResult<()>;
    /// Removes a membership; removing one that does not exist is not an error.
    async fn remove_community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()>;
    /// One membership.
    async fn community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<CommunityMember>>;
    /// A page of members by user id: those after `after` (from the first without), at most
    /// `limit`.
    async fn community_members(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<CommunityMember>>;
    /// A page of the name index (`community_member_names`): members whose lower-cased
    /// username starts with `prefix`, by that name then user id, after `after` (from the
    /// first without), at most `limit`. One range read: it never walks the other members.
    /// The index follows joins, leaves, kicks, bans, community deletions and renames.
    async fn community_members_by_name(
        &self,
        community_id: Snowflake,
        prefix: &NamePrefix,
        after: Option<&NameCursor>,
        limit: u32,
    ) -> StoreResult<Vec<MemberName>>;
    /// The communities `user_id` is a member of, by id.
    async fn user_communities(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>>;
    /// Inserts an invite; `Conflict{code}` if its code is taken.
    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()>;
    /// Looks an invite up by code.
    async fn invite(&self, code: &str) -> StoreResult<Option<InviteRecord>>;
    /// A community's invites (revoked and used up ones too), by code.
    async fn community_invites(&self, community_id: Snowflake) -> StoreResult<Vec<InviteRecord>>;
    /// Counts one use of the invite if it is usable at `now_ms` (compare-and-set: two people
    /// racing for its last use cannot both get it). Returns it as used, or `None` if it is
    /// unknown or not usable.
    async fn use_invite(&self, code: &str, now_ms: u64) -> StoreResult<Option<InviteRecord>>;
    /// Revokes an invite (unknown codes are not an error).
    async fn revoke_invite(&self, code: &str) -> StoreResult<()>;
    /// Bans a user (replacing an earlier ban's record) and removes their membership.
    async fn put_ban(&self, ban: &BanRecord) -> StoreResult<()>;
    /// Lifts a ban; lifting one that does not exist is not an error.
    async fn remove_ban(&self, community_id: Snowflake, user_id: Snowflake) -> StoreResult<()>;
    /// The ban of `user_id`, if any.
    async fn ban(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<BanRecord>>;
    /// A page of a community's bans by user id, after `after`, at most `limit`.
    async fn community_bans(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<BanRecord>>;
    /// Records a request to join; an earlier pending one of the same user stays.
    async fn put_join_request(&self, request: &JoinRequest) -> StoreResult<()>;
    /// Removes a request and returns it, once: of two takers of one request (two moderators
    /// answering at once) exactly one gets it.
    async fn take_join_request(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<JoinRequest>>;
    /// A page of a community's requests by user id, after `after`, at most `limit`.
    async fn join_requests(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<JoinRequest>>;
    /// `user`'s mention rows (written with their messages by `append_messages` and
    /// `commit_events`, one per user in `extra.mentions`), newest first, with message ids
    /// below `before`, at most `limit`. Rows are candidates: callers check the message.
    async fn user_mentions(
        &self,
        user_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MentionRecord>>;
    /// Writes mention rows made apart from their message (role and `@everyone` / `@here`
    /// mentions, written for each person reached once the message is stored). Idempotent.
    async fn put_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()>;
    /// Deletes mention rows (a mention edited away, a deleted message). Rows that are not
    /// there are ignored.
    async fn delete_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()>;
    /// Keeps `user`'s newest `keep` mention rows and deletes the older ones (bounds the
    /// user's partition); returns how many it deleted.
    async fn trim_user_mentions(&self, user_id: Snowflake, keep: u32) -> StoreResult<u64>;
    /// Sets a user's notification setting for one scope; a setting that inherits everything
    /// removes the scope's row.
    async fn put_notification_setting(
        &self,
        setting: &NotificationSettingRecord,
    ) -> StoreResult<()>;
    /// Every scope a user set (default, rooms, communities), by scope id.
    async fn notification_settings(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<NotificationSettingRecord>>;
    /// The deployment's VAPID key pair, if one was created.
    async fn vapid_keys(&self) -> StoreResult<Option<VapidKeyRecord>>;
    /// Stores `keys` as the deployment's VAPID key pair unless one exists (atomically: a
    /// conditional insert), and returns the pair that is stored now, so every node of a
    /// cluster that races here ends up with the same one.
    async fn create_vapid_keys(&self, keys: &VapidKeyRecord) -> StoreResult<VapidKeyRecord>;
    /// Registers a user's device, replacing the one with the same endpoint.
    async fn put_push_subscription(&self, sub: &PushSubscriptionRecord) -> StoreResult<()>;
    /// Forgets a user's device; whether it was registered.
    async fn delete_push_subscription(
        &self,
        user_id: Snowflake,
        endpoint: &str,
    ) -> StoreResult<bool>;
    /// A user's devices, by endpoint.
    async fn push_subscriptions(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<PushSubscriptionRecord>>;
    /// Places a channel (a room) in a community, or moves it (category, position).
    async fn put_channel(&self, channel: &ChannelRecord) -> StoreResult<()>;
    /// Takes a channel out of its community, with its overrides.
    async fn remove_channel(
        &self,
        community_id: Snowflake,
        channel_id: Snowflake,
    ) -> StoreResult<()>;
    /// A community's channels, by id.
    async fn community_channels(&self, community_id: Snowflake) -> StoreResult<Vec<ChannelRecord>>;
    /// The community a channel belongs to, if any.
    async fn channel_community(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>>;
    /// Inserts or replaces a category of a community's channels.
    async fn put_category(&self, category: &CategoryRecord) -> StoreResult<()>;
    /// Removes a category; its channels stay, in no category (not an error if there is none).
    async fn remove_category(
        &self,
        community_id: Snowflake,
        category_id: Snowflake,
    ) -> StoreResult<()>;
    /// A community's categories, by id.
    async fn community_categories(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<CategoryRecord>>;
    /// Inserts or replaces a channel's override for one role or member.
    async fn put_channel_overwrite(&self, overwrite: &ChannelOverwriteRecord) -> StoreResult<()>;
    /// Removes a channel's override for `target_id` (not an error if there is none).
    async fn remove_channel_overwrite(
        &self,
        channel_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<()>;
    /// A channel's overrides, by target id.
    async fn channel_overwrites(
        &self,
        channel_id: Snowflake,
    ) -> StoreResult<Vec<ChannelOverwriteRecord>>;
    /// Appends an entry to its community's audit log.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// A page of a community's audit log, newest first: entries older than `before` (from the
    /// newest without), at most `limit`.
    async fn audit_log(
        &self,
        community_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;

    // ---- lifecycle ----
    /// Makes everything written so far durable (used at shutdown).
    async fn flush(&self) -> StoreResult<()>;
}
