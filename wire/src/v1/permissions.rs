//! Community permissions as they cross the wire: a role's or an override's set of permission
//! bits, written in JSON as a list of snake_case names (`["view_channel", "send_messages"]`)
//! so that clients need no bit table, and an unknown name is refused by name.
//!
//! How a member's permissions in a channel are computed from these is
//! `voiceflow_actors::permissions` (IO-free, in Discord's documented order).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

bitflags::bitflags! {
    /// A set of permissions. The bit values are stored: never renumber one.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u64 {
        /// See the channel, read its history and download its files.
        const VIEW_CHANNEL = 1 << 0;
        /// Post messages (and edit one's own).
        const SEND_MESSAGES = 1 << 1;
        /// Post files and voice notes.
        const ATTACH_FILES = 1 << 2;
        /// Add reactions.
        const ADD_REACTIONS = 1 << 3;
        /// Mention `@everyone` and `@here`.
        const MENTION_EVERYONE = 1 << 4;
        /// Delete and pin other people's messages.
        const MANAGE_MESSAGES = 1 << 5;
        /// Create, edit, lock and delete channels and categories.
        const MANAGE_CHANNELS = 1 << 6;
        /// Create and edit roles ranked below one's own highest role, and grant them.
        const MANAGE_ROLES = 1 << 7;
        /// Remove members from the community (they may come back with an invite).
        const KICK_MEMBERS = 1 << 8;
        /// Ban members (and purge their recent messages).
        const BAN_MEMBERS = 1 << 9;
        /// Time members out (no sending, reacting, speaking or joining voice until a time).
        const TIMEOUT_MEMBERS = 1 << 10;
        /// Mute others in voice.
        const MUTE_MEMBERS = 1 << 11;
        /// Deafen others in voice.
        const DEAFEN_MEMBERS = 1 << 12;
        /// Move others between voice channels.
        const MOVE_MEMBERS = 1 << 13;
        /// Join voice channels and stages.
        const CONNECT = 1 << 14;
        /// Speak in voice channels.
        const SPEAK = 1 << 15;
        /// Run stages: invite speakers, move people off the stage.
        const STAGE_MODERATOR = 1 << 16;
        /// Edit the community's name, icon, description and settings.
        const MANAGE_COMMUNITY = 1 << 17;
        /// Read the audit log.
        const VIEW_AUDIT_LOG = 1 << 18;
        /// Create invites.
        const CREATE_INVITE = 1 << 19;
        /// Every permission, in every channel, past every override.
        const ADMINISTRATOR = 1 << 20;
        /// Publish a camera or a screen share in voice channels and stages (with `speak`).
        const VIDEO = 1 << 21;
    }
}

impl Permissions {
    /// What a new community's `@everyone` role grants.
    pub const EVERYONE_DEFAULT: Permissions = Permissions::VIEW_CHANNEL
        .union(Permissions::SEND_MESSAGES)
        .union(Permissions::ATTACH_FILES)
        .union(Permissions::ADD_REACTIONS)
        .union(Permissions::CONNECT)
        .union(Permissions::SPEAK)
        .union(Permissions::VIDEO)
        .union(Permissions::CREATE_INVITE);

    /// What a channel's overrides may change; the rest (moderating members, roles, the
    /// community itself) is granted by roles only.
    pub const CHANNEL: Permissions = Permissions::VIEW_CHANNEL
        .union(Permissions::SEND_MESSAGES)
        .union(Permissions::ATTACH_FILES)
        .union(Permissions::ADD_REACTIONS)
        .union(Permissions::MENTION_EVERYONE)
        .union(Permissions::MANAGE_MESSAGES)
        .union(Permissions::MANAGE_CHANNELS)
        .union(Permissions::MUTE_MEMBERS)
        .union(Permissions::DEAFEN_MEMBERS)
        .union(Permissions::MOVE_MEMBERS)
        .union(Permissions::CONNECT)
        .union(Permissions::SPEAK)
        .union(Permissions::STAGE_MODERATOR)
        .union(Permissions::VIDEO)
        .union(Permissions::CREATE_INVITE);

    /// The snake_case names of the set's permissions, in bit order.
    pub fn names(self) -> impl Iterator<Item = String> {
        self.iter_names().map(|(name, _)| name.to_ascii_lowercase())
    }

    /// The permission called `name` (snake_case), if there is one.
    pub fn from_snake_name(name: &str) -> Option<Permissions> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Permissions::from_name(&name.to_ascii_uppercase())
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        names.iter().try_fold(Permissions::empty(), |set, name| {
            Permissions::from_snake_name(name)
                .map(|p| set | p)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown permission `{name}`")))
        })
    }
}

/// A channel's override for one role or one member: what it allows and what it denies on
/// top of what the member has from their roles. A bit in neither set is left as it was; only
/// [`Permissions::CHANNEL`] bits may be named (others are refused when parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "OverwriteSides")]
pub struct Overwrite {
    /// Granted in this channel.
    pub allow: Permissions,
    /// Taken away in this channel.
    pub deny: Permissions,
}

/// An [`Overwrite`] as sent, before its permissions are checked.
#[derive(Deserialize)]
struct OverwriteSides {
    #[serde(default)]
    allow: Permissions,
    #[serde(default)]
    deny: Permissions,
}

impl TryFrom<OverwriteSides> for Overwrite {
    type Error = String;

    fn try_from(sides: OverwriteSides) -> Result<Self, String> {
        let outside = (sides.allow | sides.deny) - Permissions::CHANNEL;
        match outside.names().next() {
            Some(name) => Err(format!(
                "permission `{name}` cannot be overridden per channel"
            )),
            None => Ok(Overwrite {
                allow: sides.allow,
                deny: sides.deny,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_written_as_its_names_and_read_back() {
        let set = Permissions::VIEW_CHANNEL | Permissions::MANAGE_ROLES;
        let json = serde_json::to_string(&set).expect("json");
        assert_eq!(json, r#"["view_channel","manage_roles"]"#);
        assert_eq!(serde_json::from_str::<Permissions>(&json).ok(), Some(set));
        assert_eq!(
            serde_json::from_str::<Permissions>("[]").ok(),
            Some(Permissions::empty())
        );
    }

    #[test]
    fn an_unknown_or_oddly_written_name_is_refused_by_name() {
        for bad in [r#"["fly"]"#, r#"["VIEW_CHANNEL"]"#, r#"["view channel"]"#] {
            let err = serde_json::from_str::<Permissions>(bad).expect_err(bad);
            assert!(err.to_string().contains("unknown permission"), "{err}");
        }
        assert!(serde_json::from_str::<Permissions>(r#""view_channel""#).is_err());
    }

    #[test]
    fn every_permission_has_its_own_bit_and_a_name() {
        let all: Vec<_> = Permissions::all().iter().collect();
        assert_eq!(all.len(), 22);
        for p in &all {
            assert_eq!(p.bits().count_ones(), 1);
            let name = p.names().next().expect("name");
            assert_eq!(Permissions::from_snake_name(&name), Some(*p));
        }
    }

    #[test]
    fn an_overwrite_of_a_community_wide_permission_is_refused() {
        let err = serde_json::from_str::<Overwrite>(r#"{"allow":["view_channel","ban_members"]}"#)
            .expect_err("ban is not per channel");
        assert!(
            err.to_string()
                .contains("`ban_members` cannot be overridden"),
            "{err}"
        );
    }

    #[test]
    fn an_overwrite_may_name_only_one_side() {
        let o: Overwrite = serde_json::from_str(r#"{"deny":["send_messages"]}"#).expect("json");
        assert_eq!(o.allow, Permissions::empty());
        assert_eq!(o.deny, Permissions::SEND_MESSAGES);
    }
}
