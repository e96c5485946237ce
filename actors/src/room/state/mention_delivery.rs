//! Delivering a stored change's mentions, off the room's actor: who a message reaches now
//! that it did not reach before (a post, or an edit that adds a mention) gets a
//! `user_mentions` row (direct mentions' rows are written with the message), a push offer
//! per their settings and `mention:created`; who it reached before but no longer does (an
//! edit that drops a mention, a deletion) loses their row.
//!
//! Role, `@everyone` and `@here` mentions are expanded here into one row per person reached:
//! in a room, its members; in a community channel, the community's members who may view it,
//! read a page at a time. That costs a write per person, but off the commit path (the post
//! is acknowledged before this starts) and in batches of a page, and it is the same order
//! of work as the settings read and the push that each of those people needs anyway; in
//! exchange `GET /users/me/mentions` stays one slice of one bounded partition (see
//! ARCHITECTURE.md, "Mentions").

use std::collections::HashSet;

use futures_util::StreamExt;
use voiceflow_schema::{MentionRecord, MessageExtra, MessageRecord};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::notify::{MentionCreated, MentionVia, NotifyKind, events, notifies};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::push::{PushKind, PushPayload};

use crate::context::NodeContext;
use crate::permissions::{ChannelOverwrites, CommunityRoles, MemberGrants};

/// Longest snippet of a `mention:created`, in characters.
const SNIPPET_CHARS: usize = 100;
/// Settings reads and pushes in flight at once for one delivery.
const AT_ONCE: usize = 16;

/// What of a message's mentions reaches people: a copy of its `extra`'s mention fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MentionReach {
    users: Vec<Snowflake>,
    everyone: bool,
    here: bool,
    roles: Vec<Snowflake>,
}

impl MentionReach {
    /// The reach of a message with `extra`.
    pub(crate) fn of(extra: &MessageExtra) -> MentionReach {
        MentionReach {
            users: extra.mentions.clone(),
            everyone: extra.mentions_everyone && !extra.mentions_here,
            here: extra.mentions_here,
            roles: extra.mention_roles.clone(),
        }
    }

    /// It reaches more people than it names: the audience must be enumerated.
    pub(crate) fn is_wide(&self) -> bool {
        self.everyone || self.here || !self.roles.is_empty()
    }

    /// How it reaches a person who holds `held` roles, may view the room (`views`) and is
    /// online (`online`), if it does.
    fn reaches(
        &self,
        user: Snowflake,
        held: &[Snowflake],
        views: bool,
        online: bool,
    ) -> Option<MentionVia> {
        if self.users.contains(&user) {
            Some(MentionVia::User)
        } else if !views {
            None
        } else if self.roles.iter().any(|r| held.contains(r)) {
            Some(MentionVia::Role)
        } else if self.everyone {
            Some(MentionVia::Everyone)
        } else if self.here && online {
            Some(MentionVia::Here)
        } else {
            None
        }
    }
}

/// Who besides the people named may be reached.
pub(crate) enum Audience {
    /// Nobody: the change names people only.
    Named,
    /// A room's members (all of them may read it; nobody holds roles).
    Members(Vec<Snowflake>),
    /// A community channel: the community's members, each with their permissions in it.
    Community {
        community: Snowflake,
        roles: CommunityRoles,
        overwrites: ChannelOverwrites,
    },
}

/// One change's delivery.
pub(crate) struct Delivery {
    pub(crate) ctx: NodeContext,
    /// The message as the change left it.
    pub(crate) message: MessageRecord,
    /// Its reach before the change (`None`: a post).
    pub(crate) before: Option<MentionReach>,
    /// The channel's community, for settings.
    pub(crate) community: Option<Snowflake>,
    pub(crate) audience: Audience,
    /// Who the room knows to be online now (for `@here`).
    pub(crate) online: HashSet<Snowflake>,
}

/// What to do for one person.
struct Person {
    user: Snowflake,
    held: Vec<Snowflake>,
    views: bool,
}

impl Delivery {
    /// Runs it; failures are logged (a mention's rows are candidates, and the message
    /// itself is stored).
    pub(crate) async fn run(self) {
        let now = MentionReach::of(&self.message.extra);
        let wide = now.is_wide() || self.before.as_ref().is_some_and(MentionReach::is_wide);
        // The people named first (also guests, whom no member list holds).
        let mut named: Vec<Snowflake> = now.users.clone();
        if let Some(before) = &self.before {
            named.extend(before.users.iter().filter(|u| !now.users.contains(u)));
        }
        let seen: HashSet<Snowflake> = named.iter().copied().collect();
        let people = named
            .iter()
            .map(|u| Person {
                user: *u,
                held: Vec::new(),
                views: true,
            })
            .collect();
        self.page(&now, people).await;
        if !wide {
            return;
        }
        match &self.audience {
            Audience::Named => {}
            Audience::Members(members) => {
                let people = members
                    .iter()
                    .filter(|u| !seen.contains(u))
                    .map(|u| Person {
                        user: *u,
                        held: Vec::new(),
                        views: true,
                    })
                    .collect();
                self.page(&now, people).await;
            }
            Audience::Community {
                community,
                roles,
                overwrites,
            } => {
                let mut after = None;
                let page = self.ctx.config.mention_fanout_page.max(1);
                loop {
                    let members = match self
                        .ctx
                        .store
                        .community_members(*community, after, page)
                        .await
                    {
                        Ok(members) => members,
                        Err(e) => {
                            tracing::warn!(room = %self.message.room_id, error = %e, "mention audience not read");
                            return;
                        }
                    };
                    let at = now_ms();
                    after = members.last().map(|m| m.user_id);
                    let full = members.len() == page as usize;
                    let people = members
                        .into_iter()
                        .filter(|m| !seen.contains(&m.user_id))
                        .map(|m| {
                            let grants = MemberGrants::from(&m);
                            let views = roles
                                .in_channel(&grants, overwrites, at)
                                .contains(Permissions::VIEW_CHANNEL);
                            Person {
                                user: m.user_id,
                                held: m.roles,
                                views,
                            }
                        })
                        .collect();
                    self.page(&now, people).await;
                    if !full {
                        break;
                    }
                }
            }
        }
    }

    /// One page of people: rows written and deleted together, then each newly reached
    /// person told.
    async fn page(&self, now: &MentionReach, people: Vec<Person>) {
        let m = &self.message;
        let (mut put, mut gone, mut told) = (Vec::new(), Vec::new(), Vec::new());
        for p in people {
            if p.user == m.user_id {
                continue;
            }
            let online = self.online.contains(&p.user);
            let reached = now.reaches(p.user, &p.held, p.views, online);
            let before = self.before.as_ref();
            // Whoever it may have reached before (an `@here` reached some of the people then
            // online, whom nobody remembers): rows that are not there are ignored.
            let maybe_before = before.and_then(|b| b.reaches(p.user, &p.held, p.views, true));
            let was = before.and_then(|b| b.reaches(p.user, &p.held, p.views, online));
            let row = MentionRecord {
                user_id: p.user,
                message_id: m.id,
                room_id: m.room_id,
            };
            match (reached, was) {
                (Some(via), None) => {
                    // Direct mentions' rows were written with the message.
                    if via != MentionVia::User {
                        put.push(row);
                    }
                    told.push((p.user, via));
                }
                (Some(MentionVia::User), Some(_)) => {}
                // Still reached, but not by name: the row written with the message may not
                // be there (the name was added and dropped), so it is written again.
                (Some(_), Some(_)) => put.push(row),
                (None, _) if maybe_before.is_some() => gone.push(row),
                (None, _) => {}
            }
        }
        let store = &self.ctx.store;
        if let Err(e) = store.put_user_mentions(&put).await {
            tracing::warn!(message = %m.id, error = %e, "mention rows not written");
        }
        if let Err(e) = store.delete_user_mentions(&gone).await {
            tracing::warn!(message = %m.id, error = %e, "mention rows not deleted");
        }
        futures_util::stream::iter(told)
            .for_each_concurrent(AT_ONCE, |(user, via)| self.tell(user, via))
            .await;
    }

    /// A person newly reached: maybe a trim of their rows, a push per their settings, then
    /// `mention:created`.
    async fn tell(&self, user: Snowflake, via: MentionVia) {
        let (ctx, m) = (&self.ctx, &self.message);
        let one_in = u64::from(ctx.config.mention_trim_one_in.max(1));
        if chance(user, m.id).is_multiple_of(one_in) {
            let kept = ctx.config.mentions_kept;
            if let Err(e) = ctx.store.trim_user_mentions(user, kept).await {
                tracing::warn!(%user, error = %e, "mention rows not trimmed");
            }
        }
        let settings =
            crate::push::settings_or_default(&*ctx.store, user, m.room_id, self.community).await;
        let event = MentionCreated {
            room_id: m.room_id,
            message_id: m.id,
            author_id: m.user_id,
            author_name: m.username.clone(),
            snippet: m.content.chars().take(SNIPPET_CHARS).collect(),
            via,
            notify: notifies(&settings, NotifyKind::Mention, now_ms()),
        };
        if event.notify && ctx.push.is_some() {
            let whom = match via {
                MentionVia::User => "you",
                MentionVia::Role => "a role of yours",
                MentionVia::Everyone => "@everyone",
                MentionVia::Here => "@here",
            };
            let payload = PushPayload {
                kind: PushKind::Mention,
                room_id: m.room_id,
                message_id: Some(m.id),
                title: format!("{} mentioned {whom}", m.username),
                body: crate::push::snippet(&event.snippet),
                url: crate::push::room_url(m.room_id),
            };
            // The time of the post, or of the edit that mentioned them: a session focused
            // then (or since) saw it (`PresenceState::holds_push`).
            let event = crate::push::PushEvent {
                dedupe: m.id.0,
                at_ms: m.extra.edited_at.unwrap_or(m.created_at),
            };
            crate::push::send(ctx, user, payload, event).await;
        }
        // After the push offer, so that on one node a client reacting to this event (a focus
        // report) reaches the presence actor after the offer; across nodes the offer's time
        // decides.
        let frame = frame::event(events::MENTION_CREATED, &event);
        crate::remote::notify_user(ctx, user, &frame);
    }
}

/// A number that is the same for the same user and message and spread evenly otherwise
/// (SplitMix64's finalizer): one write in `trim_one_in` trims, without a counter anywhere.
fn chance(user: Snowflake, message: Snowflake) -> u64 {
    let mut z = user.0 ^ message.0.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_prefers_the_name_then_roles_then_everyone_and_here_needs_online() {
        let (ann, bob) = (Snowflake(1), Snowflake(2));
        let mut reach = MentionReach {
            users: vec![ann],
            everyone: false,
            here: true,
            roles: vec![Snowflake(9)],
        };
        assert_eq!(
            reach.reaches(ann, &[], false, false),
            Some(MentionVia::User)
        );
        assert_eq!(
            reach.reaches(bob, &[Snowflake(9)], true, false),
            Some(MentionVia::Role)
        );
        assert_eq!(
            reach.reaches(bob, &[Snowflake(9)], false, true),
            None,
            "cannot view"
        );
        assert_eq!(reach.reaches(bob, &[], true, false), None, "offline");
        assert_eq!(reach.reaches(bob, &[], true, true), Some(MentionVia::Here));
        reach.everyone = true;
        assert_eq!(
            reach.reaches(bob, &[], true, false),
            Some(MentionVia::Everyone)
        );
        assert!(!MentionReach::default().is_wide());
    }

    #[test]
    fn about_one_in_n_writes_trims() {
        let hits = (0..32_000u64)
            .filter(|n| chance(Snowflake(n % 97), Snowflake(1 << 22 | n)).is_multiple_of(32))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
