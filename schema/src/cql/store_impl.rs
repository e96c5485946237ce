//! The [`Store`] on CQL: each method delegates to the module that owns its tables.

use async_trait::async_trait;
use voiceflow_wire::Snowflake;

use super::CqlStore;
use crate::community::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, CommunityMember,
    CommunityRecord, InviteRecord, JoinRequest, RoleRecord,
};
use crate::contacts::{BlockRecord, UserSettings};
use crate::member_names::{MemberName, NameCursor, NamePrefix};
use crate::model::*;
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::push::{PushSubscriptionRecord, VapidKeyRecord};
use crate::store::{Store, StoreResult};

#[async_trait]
impl Store for CqlStore {
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.cql.create_user(user).await
    }

    async fn user_by_id(&self, id: Snowflake) -> StoreResult<Option<UserRecord>> {
        self.cql.user_by_id(id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.cql.user_by_email(email).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.cql.user_by_username(username).await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.cql.update_user(user).await
    }

    async fn create_room(&self, room: &RoomRecord, creator: &Membership) -> StoreResult<()> {
        self.cql.create_room(room, creator).await
    }

    async fn room_by_id(&self, id: Snowflake) -> StoreResult<Option<RoomRecord>> {
        self.cql.room_by_id(id).await
    }

    async fn room_by_code(&self, code: &str) -> StoreResult<Option<RoomRecord>> {
        self.cql.room_by_code(code).await
    }

    async fn update_room(&self, room: &RoomRecord) -> StoreResult<()> {
        self.cql.update_room(room).await
    }

    async fn delete_room(&self, id: Snowflake) -> StoreResult<()> {
        self.cql.delete_room(id).await?;
        self.cql.delete_events(id).await
    }

    async fn list_public_rooms(&self, offset: u64, limit: u32) -> StoreResult<RoomPage> {
        self.cql.list_public_rooms(offset, limit).await
    }

    async fn put_member(&self, member: &Membership) -> StoreResult<()> {
        self.cql.put_member(member).await
    }

    async fn remove_member(&self, room_id: Snowflake, user_id: Snowflake) -> StoreResult<()> {
        self.cql.remove_member(room_id, user_id).await
    }

    async fn member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<Membership>> {
        self.cql.member(room_id, user_id).await
    }

    async fn room_members(&self, room_id: Snowflake) -> StoreResult<Vec<Membership>> {
        self.cql.room_members(room_id).await
    }

    async fn user_rooms(&self, user_id: Snowflake) -> StoreResult<Vec<Membership>> {
        self.cql.user_rooms(user_id).await
    }

    async fn append_messages(&self, messages: &[MessageRecord]) -> StoreResult<()> {
        self.commit.append(&self.cql, messages).await
    }

    async fn message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.cql.message(room_id, id).await
    }

    async fn message_room(&self, id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.cql.message_room(id).await
    }

    async fn messages_before(
        &self,
        room_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.cql.messages_before(room_id, before, limit).await
    }

    async fn messages_after(
        &self,
        room_id: Snowflake,
        after: Snowflake,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.cql.messages_after(room_id, after, limit).await
    }

    async fn tombstone_message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
        at: u64,
    ) -> StoreResult<()> {
        self.cql.tombstone_message(room_id, id, at).await
    }

    async fn message_by_nonce(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
        nonce: &str,
    ) -> StoreResult<Option<Snowflake>> {
        self.cql.message_by_nonce(room_id, user_id, nonce).await
    }

    async fn claim_room(&self, room_id: Snowflake, after: Option<u64>) -> StoreResult<u64> {
        self.cql.claim_room(room_id, after).await
    }

    async fn commit_events(&self, events: &[RoomEventRecord]) -> StoreResult<()> {
        self.cql.commit_events(events).await
    }

    async fn log_head(&self, room_id: Snowflake) -> StoreResult<Option<LogHead>> {
        self.cql.log_head(room_id, None).await
    }

    async fn log_head_after_claim(
        &self,
        room_id: Snowflake,
        claimed: u64,
    ) -> StoreResult<Option<LogHead>> {
        self.cql.log_head(room_id, Some(claimed)).await
    }

    async fn events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        self.cql.events_after(room_id, after, limit).await
    }

    async fn put_read_marker(&self, marker: &ReadMarker) -> StoreResult<()> {
        self.cql.put_read_marker(marker).await
    }

    async fn read_markers(&self, user_id: Snowflake) -> StoreResult<Vec<ReadMarker>> {
        self.cql.read_markers(user_id).await
    }

    async fn put_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        self.cql.put_refresh_token(token).await
    }

    async fn refresh_token(&self, id: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        self.cql.refresh_token(id).await
    }

    async fn use_refresh_token(&self, id: &str) -> StoreResult<bool> {
        self.cql.use_refresh_token(id).await
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        self.cql.revoke_refresh_family(family_id).await
    }

    async fn put_block(&self, block: &BlockRecord) -> StoreResult<()> {
        self.cql.put_block(block).await
    }

    async fn remove_block(&self, user_id: Snowflake, blocked_id: Snowflake) -> StoreResult<()> {
        self.cql.remove_block(user_id, blocked_id).await
    }

    async fn block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<Option<BlockRecord>> {
        self.cql.block(user_id, blocked_id).await
    }

    async fn blocks(&self, user_id: Snowflake) -> StoreResult<Vec<BlockRecord>> {
        self.cql.blocks(user_id).await
    }

    async fn user_settings(&self, user_id: Snowflake) -> StoreResult<Option<UserSettings>> {
        self.cql.user_settings(user_id).await
    }

    async fn put_user_settings(&self, settings: &UserSettings) -> StoreResult<()> {
        self.cql.put_user_settings(settings).await
    }

    /// Every write was acknowledged by the cluster when its future resolved; this waits until
    /// appends still queued for group commit are acknowledged too.
    async fn create_community(
        &self,
        community: &CommunityRecord,
        everyone: &RoleRecord,
        owner: &CommunityMember,
    ) -> StoreResult<()> {
        self.cql.create_community(community, everyone, owner).await
    }

    async fn community_by_id(&self, id: Snowflake) -> StoreResult<Option<CommunityRecord>> {
        self.cql.community_by_id(id).await
    }

    async fn update_community(&self, community: &CommunityRecord) -> StoreResult<()> {
        self.cql.update_community(community).await
    }

    async fn delete_community(&self, id: Snowflake) -> StoreResult<()> {
        self.cql.delete_community(id).await
    }

    async fn put_role(&self, role: &RoleRecord) -> StoreResult<()> {
        self.cql.put_role(role).await
    }

    async fn delete_role(&self, community_id: Snowflake, role_id: Snowflake) -> StoreResult<()> {
        self.cql.delete_role(community_id, role_id).await
    }

    async fn community_roles(&self, community_id: Snowflake) -> StoreResult<Vec<RoleRecord>> {
        self.cql.community_roles(community_id).await
    }

    async fn put_community_member(&self, member: &CommunityMember) -> StoreResult<()> {
        self.cql.put_community_member(member).await
    }

    async fn remove_community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()> {
        self.cql
            .remove_community_member(community_id, user_id)
            .await
    }

    async fn community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<CommunityMember>> {
        self.cql.community_member(community_id, user_id).await
    }

    async fn community_members(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<CommunityMember>> {
        self.cql.community_members(community_id, after, limit).await
    }

    async fn community_members_by_name(
        &self,
        community_id: Snowflake,
        prefix: &NamePrefix,
        after: Option<&NameCursor>,
        limit: u32,
    ) -> StoreResult<Vec<MemberName>> {
        self.cql
            .community_members_by_name(community_id, prefix, after, limit)
            .await
    }

    async fn user_communities(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.cql.user_communities(user_id).await
    }

    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()> {
        self.cql.create_invite(invite).await
    }

    async fn invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        self.cql.invite(code).await
    }

    async fn community_invites(&self, community_id: Snowflake) -> StoreResult<Vec<InviteRecord>> {
        self.cql.community_invites(community_id).await
    }

    async fn use_invite(&self, code: &str, now_ms: u64) -> StoreResult<Option<InviteRecord>> {
        self.cql.use_invite(code, now_ms).await
    }

    async fn revoke_invite(&self, code: &str) -> StoreResult<()> {
        self.cql.revoke_invite(code).await
    }

    async fn put_ban(&self, ban: &BanRecord) -> StoreResult<()> {
        self.cql.put_ban(ban).await
    }

    async fn remove_ban(&self, community_id: Snowflake, user_id: Snowflake) -> StoreResult<()> {
        self.cql.remove_ban(community_id, user_id).await
    }

    async fn ban(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<BanRecord>> {
        self.cql.ban(community_id, user_id).await
    }

    async fn community_bans(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<BanRecord>> {
        self.cql.community_bans(community_id, after, limit).await
    }

    async fn put_join_request(&self, request: &JoinRequest) -> StoreResult<()> {
        self.cql.put_join_request(request).await
    }

    async fn take_join_request(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<JoinRequest>> {
        self.cql.take_join_request(community_id, user_id).await
    }

    async fn join_requests(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<JoinRequest>> {
        self.cql.join_requests(community_id, after, limit).await
    }

    async fn user_mentions(
        &self,
        user_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MentionRecord>> {
        self.cql.user_mentions(user_id, before, limit).await
    }

    async fn put_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        self.cql.put_user_mentions(rows).await
    }

    async fn delete_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        self.cql.delete_user_mentions(rows).await
    }

    async fn trim_user_mentions(&self, user_id: Snowflake, keep: u32) -> StoreResult<u64> {
        self.cql.trim_user_mentions(user_id, keep).await
    }

    async fn put_notification_setting(
        &self,
        setting: &NotificationSettingRecord,
    ) -> StoreResult<()> {
        self.cql.put_notification_setting(setting).await
    }

    async fn notification_settings(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<NotificationSettingRecord>> {
        self.cql.notification_settings(user_id).await
    }

    async fn vapid_keys(&self) -> StoreResult<Option<VapidKeyRecord>> {
        self.cql.vapid_keys().await
    }

    async fn create_vapid_keys(&self, keys: &VapidKeyRecord) -> StoreResult<VapidKeyRecord> {
        self.cql.create_vapid_keys(keys).await
    }

    async fn put_push_subscription(&self, sub: &PushSubscriptionRecord) -> StoreResult<()> {
        self.cql.put_push_subscription(sub).await
    }

    async fn delete_push_subscription(
        &self,
        user_id: Snowflake,
        endpoint: &str,
    ) -> StoreResult<bool> {
        self.cql.delete_push_subscription(user_id, endpoint).await
    }

    async fn push_subscriptions(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<PushSubscriptionRecord>> {
        self.cql.push_subscriptions(user_id).await
    }

    async fn put_channel(&self, channel: &ChannelRecord) -> StoreResult<()> {
        self.cql.put_channel(channel).await
    }

    async fn remove_channel(
        &self,
        community_id: Snowflake,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        self.cql.remove_channel(community_id, channel_id).await
    }

    async fn community_channels(&self, community_id: Snowflake) -> StoreResult<Vec<ChannelRecord>> {
        self.cql.community_channels(community_id).await
    }

    async fn channel_community(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.cql.channel_community(channel_id).await
    }

    async fn put_category(&self, category: &CategoryRecord) -> StoreResult<()> {
        self.cql.put_category(category).await
    }

    async fn remove_category(
        &self,
        community_id: Snowflake,
        category_id: Snowflake,
    ) -> StoreResult<()> {
        self.cql.remove_category(community_id, category_id).await
    }

    async fn community_categories(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<CategoryRecord>> {
        self.cql.community_categories(community_id).await
    }

    async fn put_channel_overwrite(&self, overwrite: &ChannelOverwriteRecord) -> StoreResult<()> {
        self.cql.put_channel_overwrite(overwrite).await
    }

    async fn remove_channel_overwrite(
        &self,
        channel_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<()> {
        self.cql
            .remove_channel_overwrite(channel_id, target_id)
            .await
    }

    async fn channel_overwrites(
        &self,
        channel_id: Snowflake,
    ) -> StoreResult<Vec<ChannelOverwriteRecord>> {
        self.cql.channel_overwrites(channel_id).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.cql.append_audit(entry).await
    }

    async fn audit_log(
        &self,
        community_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.cql.audit_log(community_id, before, limit).await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.commit.idle().await;
        Ok(())
    }
}
