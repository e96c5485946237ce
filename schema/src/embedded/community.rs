//! Communities in the embedded store: their ops (run on the writer thread against the staged
//! view) and reads. Keyspaces: `communities` (id → record), `community_roles` (community ‖
//! role → record), `community_members` (community ‖ user → record) and `user_communities`
//! (user ‖ community → empty), as in `schema/cql/008_communities.cql`.

use std::ops::Bound;

use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, decode, encode, id_bytes, io, pair_key, trailing_id};
use super::writer::Staged;
use crate::community::{CommunityMember, CommunityRecord, RoleRecord};
use crate::store::StoreResult;

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
}

/// Applies one community op to `s`.
pub(crate) fn apply(s: &mut Staged<'_>, op: CommunityOp) -> StoreResult<()> {
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
            for member in s.keys_with_prefix(Table::CommunityMembers, &key)? {
                let user = trailing_id(&member)?;
                s.remove(Table::UserCommunities, pair_key(user, id));
                s.remove(Table::CommunityMembers, member);
            }
        }
        CommunityOp::PutRole(role) => put_role(s, &role)?,
        CommunityOp::DeleteRole(community, role) => {
            s.remove(Table::CommunityRoles, pair_key(community, role));
        }
        CommunityOp::PutMember(member) => put_member(s, &member)?,
        CommunityOp::RemoveMember(community, user) => {
            s.remove(Table::CommunityMembers, pair_key(community, user));
            s.remove(Table::UserCommunities, pair_key(user, community));
        }
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
    Ok(())
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
        let start = match after {
            Some(user) => Bound::Excluded(pair_key(community, user)),
            None => Bound::Included(id_bytes(community).to_vec()),
        };
        let end = match community.0.checked_add(1) {
            Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
            None => Bound::Unbounded,
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::CommunityMembers)
            .range::<Vec<u8>, _>((start, end))
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
