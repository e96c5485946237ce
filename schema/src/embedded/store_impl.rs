//! The [`Store`] on the embedded store: writes go to the writer thread as [`Op`]s, reads go
//! straight to the [`Reader`](super::read::Reader).

use async_trait::async_trait;
use voiceflow_wire::Snowflake;

use super::community::CommunityOp;
use super::writer::{Op, Reply};
use super::{EmbeddedStore, notify, push};
use crate::community::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, CommunityMember,
    CommunityRecord, InviteRecord, JoinRequest, RoleRecord,
};
use crate::contacts::{BlockRecord, UserSettings};
use crate::member_names::{MemberName, NameCursor, NamePrefix};
use crate::model::*;
use crate::notify::{MentionRecord, NotificationSettingRecord};
use crate::push::{PushSubscriptionRecord, VapidKeyRecord};
use crate::store::{Store, StoreError, StoreResult};

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.write(Op::CreateUser(user.clone())).await
    }

    async fn user_by_id(&self, id: Snowflake) -> StoreResult<Option<UserRecord>> {
        self.reader.user_by_id(id)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.reader.user_by_email(email)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.reader.user_by_username(username)
    }

    /// Replaces a user record, moving the username and email indexes if they changed. An
    /// unknown id is a no-op (users are never deleted, so there is nothing to resurrect).
    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.write(Op::UpdateUser(user.clone())).await
    }

    async fn create_room(&self, room: &RoomRecord, creator: &Membership) -> StoreResult<()> {
        self.write(Op::CreateRoom(room.clone(), creator.clone()))
            .await
    }

    async fn room_by_id(&self, id: Snowflake) -> StoreResult<Option<RoomRecord>> {
        self.reader.room_by_id(id)
    }

    async fn room_by_code(&self, code: &str) -> StoreResult<Option<RoomRecord>> {
        self.reader.room_by_code(code)
    }

    /// Replaces a room record and its public-listing entry. An unknown (e.g. concurrently
    /// deleted) room is a no-op, so an update never resurrects a deleted room.
    async fn update_room(&self, room: &RoomRecord) -> StoreResult<()> {
        self.write(Op::UpdateRoom(room.clone())).await
    }

    async fn delete_room(&self, id: Snowflake) -> StoreResult<()> {
        self.write(Op::DeleteRoom(id)).await
    }

    async fn list_public_rooms(&self, offset: u64, limit: u32) -> StoreResult<RoomPage> {
        self.reader.list_public_rooms(offset, limit)
    }

    async fn put_member(&self, member: &Membership) -> StoreResult<()> {
        self.write(Op::PutMember(member.clone())).await
    }

    async fn remove_member(&self, room_id: Snowflake, user_id: Snowflake) -> StoreResult<()> {
        self.write(Op::RemoveMember(room_id, user_id)).await
    }

    async fn member(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<Membership>> {
        self.reader.member(room_id, user_id)
    }

    async fn room_members(&self, room_id: Snowflake) -> StoreResult<Vec<Membership>> {
        self.reader.room_members(room_id)
    }

    async fn user_rooms(&self, user_id: Snowflake) -> StoreResult<Vec<Membership>> {
        self.reader.user_rooms(user_id)
    }

    async fn append_messages(&self, messages: &[MessageRecord]) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.write(Op::AppendMessages(messages.to_vec())).await
    }

    async fn message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
    ) -> StoreResult<Option<MessageRecord>> {
        self.reader.message(room_id, id)
    }

    async fn message_room(&self, id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.reader.message_room(id)
    }

    async fn messages_before(
        &self,
        room_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.reader.messages_before(room_id, before, limit)
    }

    async fn messages_after(
        &self,
        room_id: Snowflake,
        after: Snowflake,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        self.reader.messages_after(room_id, after, limit)
    }

    /// Clears the content and sets `deleted_at` (kept from the first deletion if repeated);
    /// the message stays in the log. An unknown message is a no-op.
    async fn tombstone_message(
        &self,
        room_id: Snowflake,
        id: Snowflake,
        at: u64,
    ) -> StoreResult<()> {
        self.write(Op::Tombstone { room_id, id, at }).await
    }

    async fn message_by_nonce(
        &self,
        room_id: Snowflake,
        user_id: Snowflake,
        nonce: &str,
    ) -> StoreResult<Option<Snowflake>> {
        self.reader.message_by_nonce(room_id, user_id, nonce)
    }

    async fn claim_room(&self, room_id: Snowflake, after: Option<u64>) -> StoreResult<u64> {
        match self.submit(Op::ClaimRoom(room_id, after)).await? {
            Reply::Number(epoch) => Ok(epoch),
            Reply::Done | Reply::Bool(_) => Err(StoreError::Corrupt(
                "claim_room answered without an epoch".into(),
            )),
        }
    }

    async fn commit_events(&self, events: &[RoomEventRecord]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(Op::CommitEvents(events.to_vec())).await
    }

    async fn log_head(&self, room_id: Snowflake) -> StoreResult<Option<LogHead>> {
        self.reader.log_head(room_id)
    }

    async fn events_after(
        &self,
        room_id: Snowflake,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<RoomEventRecord>> {
        self.reader.events_after(room_id, after, limit)
    }

    async fn put_read_marker(&self, marker: &ReadMarker) -> StoreResult<()> {
        self.write(Op::PutReadMarker(marker.clone())).await
    }

    async fn read_markers(&self, user_id: Snowflake) -> StoreResult<Vec<ReadMarker>> {
        self.reader.read_markers(user_id)
    }

    async fn put_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        self.write(Op::PutRefreshToken(token.clone())).await
    }

    async fn refresh_token(&self, id: &str) -> StoreResult<Option<RefreshTokenRecord>> {
        self.reader.refresh_token(id)
    }

    /// Compare-and-set on the writer thread: `true` for exactly one caller per unused,
    /// unrevoked token; `false` for unknown, used or revoked tokens. Expiry is not checked.
    async fn use_refresh_token(&self, id: &str) -> StoreResult<bool> {
        match self.submit(Op::UseRefreshToken(id.to_owned())).await? {
            Reply::Bool(won) => Ok(won),
            Reply::Done | Reply::Number(_) => {
                Err(StoreError::Unavailable("unexpected writer reply".into()))
            }
        }
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        self.write(Op::RevokeFamily(family_id.to_owned())).await
    }

    async fn put_block(&self, block: &BlockRecord) -> StoreResult<()> {
        self.write(Op::PutBlock(block.clone())).await
    }

    async fn remove_block(&self, user_id: Snowflake, blocked_id: Snowflake) -> StoreResult<()> {
        self.write(Op::RemoveBlock(user_id, blocked_id)).await
    }

    async fn block(
        &self,
        user_id: Snowflake,
        blocked_id: Snowflake,
    ) -> StoreResult<Option<BlockRecord>> {
        self.reader.block(user_id, blocked_id)
    }

    async fn blocks(&self, user_id: Snowflake) -> StoreResult<Vec<BlockRecord>> {
        self.reader.blocks(user_id)
    }

    async fn user_settings(&self, user_id: Snowflake) -> StoreResult<Option<UserSettings>> {
        self.reader.user_settings(user_id)
    }

    async fn put_user_settings(&self, settings: &UserSettings) -> StoreResult<()> {
        self.write(Op::PutUserSettings(settings.clone())).await
    }

    async fn create_community(
        &self,
        community: &CommunityRecord,
        everyone: &RoleRecord,
        owner: &CommunityMember,
    ) -> StoreResult<()> {
        let op = CommunityOp::Create(community.clone(), everyone.clone(), owner.clone());
        self.write(Op::Community(op)).await
    }

    async fn community_by_id(&self, id: Snowflake) -> StoreResult<Option<CommunityRecord>> {
        self.reader.community(id)
    }

    async fn update_community(&self, community: &CommunityRecord) -> StoreResult<()> {
        let op = CommunityOp::Update(community.clone());
        self.write(Op::Community(op)).await
    }

    async fn delete_community(&self, id: Snowflake) -> StoreResult<()> {
        self.write(Op::Community(CommunityOp::Delete(id))).await
    }

    async fn put_role(&self, role: &RoleRecord) -> StoreResult<()> {
        let op = CommunityOp::PutRole(role.clone());
        self.write(Op::Community(op)).await
    }

    async fn delete_role(&self, community_id: Snowflake, role_id: Snowflake) -> StoreResult<()> {
        let op = CommunityOp::DeleteRole(community_id, role_id);
        self.write(Op::Community(op)).await
    }

    async fn community_roles(&self, community_id: Snowflake) -> StoreResult<Vec<RoleRecord>> {
        self.reader.community_roles(community_id)
    }

    async fn put_community_member(&self, member: &CommunityMember) -> StoreResult<()> {
        let op = CommunityOp::PutMember(member.clone());
        self.write(Op::Community(op)).await
    }

    async fn remove_community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()> {
        let op = CommunityOp::RemoveMember(community_id, user_id);
        self.write(Op::Community(op)).await
    }

    async fn community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<CommunityMember>> {
        self.reader.community_member(community_id, user_id)
    }

    async fn community_members(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<CommunityMember>> {
        self.reader.community_members(community_id, after, limit)
    }

    async fn community_members_by_name(
        &self,
        community_id: Snowflake,
        prefix: &NamePrefix,
        after: Option<&NameCursor>,
        limit: u32,
    ) -> StoreResult<Vec<MemberName>> {
        self.reader
            .community_members_by_name(community_id, prefix, after, limit)
    }

    async fn user_communities(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        self.reader.user_communities(user_id)
    }

    async fn create_invite(&self, invite: &InviteRecord) -> StoreResult<()> {
        let op = CommunityOp::CreateInvite(invite.clone());
        self.write(Op::Community(op)).await
    }

    async fn invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        self.reader.invite(code)
    }

    async fn community_invites(&self, community_id: Snowflake) -> StoreResult<Vec<InviteRecord>> {
        self.reader.community_invites(community_id)
    }

    async fn use_invite(&self, code: &str, now_ms: u64) -> StoreResult<Option<InviteRecord>> {
        let op = CommunityOp::UseInvite(code.to_owned(), now_ms);
        match self.submit(Op::Community(op)).await? {
            Reply::Bool(true) => self.reader.invite(code),
            _ => Ok(None),
        }
    }

    async fn revoke_invite(&self, code: &str) -> StoreResult<()> {
        let op = CommunityOp::RevokeInvite(code.to_owned());
        self.write(Op::Community(op)).await
    }

    async fn put_ban(&self, ban: &BanRecord) -> StoreResult<()> {
        self.write(Op::Community(CommunityOp::PutBan(ban.clone())))
            .await
    }

    async fn remove_ban(&self, community_id: Snowflake, user_id: Snowflake) -> StoreResult<()> {
        let op = CommunityOp::RemoveBan(community_id, user_id);
        self.write(Op::Community(op)).await
    }

    async fn ban(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<BanRecord>> {
        self.reader.ban(community_id, user_id)
    }

    async fn community_bans(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<BanRecord>> {
        self.reader.community_bans(community_id, after, limit)
    }

    async fn put_join_request(&self, request: &JoinRequest) -> StoreResult<()> {
        let op = CommunityOp::PutJoinRequest(request.clone());
        self.write(Op::Community(op)).await
    }

    async fn take_join_request(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<JoinRequest>> {
        let Some(request) = self.reader.join_request(community_id, user_id)? else {
            return Ok(None);
        };
        // The writer decides which of two takers removed it.
        let op = CommunityOp::TakeJoinRequest(community_id, user_id);
        match self.submit(Op::Community(op)).await? {
            Reply::Bool(true) => Ok(Some(request)),
            _ => Ok(None),
        }
    }

    async fn join_requests(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<JoinRequest>> {
        self.reader.join_requests(community_id, after, limit)
    }

    async fn user_mentions(
        &self,
        user_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<MentionRecord>> {
        self.reader.user_mentions(user_id, before, limit)
    }

    async fn put_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(Op::Mentions(notify::MentionOp::Put(rows.to_vec())))
            .await
    }

    async fn delete_user_mentions(&self, rows: &[MentionRecord]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(Op::Mentions(notify::MentionOp::Delete(rows.to_vec())))
            .await
    }

    async fn trim_user_mentions(&self, user_id: Snowflake, keep: u32) -> StoreResult<u64> {
        match self
            .submit(Op::Mentions(notify::MentionOp::Trim(user_id, keep)))
            .await?
        {
            Reply::Number(n) => Ok(n),
            Reply::Done | Reply::Bool(_) => Err(StoreError::Corrupt(
                "trim_user_mentions: the writer answered without a count".into(),
            )),
        }
    }

    async fn put_notification_setting(
        &self,
        setting: &NotificationSettingRecord,
    ) -> StoreResult<()> {
        self.write(Op::PutNotificationSetting(*setting)).await
    }

    async fn notification_settings(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<NotificationSettingRecord>> {
        self.reader.notification_settings(user_id)
    }

    async fn vapid_keys(&self) -> StoreResult<Option<VapidKeyRecord>> {
        self.reader.vapid_keys()
    }

    async fn create_vapid_keys(&self, keys: &VapidKeyRecord) -> StoreResult<VapidKeyRecord> {
        self.write(Op::Push(push::PushOp::CreateVapid(keys.clone())))
            .await?;
        self.reader.vapid_keys()?.ok_or_else(|| {
            StoreError::Unavailable("VAPID keys not readable after their write".into())
        })
    }

    async fn put_push_subscription(&self, sub: &PushSubscriptionRecord) -> StoreResult<()> {
        self.write(Op::Push(push::PushOp::PutSubscription(sub.clone())))
            .await
    }

    async fn delete_push_subscription(
        &self,
        user_id: Snowflake,
        endpoint: &str,
    ) -> StoreResult<bool> {
        let op = push::PushOp::DeleteSubscription(user_id, endpoint.to_owned());
        match self.submit(Op::Push(op)).await? {
            Reply::Bool(there) => Ok(there),
            Reply::Done | Reply::Number(_) => Ok(false),
        }
    }

    async fn push_subscriptions(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<PushSubscriptionRecord>> {
        self.reader.push_subscriptions(user_id)
    }

    async fn put_channel(&self, channel: &ChannelRecord) -> StoreResult<()> {
        let op = CommunityOp::PutChannel(channel.clone());
        self.write(Op::Community(op)).await
    }

    async fn remove_channel(
        &self,
        community_id: Snowflake,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        let op = CommunityOp::RemoveChannel(community_id, channel_id);
        self.write(Op::Community(op)).await
    }

    async fn community_channels(&self, community_id: Snowflake) -> StoreResult<Vec<ChannelRecord>> {
        self.reader.community_channels(community_id)
    }

    async fn channel_community(&self, channel_id: Snowflake) -> StoreResult<Option<Snowflake>> {
        self.reader.channel_community(channel_id)
    }

    async fn put_category(&self, category: &CategoryRecord) -> StoreResult<()> {
        let op = CommunityOp::PutCategory(category.clone());
        self.write(Op::Community(op)).await
    }

    async fn remove_category(
        &self,
        community_id: Snowflake,
        category_id: Snowflake,
    ) -> StoreResult<()> {
        let op = CommunityOp::RemoveCategory(community_id, category_id);
        self.write(Op::Community(op)).await
    }

    async fn community_categories(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<CategoryRecord>> {
        self.reader.community_categories(community_id)
    }

    async fn put_channel_overwrite(&self, overwrite: &ChannelOverwriteRecord) -> StoreResult<()> {
        let op = CommunityOp::PutOverwrite(overwrite.clone());
        self.write(Op::Community(op)).await
    }

    async fn remove_channel_overwrite(
        &self,
        channel_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<()> {
        let op = CommunityOp::RemoveOverwrite(channel_id, target_id);
        self.write(Op::Community(op)).await
    }

    async fn channel_overwrites(
        &self,
        channel_id: Snowflake,
    ) -> StoreResult<Vec<ChannelOverwriteRecord>> {
        self.reader.channel_overwrites(channel_id)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let op = CommunityOp::AppendAudit(entry.clone());
        self.write(Op::Community(op)).await
    }

    async fn audit_log(
        &self,
        community_id: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.reader.audit_log(community_id, before, limit)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.write(Op::Flush).await
    }
}
