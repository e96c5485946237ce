//! What a community member may do in a channel: one IO-free function of the community's
//! roles, the member, the channel's overrides and the time, in Discord's documented order
//! (<https://discord.com/developers/docs/topics/permissions>):
//!
//! 1. The owner may do everything.
//! 2. Base: `@everyone`'s permissions, plus every role the member has. With `ADMINISTRATOR`
//!    the member may do everything, past every override and a timeout.
//! 3. The channel's override for `@everyone` (deny, then allow), then the overrides of all the
//!    member's roles together (every deny, then every allow: one role's allow beats another's
//!    deny), then the member's own override (deny, then allow). Overrides change only
//!    channel permissions (`Permissions::CHANNEL`); kick, ban, roles and the like come from
//!    roles alone.
//! 4. Implied: without `VIEW_CHANNEL` nothing is left; without `SEND_MESSAGES` neither files
//!    nor `@everyone` mentions; without `CONNECT` no speaking.
//! 5. A member timed out keeps only `VIEW_CHANNEL` until the timeout ends.
//!
//! Rank (who may manage whom) is the position of a member's highest role; the owner outranks
//! everyone.

use std::collections::HashMap;

use voiceflow_schema::{
    ChannelOverwriteRecord, CommunityMember, CommunityRecord, OverwriteTarget, RoleRecord,
};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::{Overwrite, Permissions};

/// A role as permissions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleGrant {
    /// Rank: higher positions outrank lower ones (`@everyone` is 0).
    pub position: u32,
    /// What the role grants everywhere (before channel overrides).
    pub permissions: Permissions,
}

/// A community's roles and owner.
#[derive(Debug, Clone, Default)]
pub struct CommunityRoles {
    /// Its owner, who may do everything.
    pub owner: Snowflake,
    /// What `@everyone` grants (every member has it).
    pub everyone: Permissions,
    /// The other roles, by id.
    pub roles: HashMap<Snowflake, RoleGrant>,
}

/// A member of a community.
#[derive(Debug, Clone, Default)]
pub struct MemberGrants {
    /// The user.
    pub user: Snowflake,
    /// Roles granted to them (ids of roles that no longer exist are ignored).
    pub roles: Vec<Snowflake>,
    /// Timed out until this instant (Unix ms), if at all.
    pub timed_out_until: Option<u64>,
}

impl From<&CommunityMember> for MemberGrants {
    fn from(member: &CommunityMember) -> Self {
        MemberGrants {
            user: member.user_id,
            roles: member.roles.clone(),
            timed_out_until: member.timed_out_until,
        }
    }
}

/// A channel's overrides.
#[derive(Debug, Clone, Default)]
pub struct ChannelOverwrites {
    /// For `@everyone`.
    pub everyone: Overwrite,
    /// Per role.
    pub roles: HashMap<Snowflake, Overwrite>,
    /// Per member.
    pub members: HashMap<Snowflake, Overwrite>,
}

impl ChannelOverwrites {
    /// A channel's overrides as stored, in a community whose `@everyone` role has the id
    /// `community`.
    pub fn of(community: Snowflake, rows: &[ChannelOverwriteRecord]) -> ChannelOverwrites {
        let mut all = ChannelOverwrites::default();
        for row in rows {
            match row.target {
                OverwriteTarget::Role if row.target_id == community => {
                    all.everyone = row.overwrite;
                }
                OverwriteTarget::Role => {
                    all.roles.insert(row.target_id, row.overwrite);
                }
                OverwriteTarget::Member => {
                    all.members.insert(row.target_id, row.overwrite);
                }
            }
        }
        all
    }
}

impl CommunityRoles {
    /// A community's roles as stored (`@everyone` is the role whose id is the community's).
    pub fn of(community: &CommunityRecord, roles: &[RoleRecord]) -> CommunityRoles {
        let everyone = roles
            .iter()
            .find(|r| r.is_everyone())
            .map_or(Permissions::empty(), |r| r.permissions);
        let grant = |r: &RoleRecord| RoleGrant {
            position: r.position,
            permissions: r.permissions,
        };
        CommunityRoles {
            owner: community.owner_id,
            everyone,
            roles: roles
                .iter()
                .filter(|r| !r.is_everyone())
                .map(|r| (r.id, grant(r)))
                .collect(),
        }
    }

    /// Whether `role` exists (`@everyone` is not listed: mention it as `@everyone`).
    pub fn has_role(&self, role: Snowflake) -> bool {
        self.roles.contains_key(&role)
    }

    /// The member's roles that exist.
    fn grants<'a>(
        &'a self,
        member: &'a MemberGrants,
    ) -> impl Iterator<Item = (Snowflake, RoleGrant)> + 'a {
        member
            .roles
            .iter()
            .filter_map(|id| self.roles.get(id).map(|grant| (*id, *grant)))
    }

    /// What the member may do anywhere in the community, before channel overrides.
    pub fn base(&self, member: &MemberGrants) -> Permissions {
        if member.user == self.owner {
            return Permissions::all();
        }
        let base = self
            .grants(member)
            .fold(self.everyone, |set, (_, grant)| set | grant.permissions);
        match base.contains(Permissions::ADMINISTRATOR) {
            true => Permissions::all(),
            false => base,
        }
    }

    /// What the member may do in a channel with `overwrites`, at `now_ms`.
    pub fn in_channel(
        &self,
        member: &MemberGrants,
        overwrites: &ChannelOverwrites,
        now_ms: u64,
    ) -> Permissions {
        let base = self.base(member);
        if base == Permissions::all() {
            return base;
        }
        // Only channel permissions are overridden (stored overrides are masked too).
        let apply = |set: Permissions, o: &Overwrite| {
            (set - (o.deny & Permissions::CHANNEL)) | (o.allow & Permissions::CHANNEL)
        };
        let mut set = apply(base, &overwrites.everyone);
        let roles = self
            .grants(member)
            .filter_map(|(id, _)| overwrites.roles.get(&id))
            .fold(Overwrite::default(), |all, o| Overwrite {
                allow: all.allow | o.allow,
                deny: all.deny | o.deny,
            });
        set = apply(set, &roles);
        if let Some(own) = overwrites.members.get(&member.user) {
            set = apply(set, own);
        }
        implied(
            set,
            member.timed_out_until.is_some_and(|until| now_ms < until),
        )
    }

    /// The member's rank: their highest role's position (`u32::MAX` for the owner, 0 with
    /// only `@everyone`).
    pub fn rank(&self, member: &MemberGrants) -> u32 {
        if member.user == self.owner {
            return u32::MAX;
        }
        self.grants(member)
            .map(|(_, grant)| grant.position)
            .max()
            .unwrap_or(0)
    }

    /// Whether `actor` may edit, grant or take away `role`: with `MANAGE_ROLES`, and only a
    /// role ranked below the actor's highest (the owner may manage every role).
    pub fn may_manage_role(&self, actor: &MemberGrants, role: Snowflake) -> bool {
        let Some(grant) = self.roles.get(&role) else {
            return false;
        };
        self.base(actor).contains(Permissions::MANAGE_ROLES) && grant.position < self.rank(actor)
    }

    /// Whether `actor` may use `permission` (kick, ban, timeout, voice moderation) on
    /// `target`: they hold it and outrank the target; nobody moderates the owner or themself.
    pub fn may_moderate(
        &self,
        actor: &MemberGrants,
        target: &MemberGrants,
        permission: Permissions,
    ) -> bool {
        actor.user != target.user
            && target.user != self.owner
            && self.base(actor).contains(permission)
            && self.rank(actor) > self.rank(target)
    }
}

/// The permissions that depend on others, and a timeout.
fn implied(mut set: Permissions, timed_out: bool) -> Permissions {
    if !set.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::empty();
    }
    if timed_out {
        return Permissions::VIEW_CHANNEL;
    }
    if !set.contains(Permissions::SEND_MESSAGES) {
        set -= Permissions::ATTACH_FILES | Permissions::MENTION_EVERYONE;
    }
    if !set.contains(Permissions::CONNECT) {
        set -= Permissions::SPEAK;
    }
    set
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
