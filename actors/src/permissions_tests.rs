//! The permission rules: an exhaustive decision table for one permission bit, properties over
//! random communities, and the rank rules.

use proptest::prelude::*;

use super::*;

const OWNER: Snowflake = Snowflake(1);
const ALICE: Snowflake = Snowflake(2);
const BOB: Snowflake = Snowflake(3);
const MODS: Snowflake = Snowflake(100);
const HELPERS: Snowflake = Snowflake(101);

/// An override's effect on one bit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Neither,
    Allow,
    Deny,
    /// Both sets name it: the allow is applied last, so it wins.
    Both,
}

const SIDES: [Side; 4] = [Side::Neither, Side::Allow, Side::Deny, Side::Both];

fn overwrite(side: Side, bit: Permissions) -> Overwrite {
    let (allow, deny) = match side {
        Side::Neither => (false, false),
        Side::Allow => (true, false),
        Side::Deny => (false, true),
        Side::Both => (true, true),
    };
    Overwrite {
        allow: if allow { bit } else { Permissions::empty() },
        deny: if deny { bit } else { Permissions::empty() },
    }
}

/// Discord's order written as precedence instead of set arithmetic: the member's own
/// override decides if it names the bit; else any of their roles' overrides allowing it, else
/// any denying it; else `@everyone`'s override; else the roles themselves.
fn by_precedence(base: bool, everyone: Side, roles: &[Side], member: Side) -> bool {
    let allows = |s: Side| matches!(s, Side::Allow | Side::Both);
    if member != Side::Neither {
        return allows(member);
    }
    if roles.iter().any(|s| allows(*s)) {
        return true;
    }
    if roles.contains(&Side::Deny) {
        return false;
    }
    if everyone != Side::Neither {
        return allows(everyone);
    }
    base
}

#[test]
fn every_combination_of_grants_and_overrides_for_one_permission_follows_discords_order() {
    let bit = Permissions::ADD_REACTIONS;
    let mut cases = 0;
    for everyone_grants in [false, true] {
        for mods_grant in [false, true] {
            for helpers_grant in [false, true] {
                for has_helpers in [false, true] {
                    for everyone in SIDES {
                        for mods in SIDES {
                            for helpers in SIDES {
                                for member in SIDES {
                                    let grant = |on: bool| match on {
                                        true => bit,
                                        false => Permissions::empty(),
                                    };
                                    let community = CommunityRoles {
                                        owner: OWNER,
                                        everyone: Permissions::VIEW_CHANNEL
                                            | grant(everyone_grants),
                                        roles: HashMap::from([
                                            (
                                                MODS,
                                                RoleGrant {
                                                    position: 2,
                                                    permissions: grant(mods_grant),
                                                },
                                            ),
                                            (
                                                HELPERS,
                                                RoleGrant {
                                                    position: 1,
                                                    permissions: grant(helpers_grant),
                                                },
                                            ),
                                        ]),
                                    };
                                    let alice = MemberGrants {
                                        user: ALICE,
                                        roles: match has_helpers {
                                            true => vec![MODS, HELPERS],
                                            false => vec![MODS],
                                        },
                                        timed_out_until: None,
                                    };
                                    let channel = ChannelOverwrites {
                                        everyone: overwrite(everyone, bit),
                                        roles: HashMap::from([
                                            (MODS, overwrite(mods, bit)),
                                            (HELPERS, overwrite(helpers, bit)),
                                        ]),
                                        members: HashMap::from([(ALICE, overwrite(member, bit))]),
                                    };
                                    let base = everyone_grants
                                        || mods_grant
                                        || (has_helpers && helpers_grant);
                                    let roles: &[Side] = match has_helpers {
                                        true => &[mods, helpers],
                                        false => &[mods],
                                    };
                                    let want = by_precedence(base, everyone, roles, member);
                                    let got =
                                        community.in_channel(&alice, &channel, 0).contains(bit);
                                    assert_eq!(
                                        got, want,
                                        "grants {everyone_grants}/{mods_grant}/{helpers_grant} \
                                         helpers {has_helpers} overrides {everyone:?}/{mods:?}/\
                                         {helpers:?}/{member:?}"
                                    );
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 4096);
}

fn community() -> CommunityRoles {
    CommunityRoles {
        owner: OWNER,
        everyone: Permissions::EVERYONE_DEFAULT,
        roles: HashMap::from([
            (
                MODS,
                RoleGrant {
                    position: 2,
                    permissions: Permissions::KICK_MEMBERS
                        | Permissions::TIMEOUT_MEMBERS
                        | Permissions::MANAGE_ROLES
                        | Permissions::MANAGE_MESSAGES,
                },
            ),
            (
                HELPERS,
                RoleGrant {
                    position: 1,
                    permissions: Permissions::MUTE_MEMBERS,
                },
            ),
        ]),
    }
}

fn member(user: Snowflake, roles: &[Snowflake]) -> MemberGrants {
    MemberGrants {
        user,
        roles: roles.to_vec(),
        timed_out_until: None,
    }
}

#[test]
fn a_channel_hidden_from_everyone_shows_to_a_role_allowed_to_view_it() {
    let c = community();
    let private = ChannelOverwrites {
        everyone: Overwrite {
            allow: Permissions::empty(),
            deny: Permissions::VIEW_CHANNEL,
        },
        roles: HashMap::from([(
            MODS,
            Overwrite {
                allow: Permissions::VIEW_CHANNEL,
                deny: Permissions::empty(),
            },
        )]),
        members: HashMap::new(),
    };
    assert_eq!(
        c.in_channel(&member(ALICE, &[]), &private, 0),
        Permissions::empty(),
        "nothing at all without VIEW_CHANNEL"
    );
    let seen = c.in_channel(&member(ALICE, &[MODS]), &private, 0);
    assert!(seen.contains(Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES));
    assert_eq!(
        c.in_channel(&member(OWNER, &[]), &private, 0),
        Permissions::all()
    );
}

#[test]
fn a_timeout_leaves_only_viewing_until_it_ends() {
    let c = community();
    let mut alice = member(ALICE, &[MODS]);
    alice.timed_out_until = Some(10_000);
    let none = ChannelOverwrites::default();
    assert_eq!(
        c.in_channel(&alice, &none, 9_999),
        Permissions::VIEW_CHANNEL
    );
    assert!(
        c.in_channel(&alice, &none, 10_000)
            .contains(Permissions::SEND_MESSAGES | Permissions::KICK_MEMBERS)
    );
    // Base permissions (who may moderate) are not channel permissions: a timeout does not
    // change rank, but every channel action is refused meanwhile.
    assert!(c.base(&alice).contains(Permissions::KICK_MEMBERS));
}

#[test]
fn a_locked_channel_is_read_only_but_its_moderators_still_post() {
    let c = community();
    let locked = ChannelOverwrites {
        everyone: Overwrite {
            allow: Permissions::empty(),
            deny: Permissions::SEND_MESSAGES | Permissions::ADD_REACTIONS,
        },
        roles: HashMap::from([(
            MODS,
            Overwrite {
                allow: Permissions::SEND_MESSAGES,
                deny: Permissions::empty(),
            },
        )]),
        members: HashMap::new(),
    };
    let alice = c.in_channel(&member(ALICE, &[]), &locked, 0);
    assert!(alice.contains(Permissions::VIEW_CHANNEL));
    assert!(!alice.intersects(Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES));
    let moderator = c.in_channel(&member(BOB, &[MODS]), &locked, 0);
    assert!(moderator.contains(Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES));
    assert!(!moderator.contains(Permissions::ADD_REACTIONS));
}

#[test]
fn administrators_and_the_owner_pass_every_override_and_timeout() {
    let mut c = community();
    c.roles.insert(
        Snowflake(200),
        RoleGrant {
            position: 0,
            permissions: Permissions::ADMINISTRATOR,
        },
    );
    let deny_all = ChannelOverwrites {
        everyone: Overwrite {
            allow: Permissions::empty(),
            deny: Permissions::all(),
        },
        ..Default::default()
    };
    let mut admin = member(ALICE, &[Snowflake(200)]);
    admin.timed_out_until = Some(u64::MAX);
    assert_eq!(c.in_channel(&admin, &deny_all, 0), Permissions::all());
    assert_eq!(
        c.in_channel(&member(OWNER, &[]), &deny_all, 0),
        Permissions::all()
    );
}

#[test]
fn roles_are_managed_and_members_moderated_only_from_above() {
    let c = community();
    let moderator = member(ALICE, &[MODS]);
    let helper = member(BOB, &[HELPERS]);
    let owner = member(OWNER, &[]);
    assert!(c.may_manage_role(&moderator, HELPERS));
    assert!(!c.may_manage_role(&moderator, MODS), "not one's own rank");
    assert!(!c.may_manage_role(&helper, HELPERS), "no MANAGE_ROLES");
    assert!(c.may_manage_role(&owner, MODS));
    assert!(!c.may_manage_role(&owner, Snowflake(999)), "no such role");

    assert!(c.may_moderate(&moderator, &helper, Permissions::KICK_MEMBERS));
    assert!(!c.may_moderate(&moderator, &helper, Permissions::BAN_MEMBERS));
    assert!(
        !c.may_moderate(&helper, &moderator, Permissions::MUTE_MEMBERS),
        "outranked"
    );
    let peer = member(BOB, &[MODS]);
    assert!(
        !c.may_moderate(&moderator, &peer, Permissions::KICK_MEMBERS),
        "same rank"
    );
    assert!(!c.may_moderate(&moderator, &owner, Permissions::KICK_MEMBERS));
    assert!(
        !c.may_moderate(&owner, &owner, Permissions::KICK_MEMBERS),
        "not oneself"
    );
    assert!(c.may_moderate(&owner, &moderator, Permissions::BAN_MEMBERS));
}

fn permissions() -> impl Strategy<Value = Permissions> {
    any::<u64>().prop_map(Permissions::from_bits_truncate)
}

fn overwrites() -> impl Strategy<Value = Overwrite> {
    (permissions(), permissions()).prop_map(|(allow, deny)| Overwrite { allow, deny })
}

/// A community with up to 6 roles (ids 100..106), a member holding some of them (and ids of
/// roles that do not exist), and a channel's overrides.
fn cases() -> impl Strategy<Value = (CommunityRoles, MemberGrants, ChannelOverwrites, u64)> {
    (
        permissions(),
        proptest::collection::vec((0u32..10, permissions()), 0..6),
        proptest::collection::vec(100u64..110, 0..8),
        proptest::option::of(0u64..2_000),
        overwrites(),
        proptest::collection::vec((100u64..106, overwrites()), 0..6),
        proptest::option::of(overwrites()),
        0u64..2_000,
    )
        .prop_map(
            |(everyone, roles, held, timeout, everyone_ow, role_ows, own, now)| {
                let community = CommunityRoles {
                    owner: OWNER,
                    everyone,
                    roles: roles
                        .into_iter()
                        .enumerate()
                        .map(|(i, (position, permissions))| {
                            (
                                Snowflake(100 + i as u64),
                                RoleGrant {
                                    position,
                                    permissions,
                                },
                            )
                        })
                        .collect(),
                };
                let alice = MemberGrants {
                    user: ALICE,
                    roles: held.into_iter().map(Snowflake).collect(),
                    timed_out_until: timeout,
                };
                let channel = ChannelOverwrites {
                    everyone: everyone_ow,
                    roles: role_ows
                        .into_iter()
                        .map(|(id, o)| (Snowflake(id), o))
                        .collect(),
                    members: own.into_iter().map(|o| (ALICE, o)).collect(),
                };
                (community, alice, channel, now)
            },
        )
}

proptest! {
    #[test]
    fn what_one_permission_needs_is_never_missing((c, alice, channel, now) in cases()) {
        let set = c.in_channel(&alice, &channel, now);
        if set != Permissions::all() {
            prop_assert!(set.is_empty() || set.contains(Permissions::VIEW_CHANNEL));
            if !set.contains(Permissions::SEND_MESSAGES) {
                prop_assert!(!set.intersects(Permissions::ATTACH_FILES | Permissions::MENTION_EVERYONE));
            }
            if !set.contains(Permissions::CONNECT) {
                prop_assert!(!set.contains(Permissions::SPEAK));
            }
            if alice.timed_out_until.is_some_and(|until| now < until) {
                prop_assert!(Permissions::VIEW_CHANNEL.contains(set));
            }
        }
    }

    #[test]
    fn the_order_of_a_members_roles_does_not_matter((c, alice, channel, now) in cases()) {
        let mut reversed = alice.clone();
        reversed.roles.reverse();
        prop_assert_eq!(c.in_channel(&alice, &channel, now), c.in_channel(&reversed, &channel, now));
        prop_assert_eq!(c.rank(&alice), c.rank(&reversed));
    }

    #[test]
    fn an_administrator_or_the_owner_may_do_everything((c, alice, channel, now) in cases()) {
        let admin = c.base(&alice).contains(Permissions::ADMINISTRATOR);
        prop_assert_eq!(admin, c.in_channel(&alice, &channel, now) == Permissions::all() && c.base(&alice) == Permissions::all());
        let owner = MemberGrants { user: OWNER, ..alice };
        prop_assert_eq!(c.in_channel(&owner, &channel, now), Permissions::all());
    }

    #[test]
    fn without_overrides_a_channel_grants_the_base((c, alice, _channel, now) in cases()) {
        let mut awake = alice.clone();
        awake.timed_out_until = None;
        let set = c.in_channel(&awake, &ChannelOverwrites::default(), now);
        let base = c.base(&awake);
        prop_assert!(base.contains(set));
        if base.contains(Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES | Permissions::CONNECT) {
            prop_assert_eq!(set, base);
        }
    }
}
