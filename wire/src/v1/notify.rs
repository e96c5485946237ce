//! Mentions and notification settings: the `mention:created` event, the settings clients read
//! and write, the mention syntax, and the one decision of what is a notification
//! ([`notifies`]), shared by the node (badges, `GET /users/me/rooms`) and whatever delivers
//! notifications later (Web Push).

use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;

/// `mention:created`: to every session of a user a message reaches (named as `<@userId>`,
/// by a role they hold, by `@everyone`, or by `@here` while online), whether or not they
/// follow the room.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MentionCreated {
    /// The room of the message.
    pub room_id: Snowflake,
    /// The message.
    pub message_id: Snowflake,
    /// Its author.
    pub author_id: Snowflake,
    /// Their username.
    pub author_name: String,
    /// The first 100 characters of the message as stored (mentions in `<@id>` form).
    pub snippet: String,
    /// How it reached the user (the first that applies, in this order).
    pub via: MentionVia,
    /// The effective notification setting of the mentioned user for the room, and whether
    /// it makes this mention a notification now ([`notifies`]): a client shows nothing
    /// when it is `false` (the count still goes up).
    pub notify: bool,
}

/// How a message reaches a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MentionVia {
    /// Named as `<@userId>`.
    User,
    /// A role they hold, `<@&roleId>`.
    Role,
    /// `@everyone`.
    Everyone,
    /// `@here`, while they were online.
    Here,
}

/// The names of the events above.
pub mod events {
    use crate::v1::event::ServerEventKind;

    /// To every session of a mentioned user.
    pub const MENTION_CREATED: &str = ServerEventKind::MentionCreated.name();
}

/// What a scope (a room, a community, a user's default) notifies about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationLevel {
    /// Every message.
    All,
    /// Mentions of the user (direct, by role, `@everyone`/`@here`), direct messages and calls.
    Mentions,
    /// Nothing.
    None,
}

impl NotificationLevel {
    /// The name as stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationLevel::All => "all",
            NotificationLevel::Mentions => "mentions",
            NotificationLevel::None => "none",
        }
    }

    /// The level named `name`, if any.
    pub fn parse(name: &str) -> Option<NotificationLevel> {
        match name {
            "all" => Some(NotificationLevel::All),
            "mentions" => Some(NotificationLevel::Mentions),
            "none" => Some(NotificationLevel::None),
            _ => None,
        }
    }
}

/// One scope's own setting: each part unset inherits from the wider scope (room → community
/// → the user's default → `all`, not muted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationSetting {
    /// The level, or `null` to inherit.
    #[serde(default)]
    pub level: Option<NotificationLevel>,
    /// Silent until this instant (Unix ms), or `null` for not muted here.
    #[serde(default)]
    pub mute_until: Option<u64>,
}

impl NotificationSetting {
    /// Nothing set: the scope inherits everything (and need not be stored).
    pub fn is_inherit(&self) -> bool {
        self.level.is_none() && self.mute_until.is_none()
    }
}

/// The setting that applies in one room after inheritance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveNotification {
    /// The most specific level set, else `all`.
    pub level: NotificationLevel,
    /// The latest mute of the room, its community and the default (a muted community
    /// silences its channels), if any.
    pub mute_until: Option<u64>,
}

impl EffectiveNotification {
    /// Room overrides community overrides default; mutes add up (the latest wins).
    pub fn resolve(
        room: Option<&NotificationSetting>,
        community: Option<&NotificationSetting>,
        default: Option<&NotificationSetting>,
    ) -> EffectiveNotification {
        let scopes = [room, community, default];
        let level = scopes
            .iter()
            .flatten()
            .find_map(|s| s.level)
            .unwrap_or(NotificationLevel::All);
        let mute_until = scopes.iter().flatten().filter_map(|s| s.mute_until).max();
        EffectiveNotification { level, mute_until }
    }

    /// Whether it is muted at `now_ms`.
    pub fn muted_at(&self, now_ms: u64) -> bool {
        self.mute_until.is_some_and(|until| until > now_ms)
    }
}

/// What happened, as far as notifying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// A message in a room or channel that does not mention the user.
    Message,
    /// A message that mentions the user: by id, by a role they hold, or `@everyone`/`@here`.
    Mention,
    /// A message in a direct conversation.
    Dm,
    /// An incoming call.
    Call,
}

/// Whether an event of `kind` in a room with `settings` is a notification at `now_ms`
/// (a desktop notification, a sound, a push; badges count mentions regardless). Muted:
/// nothing. `none`: nothing. `mentions`: mentions, direct messages and calls (all aimed at
/// the user). `all`: everything.
pub fn notifies(settings: &EffectiveNotification, kind: NotifyKind, now_ms: u64) -> bool {
    if settings.muted_at(now_ms) {
        return false;
    }
    match settings.level {
        NotificationLevel::None => false,
        NotificationLevel::All => true,
        NotificationLevel::Mentions => match kind {
            NotifyKind::Message => false,
            NotifyKind::Mention | NotifyKind::Dm | NotifyKind::Call => true,
        },
    }
}

/// The mentions written in a message's content: `<@userId>` and `<@&roleId>` (decimal ids),
/// each once, in order of first appearance. Anything else that looks close (`<@x>`,
/// `<@ 1>`, an id over `i64::MAX`) is text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenMentions {
    /// Users, `<@id>`.
    pub users: Vec<Snowflake>,
    /// Roles, `<@&id>`.
    pub roles: Vec<Snowflake>,
}

impl WrittenMentions {
    /// Finds them in `content`.
    pub fn parse(content: &str) -> WrittenMentions {
        let mut found = WrittenMentions::default();
        let mut rest = content;
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let (role, body) = match rest.strip_prefix('&') {
                Some(body) => (true, body),
                None => (false, rest),
            };
            let Some(end) = body.find('>') else { break };
            let digits = &body[..end];
            let id = (!digits.is_empty() && digits.len() <= 19)
                .then(|| digits.bytes().all(|b| b.is_ascii_digit()))
                .filter(|all| *all)
                .and_then(|_| digits.parse::<i64>().ok())
                .filter(|n| *n > 0);
            if let Some(n) = id {
                let list = if role {
                    &mut found.roles
                } else {
                    &mut found.users
                };
                let id = Snowflake(n as u64);
                if !list.contains(&id) {
                    list.push(id);
                }
                rest = &body[end + 1..];
            }
        }
        found
    }

    /// How many distinct users and roles.
    pub fn len(&self) -> usize {
        self.users.len() + self.roles.len()
    }

    /// Nothing mentioned.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_parsed_once_each_and_lookalikes_are_text() {
        let m = WrittenMentions::parse("hi <@12> and <@&34>, <@12> again <@x> <@ 5> <@&> <@99");
        assert_eq!(m.users, vec![Snowflake(12)]);
        assert_eq!(m.roles, vec![Snowflake(34)]);
        assert_eq!(m.len(), 2);
        let m = WrittenMentions::parse("<@<@7>> <@99999999999999999999> <@0>");
        assert_eq!(m.users, vec![Snowflake(7)]);
        assert!(WrittenMentions::parse("plain @everyone").is_empty());
    }

    #[test]
    fn the_most_specific_level_wins_and_mutes_add_up() {
        let room = NotificationSetting {
            level: Some(NotificationLevel::Mentions),
            mute_until: None,
        };
        let community = NotificationSetting {
            level: Some(NotificationLevel::None),
            mute_until: Some(500),
        };
        let e = EffectiveNotification::resolve(Some(&room), Some(&community), None);
        assert_eq!(e.level, NotificationLevel::Mentions);
        assert_eq!(e.mute_until, Some(500));
        let e = EffectiveNotification::resolve(None, None, None);
        assert_eq!(e.level, NotificationLevel::All);
        assert_eq!(e.mute_until, None);
        let e = EffectiveNotification::resolve(
            None,
            Some(&NotificationSetting::default()),
            Some(&community),
        );
        assert_eq!(e.level, NotificationLevel::None);
    }

    #[test]
    fn what_notifies_per_level_kind_and_mute() {
        let at = |level, mute_until| EffectiveNotification { level, mute_until };
        let kinds = [
            NotifyKind::Message,
            NotifyKind::Mention,
            NotifyKind::Dm,
            NotifyKind::Call,
        ];
        let all = at(NotificationLevel::All, None);
        assert!(kinds.iter().all(|k| notifies(&all, *k, 10)));
        let none = at(NotificationLevel::None, None);
        assert!(kinds.iter().all(|k| !notifies(&none, *k, 10)));
        let mentions = at(NotificationLevel::Mentions, None);
        assert!(!notifies(&mentions, NotifyKind::Message, 10));
        assert!(notifies(&mentions, NotifyKind::Mention, 10));
        assert!(notifies(&mentions, NotifyKind::Dm, 10));
        assert!(notifies(&mentions, NotifyKind::Call, 10));
        let muted = at(NotificationLevel::All, Some(100));
        assert!(kinds.iter().all(|k| !notifies(&muted, *k, 99)));
        assert!(
            kinds.iter().all(|k| notifies(&muted, *k, 100)),
            "a mute ends"
        );
    }
}
