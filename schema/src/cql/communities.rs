//! Communities (`communities`), their roles (`community_roles`, one partition per community)
//! and members (`community_members` by community, `user_communities` by user): see
//! `schema/cql/008_communities.cql`. Member writes carry the name index's row too
//! (`member_names.rs`).

use scylla::client::session::Session;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use super::{BatchEntry, Cql};
use crate::community::{CommunityMember, CommunityRecord, RoleRecord};
use crate::store::{StoreError, StoreResult};

/// The statements of this module.
pub(crate) struct CommunityStatements {
    community_put: PreparedStatement,
    community_get: PreparedStatement,
    community_delete: PreparedStatement,
    role_put: PreparedStatement,
    role_delete: PreparedStatement,
    roles_delete: PreparedStatement,
    roles_of: PreparedStatement,
    member_put: PreparedStatement,
    member_get: PreparedStatement,
    member_delete: PreparedStatement,
    members_delete: PreparedStatement,
    members_first: PreparedStatement,
    members_after: PreparedStatement,
    member_ids: PreparedStatement,
    index_put: PreparedStatement,
    index_delete: PreparedStatement,
    communities_of: PreparedStatement,
}

const MEMBER_COLUMNS: &str =
    "user_id, roles, timed_out_until, joined_at, voice_muted, voice_deafened";

impl CommunityStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<CommunityStatements> {
        let p = |cql: String| async move { super::codec::prepare(session, &cql, true).await };
        let s = |cql: &str| cql.to_owned();
        Ok(CommunityStatements {
            community_put: p(s("INSERT INTO communities \
                 (id, name, description, icon, owner_id, created_at, updated_at, \
                 require_approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
            .await?,
            community_get: p(s(
                "SELECT id, name, description, icon, owner_id, created_at, \
                 updated_at, require_approval FROM communities WHERE id = ?",
            ))
            .await?,
            community_delete: p(s("DELETE FROM communities WHERE id = ?")).await?,
            role_put: p(s("INSERT INTO community_roles \
                 (community_id, role_id, name, color, position, permissions, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)"))
            .await?,
            role_delete: p(s(
                "DELETE FROM community_roles WHERE community_id = ? AND role_id = ?",
            ))
            .await?,
            roles_delete: p(s("DELETE FROM community_roles WHERE community_id = ?")).await?,
            roles_of: p(s(
                "SELECT role_id, name, color, position, permissions, created_at \
                 FROM community_roles WHERE community_id = ?",
            ))
            .await?,
            member_put: p(s("INSERT INTO community_members \
                 (community_id, user_id, roles, timed_out_until, joined_at, voice_muted, \
                 voice_deafened) VALUES (?, ?, ?, ?, ?, ?, ?)"))
            .await?,
            member_get: p(format!(
                "SELECT {MEMBER_COLUMNS} FROM community_members \
                 WHERE community_id = ? AND user_id = ?"
            ))
            .await?,
            member_delete: p(s(
                "DELETE FROM community_members WHERE community_id = ? AND user_id = ?",
            ))
            .await?,
            members_delete: p(s("DELETE FROM community_members WHERE community_id = ?")).await?,
            members_first: p(format!(
                "SELECT {MEMBER_COLUMNS} FROM community_members WHERE community_id = ? LIMIT ?"
            ))
            .await?,
            members_after: p(format!(
                "SELECT {MEMBER_COLUMNS} FROM community_members \
                 WHERE community_id = ? AND user_id > ? LIMIT ?"
            ))
            .await?,
            member_ids: p(s(
                "SELECT user_id FROM community_members WHERE community_id = ?",
            ))
            .await?,
            index_put: p(s(
                "INSERT INTO user_communities (user_id, community_id) VALUES (?, ?)",
            ))
            .await?,
            index_delete: p(s(
                "DELETE FROM user_communities WHERE user_id = ? AND community_id = ?",
            ))
            .await?,
            communities_of: p(s(
                "SELECT community_id FROM user_communities WHERE user_id = ?",
            ))
            .await?,
        })
    }
}

type CommunityRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    CqlTimestamp,
    CqlTimestamp,
    Option<bool>,
);
type RoleRow = (i64, Option<String>, i64, i64, i64, CqlTimestamp);
type MemberRow = (
    i64,
    Option<Vec<i64>>,
    Option<CqlTimestamp>,
    CqlTimestamp,
    Option<bool>,
    Option<bool>,
);

/// A `bigint` column holding a `u32` (colour, position) or `u64` bits (permissions).
fn small(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
}

fn bits(p: Permissions) -> i64 {
    i64::from_be_bytes(p.bits().to_be_bytes())
}

fn member_row(community_id: Snowflake, row: MemberRow) -> StoreResult<CommunityMember> {
    let (user, roles, timed_out_until, joined_at, voice_muted, voice_deafened) = row;
    Ok(CommunityMember {
        community_id,
        user_id: snowflake(user)?,
        roles: roles
            .unwrap_or_default()
            .into_iter()
            .map(snowflake)
            .collect::<StoreResult<_>>()?,
        timed_out_until: timed_out_until.map(from_cql_time),
        joined_at: from_cql_time(joined_at),
        voice_muted: voice_muted.unwrap_or(false),
        voice_deafened: voice_deafened.unwrap_or(false),
    })
}

impl Cql {
    fn community_entry(&self, c: &CommunityRecord) -> StoreResult<BatchEntry<'_>> {
        let icon = c.icon.map(id).transpose()?;
        let values = (
            id(c.id)?,
            c.name.clone(),
            c.description.clone(),
            icon,
            id(c.owner_id)?,
            to_cql_time(c.created_at),
            to_cql_time(c.updated_at),
            c.require_approval,
        );
        Ok((&self.communities.community_put, Box::new(values)))
    }

    fn role_entry(&self, r: &RoleRecord) -> StoreResult<BatchEntry<'_>> {
        let values = (
            id(r.community_id)?,
            id(r.id)?,
            r.name.clone(),
            i64::from(r.color),
            i64::from(r.position),
            bits(r.permissions),
            to_cql_time(r.created_at),
        );
        Ok((&self.communities.role_put, Box::new(values)))
    }

    fn community_member_entries(&self, m: &CommunityMember) -> StoreResult<Vec<BatchEntry<'_>>> {
        let (community, user) = (id(m.community_id)?, id(m.user_id)?);
        let roles = m
            .roles
            .iter()
            .map(|r| id(*r))
            .collect::<StoreResult<Vec<i64>>>()?;
        let member = (
            community,
            user,
            roles,
            m.timed_out_until.map(to_cql_time),
            to_cql_time(m.joined_at),
            m.voice_muted,
            m.voice_deafened,
        );
        Ok(vec![
            (&self.communities.member_put, Box::new(member)),
            (&self.communities.index_put, Box::new((user, community))),
        ])
    }

    /// `create_community`: one logged batch (its rows span partitions).
    pub(crate) async fn create_community(
        &self,
        community: &CommunityRecord,
        everyone: &RoleRecord,
        owner: &CommunityMember,
    ) -> StoreResult<()> {
        let mut entries = vec![self.community_entry(community)?, self.role_entry(everyone)?];
        entries.extend(self.community_member_entries(owner)?);
        if let Some(user) = self.user_by_id(owner.user_id).await? {
            entries.push(self.member_name_put(owner.community_id, &user)?);
        }
        self.batch("create community", BatchType::Logged, entries)
            .await
    }

    /// `community_by_id`.
    pub(crate) async fn community_by_id(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Option<CommunityRecord>> {
        let Ok(raw) = id(community_id) else {
            return Ok(None);
        };
        let row: Option<CommunityRow> = self
            .first("read community", &self.communities.community_get, (raw,))
            .await?;
        let Some((cid, name, description, icon, owner, created_at, updated_at, approval)) = row
        else {
            return Ok(None);
        };
        Ok(Some(CommunityRecord {
            id: snowflake(cid)?,
            name: name.unwrap_or_default(),
            description: description.unwrap_or_default(),
            icon: icon.map(snowflake).transpose()?,
            owner_id: snowflake(owner)?,
            created_at: from_cql_time(created_at),
            updated_at: from_cql_time(updated_at),
            require_approval: approval.unwrap_or(false),
        }))
    }

    /// `update_community`: an unknown (or deleted) community is a no-op.
    pub(crate) async fn update_community(&self, community: &CommunityRecord) -> StoreResult<()> {
        if self.community_by_id(community.id).await?.is_none() {
            return Ok(());
        }
        let (st, values) = self.community_entry(community)?;
        self.write("update community", st, values).await
    }

    /// `delete_community`: the user index first (its entries are found through the members),
    /// then the partitions.
    pub(crate) async fn delete_community(&self, community_id: Snowflake) -> StoreResult<()> {
        let Ok(raw) = id(community_id) else {
            return Ok(());
        };
        self.delete_community_invites(raw).await?;
        self.delete_audit_log(raw).await?;
        self.delete_community_bans(raw).await?;
        self.delete_join_requests(raw).await?;
        self.delete_community_channels(community_id).await?;
        let users: Vec<(i64,)> = self
            .select_all("read member ids", &self.communities.member_ids, (raw,))
            .await?;
        for (user,) in users {
            self.write(
                "delete community index",
                &self.communities.index_delete,
                (user, raw),
            )
            .await?;
        }
        let entries: Vec<BatchEntry<'_>> = vec![
            self.member_names_drop(raw),
            (&self.communities.members_delete, Box::new((raw,))),
            (&self.communities.roles_delete, Box::new((raw,))),
            (&self.communities.community_delete, Box::new((raw,))),
        ];
        self.batch("delete community", BatchType::Logged, entries)
            .await
    }

    /// `put_role`.
    pub(crate) async fn put_role(&self, role: &RoleRecord) -> StoreResult<()> {
        let (st, values) = self.role_entry(role)?;
        self.write("write role", st, values).await
    }

    /// `delete_role`.
    pub(crate) async fn delete_role(
        &self,
        community_id: Snowflake,
        role_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(community), Ok(role)) = (id(community_id), id(role_id)) else {
            return Ok(());
        };
        self.write(
            "delete role",
            &self.communities.role_delete,
            (community, role),
        )
        .await
    }

    /// `community_roles`, by role id (the clustering order).
    pub(crate) async fn community_roles(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<RoleRecord>> {
        let Ok(raw) = id(community_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<RoleRow> = self
            .select_all("read roles", &self.communities.roles_of, (raw,))
            .await?;
        rows.into_iter()
            .map(|(role, name, color, position, permissions, created_at)| {
                Ok(RoleRecord {
                    community_id,
                    id: snowflake(role)?,
                    name: name.unwrap_or_default(),
                    color: small(color, "role colour")?,
                    position: small(position, "role position")?,
                    permissions: Permissions::from_bits_retain(u64::from_be_bytes(
                        permissions.to_be_bytes(),
                    )),
                    created_at: from_cql_time(created_at),
                })
            })
            .collect()
    }

    /// `put_community_member`: the member row, the user's index entry and the name index row
    /// (the name read first; a user unknown to the store is listed by id only).
    pub(crate) async fn put_community_member(&self, member: &CommunityMember) -> StoreResult<()> {
        let mut entries = self.community_member_entries(member)?;
        if let Some(user) = self.user_by_id(member.user_id).await? {
            entries.push(self.member_name_put(member.community_id, &user)?);
        }
        self.batch("write community member", BatchType::Logged, entries)
            .await
    }

    /// `remove_community_member`.
    pub(crate) async fn remove_community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(community), Ok(user)) = (id(community_id), id(user_id)) else {
            return Ok(());
        };
        let mut entries: Vec<BatchEntry<'_>> = vec![
            (&self.communities.member_delete, Box::new((community, user))),
            (&self.communities.index_delete, Box::new((user, community))),
        ];
        if let Some(record) = self.user_by_id(user_id).await? {
            entries.push(self.member_name_delete(community_id, &record)?);
        }
        self.batch("remove community member", BatchType::Logged, entries)
            .await
    }

    /// `community_member`.
    pub(crate) async fn community_member(
        &self,
        community_id: Snowflake,
        user_id: Snowflake,
    ) -> StoreResult<Option<CommunityMember>> {
        let (Ok(community), Ok(user)) = (id(community_id), id(user_id)) else {
            return Ok(None);
        };
        let row: Option<MemberRow> = self
            .first(
                "read community member",
                &self.communities.member_get,
                (community, user),
            )
            .await?;
        row.map(|row| member_row(community_id, row)).transpose()
    }

    /// `community_members`: a page by user id.
    pub(crate) async fn community_members(
        &self,
        community_id: Snowflake,
        after: Option<Snowflake>,
        limit: u32,
    ) -> StoreResult<Vec<CommunityMember>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let what = "read community members";
        let rows: Vec<MemberRow> = match after {
            None => {
                let st = &self.communities.members_first;
                self.select(what, st, (community, limit)).await?
            }
            Some(after) => {
                let st = &self.communities.members_after;
                self.select(what, st, (community, id(after)?, limit))
                    .await?
            }
        };
        rows.into_iter()
            .map(|row| member_row(community_id, row))
            .collect()
    }

    /// `user_communities`, by community id.
    pub(crate) async fn user_communities(&self, user_id: Snowflake) -> StoreResult<Vec<Snowflake>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64,)> = self
            .select_all(
                "read user communities",
                &self.communities.communities_of,
                (user,),
            )
            .await?;
        rows.into_iter().map(|(c,)| snowflake(c)).collect()
    }
}
