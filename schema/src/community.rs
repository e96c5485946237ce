//! Communities (Discord's "servers"), their roles and their members, as stored
//! (`communities`, `community_roles`, `community_members`, `user_communities`).
//!
//! A member row names the member's roles by id, so changing what a role grants rewrites one
//! role row, never the members; a role that was deleted is ignored where a member still names
//! it. The `@everyone` role's id is the community's own id.

use serde::{Deserialize, Serialize};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

/// A community (`communities`, by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityRecord {
    /// Primary key.
    pub id: Snowflake,
    /// 1–100 characters.
    pub name: String,
    /// Up to 1,000 characters.
    pub description: String,
    /// The icon's uploaded file, if any.
    pub icon: Option<Snowflake>,
    /// Who may do everything (moved by an ownership transfer).
    pub owner_id: Snowflake,
    /// Creation time.
    pub created_at: u64,
    /// Last change of the fields above.
    pub updated_at: u64,
    /// Joining by invite makes a request that a member with `kick_members` accepts or
    /// declines (absent in records written before it existed: `false`).
    #[serde(default)]
    pub require_approval: bool,
}

/// A role of a community (`community_roles`: community ‖ role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// The community.
    pub community_id: Snowflake,
    /// The role; the community's own id for `@everyone`.
    pub id: Snowflake,
    /// Shown name, 1–100 characters (`@everyone` for the base role).
    pub name: String,
    /// Colour as 0xRRGGBB (0: none).
    pub color: u32,
    /// Rank: higher outranks lower; `@everyone` is 0.
    pub position: u32,
    /// What the role grants everywhere in the community (before channel overrides).
    pub permissions: Permissions,
    /// Creation time.
    pub created_at: u64,
}

impl RoleRecord {
    /// Whether this is the community's `@everyone` role.
    pub fn is_everyone(&self) -> bool {
        self.id == self.community_id
    }
}

/// A member of a community (`community_members`: community ‖ user, with `user_communities`:
/// user ‖ community pointing back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityMember {
    /// The community.
    pub community_id: Snowflake,
    /// The user.
    pub user_id: Snowflake,
    /// Roles granted, besides `@everyone`, by id.
    pub roles: Vec<Snowflake>,
    /// Timed out until this instant (Unix ms), if at all.
    pub timed_out_until: Option<u64>,
    /// When they joined.
    pub joined_at: u64,
    /// Server-muted: nobody hears them in any voice channel of the community until a
    /// moderator with `mute_members` lifts it.
    #[serde(default)]
    pub voice_muted: bool,
    /// Server-deafened: they hear nobody in any voice channel of the community until a
    /// moderator with `deafen_members` lifts it.
    #[serde(default)]
    pub voice_deafened: bool,
}

/// An invite to a community (`invites` by code, with `community_invites` listing a
/// community's codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The code people enter or follow; unique.
    pub code: String,
    /// The community it joins.
    pub community_id: Snowflake,
    /// Who made it.
    pub created_by: Snowflake,
    /// When.
    pub created_at: u64,
    /// It may not be used from this instant on (Unix ms), if set.
    pub expires_at: Option<u64>,
    /// It may be used this many times at most, if set.
    pub max_uses: Option<u32>,
    /// Times it was used.
    pub uses: u32,
    /// Revoked by a manager: never usable again.
    pub revoked: bool,
}

impl InviteRecord {
    /// Whether it may be used at `now_ms`.
    pub fn usable(&self, now_ms: u64) -> bool {
        !self.revoked
            && self.expires_at.is_none_or(|at| now_ms < at)
            && self.max_uses.is_none_or(|max| self.uses < max)
    }
}

/// One entry of a community's audit log (`community_audit`, newest first). Entries are only
/// ever appended; the API can neither edit nor delete them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The community.
    pub community_id: Snowflake,
    /// Time-ordered id of the entry.
    pub id: Snowflake,
    /// Who did it.
    pub actor_id: Snowflake,
    /// What, as a stable name (`role.update`, `member.kick`, …).
    pub action: String,
    /// Whom or what it was done to (a role, a member, …), if anything.
    pub target_id: Option<Snowflake>,
    /// The reason the actor gave, if any.
    pub reason: Option<String>,
    /// The target before, as JSON, where that means something.
    pub before: Option<String>,
    /// The target after, as JSON.
    pub after: Option<String>,
    /// When.
    pub created_at: u64,
}

/// A ban from a community (`community_bans`: community ‖ user): the user is not a member and
/// cannot join again until the ban is lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    /// The community.
    pub community_id: Snowflake,
    /// Who is banned.
    pub user_id: Snowflake,
    /// Why, as the moderator said.
    pub reason: Option<String>,
    /// The moderator.
    pub banned_by: Snowflake,
    /// When.
    pub created_at: u64,
}

/// A request to join a community that requires approval (`community_join_requests`:
/// community ‖ user). The invite's use was spent when the request was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The community.
    pub community_id: Snowflake,
    /// Who asks.
    pub user_id: Snowflake,
    /// The invite they used.
    pub invite_code: String,
    /// When.
    pub created_at: u64,
}

/// A channel of a community (`community_channels`: community ‖ channel, with
/// `channel_communities`: channel → community pointing back). The channel itself is a room
/// (its record holds its name, kind and settings); this places it in the community.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// The community.
    pub community_id: Snowflake,
    /// The channel's room.
    pub channel_id: Snowflake,
    /// Its category (a channel of kind `category`'s id), if any.
    pub category_id: Option<Snowflake>,
    /// Order among its siblings (lower first).
    pub position: u32,
}

/// A category of a community's channels (`community_categories`: community ‖ category): a
/// named, ordered group; channels name it in their `category_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRecord {
    /// The community.
    pub community_id: Snowflake,
    /// The category.
    pub id: Snowflake,
    /// Shown name, 1–100 characters.
    pub name: String,
    /// Order among the categories (lower first).
    pub position: u32,
}

/// Whom a channel override is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverwriteTarget {
    /// A role (`@everyone`'s id is the community's).
    Role,
    /// One member.
    Member,
}

impl OverwriteTarget {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            OverwriteTarget::Role => "role",
            OverwriteTarget::Member => "member",
        }
    }

    /// Inverse of [`OverwriteTarget::as_str`].
    pub fn parse(s: &str) -> Option<OverwriteTarget> {
        match s {
            "role" => Some(OverwriteTarget::Role),
            "member" => Some(OverwriteTarget::Member),
            _ => None,
        }
    }
}

/// One override of a channel (`channel_overwrites`: channel ‖ target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOverwriteRecord {
    /// The channel's room.
    pub channel_id: Snowflake,
    /// The role's or member's id.
    pub target_id: Snowflake,
    /// A role or a member.
    pub target: OverwriteTarget,
    /// What it allows and denies.
    pub overwrite: voiceflow_wire::v1::permissions::Overwrite,
}
