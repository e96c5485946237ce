//! Communities in the embedded store: their ops (run on the writer thread against the staged
//! view) and reads. Keyspaces: `communities` (id → record), `community_roles` (community ‖
//! role → record), `community_members` (community ‖ user → record) and `user_communities`
//! (user ‖ community → empty), `invites` (code → record) and `community_invites`
//! (community ‖ code → empty), as in `schema/cql/008_communities.cql`, and
//! `community_join_requests` (community ‖ user → request, `010_join_requests.cql`); the member
//! name index is `member_names.rs`.

use std::ops::Bound;

use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, decode, encode, id_bytes, io, pair_key, trailing_id};
use super::writer::{Reply, Staged};
use crate::community::{
    AuditEntry, BanRecord, CategoryRecord, ChannelOverwriteRecord, ChannelRecord, CommunityMember,
    CommunityRecord, InviteRecord, JoinRequest, RoleRecord,
};
use crate::store::{StoreError, StoreResult};

/// A change to communities, as queued for the writer.
#[derive(Debug, Clone)]
pub(crate) enum CommunityOp {
    /// `create_community`.
    Create(CommunityRecord, RoleRecord, CommunityMember),
    /// `update_community`.
    Update(CommunityRecord),
    /// `delete_community`.
    Delete(Snowflake),
    /// `put_role`.
    PutRole(RoleRecord),
    /// `delete_role`: community, role.
    DeleteRole(Snowflake, Snowflake),
    /// `put_community_member`.
    PutMember(CommunityMember),
    /// `remove_community_member`: community, user.
    RemoveMember(Snowflake, Snowflake),
    /// `create_invite`.
    CreateInvite(InviteRecord),
    /// `use_invite`: code, now.
    UseInvite(String, u64),
    /// `revoke_invite`.
    RevokeInvite(String),
    /// `append_audit`.
    AppendAudit(AuditEntry),
    /// `put_ban`.
    PutBan(BanRecord),
    /// `remove_ban`: community, user.
    RemoveBan(Snowflake, Snowflake),
    /// `put_channel`.
    PutChannel(ChannelRecord),
    /// `remove_channel`: community, channel.
    RemoveChannel(Snowflake, Snowflake),
    /// `put_channel_overwrite`.
    PutOverwrite(ChannelOverwriteRecord),
    /// `remove_channel_overwrite`: channel, target.
    RemoveOverwrite(Snowflake, Snowflake),
    /// `put_category`.
    PutCategory(CategoryRecord),
    /// `remove_category`: community, category.
    RemoveCategory(Snowflake, Snowflake),
    /// `put_join_request`.
    PutJoinRequest(JoinRequest),
    /// `take_join_request`: community, user; answers whether there was one.
    TakeJoinRequest(Snowflake, Snowflake),
}

/// Applies one community op to `s`.
pub(crate) fn apply(s: &mut Staged<'_>, op: CommunityOp) -> StoreResult<Reply> {
    match op {
        CommunityOp::Create(community, everyone, owner) => {
            s.put(
                Table::Communities,
                id_bytes(community.id).to_vec(),
                encode(&community)?,
            );
            put_role(s, &everyone)?;
            put_member(s, &owner)?;
        }
        CommunityOp::Update(community) => {
            let key = id_bytes(community.id);
            if s.get(Table::Communities, &key)?.is_some() {
                s.put(Table::Communities, key.to_vec(), encode(&community)?);
            }
        }
        CommunityOp::Delete(id) => {
            let key = id_bytes(id);
            s.remove(Table::Communities, key.to_vec());
            for role in s.keys_with_prefix(Table::CommunityRoles, &key)? {
                s.remove(Table::CommunityRoles, role);
            }
            super::member_names::drop_community(s, id)?;
            for member in s.keys_with_prefix(Table::CommunityMembers, &key)? {
                let user = trailing_id(&member)?;
                s.remove(Table::UserCommunities, pair_key(user, id));
                s.remove(Table::CommunityMembers, member);
            }
            for entry in s.keys_with_prefix(Table::CommunityChannels, &key)? {
                remove_channel(s, id, trailing_id(&entry)?)?;
            }
            for entry in s.keys_with_prefix(Table::CommunityBans, &key)? {
                s.remove(Table::CommunityBans, entry);
            }
            for entry in s.keys_with_prefix(Table::CommunityCategories, &key)? {
                s.remove(Table::CommunityCategories, entry);
            }
            for entry in s.keys_with_prefix(Table::CommunityAudit, &key)? {
                s.remove(Table::CommunityAudit, entry);
            }
            for entry in s.keys_with_prefix(Table::CommunityJoinRequests, &key)? {
                s.remove(Table::CommunityJoinRequests, entry);
            }
            for entry in s.keys_with_prefix(Table::CommunityInvites, &key)? {
                if let Some(code) = entry.get(key.len()..) {
                    s.remove(Table::Invites, code.to_vec());
                }
                s.remove(Table::CommunityInvites, entry);
            }
        }
        CommunityOp::PutRole(role) => put_role(s, &role)?,
        CommunityOp::DeleteRole(community, role) => {
            s.remove(Table::CommunityRoles, pair_key(community, role));
        }
        CommunityOp::PutMember(member) => put_member(s, &member)?,
        CommunityOp::RemoveMember(community, user) => {
            if s.get(Table::CommunityMembers, &pair_key(community, user))?
                .is_some()
            {
                super::member_names::unindex(s, community, user)?;
            }
            s.remove(Table::CommunityMembers, pair_key(community, user));
            s.remove(Table::UserCommunities, pair_key(user, community));
        }
        CommunityOp::CreateInvite(invite) => {
            let key = invite.code.as_bytes().to_vec();
            match s.get(Table::Invites, &key)? {
                // The same invite again (a retried create) is not a conflict.
                Some(old) if decode::<InviteRecord>(&old)? != invite => {
                    return Err(StoreError::Conflict { field: "code" });
                }
                _ => {}
            }
            s.put(Table::Invites, key.clone(), encode(&invite)?);
            let mut entry = id_bytes(invite.community_id).to_vec();
            entry.extend_from_slice(&key);
            s.put(Table::CommunityInvites, entry, Vec::new());
        }
        CommunityOp::UseInvite(code, now) => {
            let key = code.into_bytes();
            let Some(raw) = s.get(Table::Invites, &key)? else {
                return Ok(Reply::Bool(false));
            };
            let mut invite: InviteRecord = decode(&raw)?;
            if !invite.usable(now) {
                return Ok(Reply::Bool(false));
            }
            invite.uses += 1;
            s.put(Table::Invites, key, encode(&invite)?);
            return Ok(Reply::Bool(true));
        }
        CommunityOp::PutBan(ban) => {
            let (community, user) = (ban.community_id, ban.user_id);
            s.put(
                Table::CommunityBans,
                pair_key(community, user),
                encode(&ban)?,
            );
            if s.get(Table::CommunityMembers, &pair_key(community, user))?
                .is_some()
            {
                super::member_names::unindex(s, community, user)?;
            }
            s.remove(Table::CommunityMembers, pair_key(community, user));
            s.remove(Table::UserCommunities, pair_key(user, community));
        }
        CommunityOp::PutChannel(channel) => {
            let (community, id) = (channel.community_id, channel.channel_id);
            s.put(
                Table::CommunityChannels,
                pair_key(community, id),
                encode(&channel)?,
            );
            s.put(
                Table::ChannelCommunities,
                id_bytes(id).to_vec(),
                id_bytes(community).to_vec(),
            );
        }
        CommunityOp::RemoveChannel(community, channel) => remove_channel(s, community, channel)?,
        CommunityOp::PutOverwrite(o) => {
            let key = pair_key(o.channel_id, o.target_id);
            s.put(Table::ChannelOverwrites, key, encode(&o)?);
        }
        CommunityOp::RemoveOverwrite(channel, target) => {
            s.remove(Table::ChannelOverwrites, pair_key(channel, target));
        }
        CommunityOp::PutCategory(category) => {
            let key = pair_key(category.community_id, category.id);
            s.put(Table::CommunityCategories, key, encode(&category)?);
        }
        CommunityOp::RemoveCategory(community, category) => {
            s.remove(Table::CommunityCategories, pair_key(community, category));
            // Its channels stay, in no category, in the same write.
            for entry in s.keys_with_prefix(Table::CommunityChannels, &id_bytes(community))? {
                let Some(raw) = s.get(Table::CommunityChannels, &entry)? else {
                    continue;
                };
                let mut channel: ChannelRecord = decode(&raw)?;
                if channel.category_id == Some(category) {
                    channel.category_id = None;
                    s.put(Table::CommunityChannels, entry, encode(&channel)?);
                }
            }
        }
        CommunityOp::PutJoinRequest(request) => {
            let key = pair_key(request.community_id, request.user_id);
            // An earlier pending request stays (as CQL's `IF NOT EXISTS` keeps it).
            if s.get(Table::CommunityJoinRequests, &key)?.is_none() {
                s.put(Table::CommunityJoinRequests, key, encode(&request)?);
            }
        }
        CommunityOp::TakeJoinRequest(community, user) => {
            let key = pair_key(community, user);
            let existed = s.get(Table::CommunityJoinRequests, &key)?.is_some();
            s.remove(Table::CommunityJoinRequests, key);
            return Ok(Reply::Bool(existed));
        }
        CommunityOp::RemoveBan(community, user) => {
            s.remove(Table::CommunityBans, pair_key(community, user));
        }
        CommunityOp::AppendAudit(entry) => {
            let key = pair_key(entry.community_id, entry.id);
            s.put(Table::CommunityAudit, key, encode(&entry)?);
        }
        CommunityOp::RevokeInvite(code) => {
            let key = code.into_bytes();
            if let Some(raw) = s.get(Table::Invites, &key)? {
                let mut invite: InviteRecord = decode(&raw)?;
                invite.revoked = true;
                s.put(Table::Invites, key, encode(&invite)?);
            }
        }
    }
    Ok(Reply::Done)
}

/// Takes `channel` out of `community`, with its overrides.
fn remove_channel(s: &mut Staged<'_>, community: Snowflake, channel: Snowflake) -> StoreResult<()> {
    s.remove(Table::CommunityChannels, pair_key(community, channel));
    s.remove(Table::ChannelCommunities, id_bytes(channel).to_vec());
    for entry in s.keys_with_prefix(Table::ChannelOverwrites, &id_bytes(channel))? {
        s.remove(Table::ChannelOverwrites, entry);
    }
    Ok(())
}

fn put_role(s: &mut Staged<'_>, role: &RoleRecord) -> StoreResult<()> {
    s.put(
        Table::CommunityRoles,
        pair_key(role.community_id, role.id),
        encode(role)?,
    );
    Ok(())
}

fn put_member(s: &mut Staged<'_>, member: &CommunityMember) -> StoreResult<()> {
    s.put(
        Table::CommunityMembers,
        pair_key(member.community_id, member.user_id),
        encode(member)?,
    );
    s.put(
        Table::UserCommunities,
        pair_key(member.user_id, member.community_id),
        Vec::new(),
    );
    super::member_names::index(s, member.community_id, member.user_id)
}

impl Reader {
    /// `community_by_id`.
    pub(crate) fn community(&self, id: Snowflake) -> StoreResult<Option<CommunityRecord>> {
        self.load(Table::Communities, &id_bytes(id))
    }

    /// `community_roles`, by role id.
    pub(crate) fn community_roles(&self, community: Snowflake) -> StoreResult<Vec<RoleRecord>> {
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::CommunityRoles)
            .prefix(id_bytes(community))
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `community_member`.
    pub(crate) fn community_member(
        &self,
        community: Snowflake,
        user: Snowflake,
    ) -> StoreResult<Option<CommunityMember>> {
        self.load(Table::CommunityMembers, &pair_key(community, user))
    }

    /// `community_members`: a page by user id.
    pub(crate) fn community_members(
        &self,
        community: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<CommunityMember>> {
        self.page(Table::CommunityMembers, community, after, limit)
    }

    /// `invite`.
    pub(crate) fn invite(&self, code: &str) -> StoreResult<Option<InviteRecord>> {
        self.load(Table::Invites, code.as_bytes())
    }

    /// `community_invites`, by code.
    pub(crate) fn community_invites(&self, community: Snowflake) -> StoreResult<Vec<InviteRecord>> {
        let prefix = id_bytes(community);
        let mut out = Vec::new();
        for guard in self.tables.get(Table::CommunityInvites).prefix(prefix) {
            let key = guard.key().map_err(io)?;
            let code = key
                .get(prefix.len()..)
                .and_then(|raw| std::str::from_utf8(raw).ok())
                .ok_or_else(|| StoreError::Corrupt("community invite key".into()))?;
            if let Some(invite) = self.invite(code)? {
                out.push(invite);
            }
        }
        Ok(out)
    }

    /// `ban`.
    pub(crate) fn ban(
        &self,
        community: Snowflake,
        user: Snowflake,
    ) -> StoreResult<Option<BanRecord>> {
        self.load(Table::CommunityBans, &pair_key(community, user))
    }

    /// `community_bans`: a page by user id.
    pub(crate) fn community_bans(
        &self,
        community: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<BanRecord>> {
        self.page(Table::CommunityBans, community, after, limit)
    }

    /// `take_join_request`'s read.
    pub(crate) fn join_request(
        &self,
        community: Snowflake,
        user: Snowflake,
    ) -> StoreResult<Option<JoinRequest>> {
        self.load(Table::CommunityJoinRequests, &pair_key(community, user))
    }

    /// `join_requests`: a page by user id.
    pub(crate) fn join_requests(
        &self,
        community: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<JoinRequest>> {
        self.page(Table::CommunityJoinRequests, community, after, limit)
    }

    /// A page of `table`'s records keyed `under` ‖ id, by the id after `after`.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        under: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<T>> {
        let start = match after {
            Some(id) => Bound::Excluded(pair_key(under, id)),
            None => Bound::Included(id_bytes(under).to_vec()),
        };
        let end = match under.0.checked_add(1) {
            Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
            None => Bound::Unbounded,
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(table)
            .range::<Vec<u8>, _>((start, end))
            .take(limit)
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `community_channels`, by channel id.
    pub(crate) fn community_channels(
        &self,
        community: Snowflake,
    ) -> StoreResult<Vec<ChannelRecord>> {
        self.page(Table::CommunityChannels, community, None, u32::MAX)
    }

    /// `community_categories`.
    pub(crate) fn community_categories(
        &self,
        community: Snowflake,
    ) -> StoreResult<Vec<CategoryRecord>> {
        self.page(Table::CommunityCategories, community, None, u32::MAX)
    }

    /// `channel_community`.
    pub(crate) fn channel_community(&self, channel: Snowflake) -> StoreResult<Option<Snowflake>> {
        match self
            .tables
            .get(Table::ChannelCommunities)
            .get(id_bytes(channel))
            .map_err(io)?
        {
            Some(raw) => super::tables::decode_id(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// `channel_overwrites`, by target id.
    pub(crate) fn channel_overwrites(
        &self,
        channel: Snowflake,
    ) -> StoreResult<Vec<ChannelOverwriteRecord>> {
        self.page(Table::ChannelOverwrites, channel, None, u32::MAX)
    }

    /// `audit_log`: newest first.
    pub(crate) fn audit_log(
        &self,
        community: Snowflake,
        before: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let start = Bound::Included(id_bytes(community).to_vec());
        let end = match before {
            Some(before) => Bound::Excluded(pair_key(community, before)),
            None => match community.0.checked_add(1) {
                Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
                None => Bound::Unbounded,
            },
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::CommunityAudit)
            .range::<Vec<u8>, _>((start, end))
            .rev()
            .take(limit)
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }

    /// `user_communities`, by community id.
    pub(crate) fn user_communities(&self, user: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::UserCommunities)
            .prefix(id_bytes(user))
        {
            out.push(trailing_id(&guard.key().map_err(io)?)?);
        }
        Ok(out)
    }
}
