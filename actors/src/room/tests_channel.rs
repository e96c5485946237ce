//! A community channel's room at scale: it reads no members when it starts, admits each the
//! first time they act (with their stored membership and current name), and removes a stored
//! membership it never saw.

use voiceflow_schema::{
    ChannelRecord, CommunityMember, CommunityRecord, Membership, Role, RoleRecord,
};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

use super::tests::fixture;
use super::*;
use crate::context::ActorConfig;

/// Makes the fixture's room a channel of a community that `alice` owns and `bob` is in (a
/// stored member of the channel's room too); returns bob.
async fn channel_with_bob(f: &super::tests::Fixture) -> Snowflake {
    let store = &f.ctx.store;
    let (community, bob) = (f.ctx.ids.next_id(), f.ctx.ids.next_id());
    let user = voiceflow_schema::fixtures::user(bob.0, "Bob", "b@example.com");
    store.create_user(&user).await.expect("bob");
    let record = CommunityRecord {
        id: community,
        name: "Guild".into(),
        description: String::new(),
        icon: None,
        owner_id: f.alice,
        created_at: 0,
        updated_at: 0,
        require_approval: false,
    };
    let everyone = RoleRecord {
        community_id: community,
        id: community,
        name: "@everyone".into(),
        color: 0,
        position: 0,
        permissions: Permissions::EVERYONE_DEFAULT,
        created_at: 0,
    };
    let member = |user| CommunityMember {
        community_id: community,
        user_id: user,
        roles: Vec::new(),
        timed_out_until: None,
        joined_at: 0,
        voice_muted: false,
        voice_deafened: false,
    };
    store
        .create_community(&record, &everyone, &member(f.alice))
        .await
        .expect("community");
    store
        .put_community_member(&member(bob))
        .await
        .expect("bob in");
    store
        .put_channel(&ChannelRecord {
            community_id: community,
            channel_id: f.room.id,
            category_id: None,
            position: 0,
        })
        .await
        .expect("channel");
    let stored = Membership {
        room_id: f.room.id,
        user_id: bob,
        role: Role::Member,
        joined_at: 7,
    };
    store.put_member(&stored).await.expect("room member");
    bob
}

#[tokio::test]
async fn a_channel_reads_its_members_as_they_act_and_removes_unseen_ones() {
    let f = fixture(ActorConfig::default()).await;
    let bob = channel_with_bob(&f).await;
    let mut state = RoomState::load(f.room.clone(), f.ctx.clone())
        .await
        .expect("load");
    assert!(state.member_ids().is_empty(), "no member read at start");

    // Bob acts: his stored membership is admitted as it was, with his name.
    state.may_type(bob).await.expect("bob may type");
    assert_eq!(state.member_ids(), vec![bob]);
    let listed = state.participants(false);
    assert_eq!(listed.first().map(|p| p.username.as_str()), Some("Bob"));
    let stored = f.ctx.store.member(f.room.id, bob).await.expect("read");
    assert_eq!(
        stored.map(|m| m.joined_at),
        Some(7),
        "the stored membership, not rewritten"
    );

    // Alice was never seen; removing her (a kick) removes her stored membership.
    state
        .handle_remove_member(f.alice, Some(bob))
        .await
        .expect("remove unseen");
    let gone = f.ctx.store.member(f.room.id, f.alice).await.expect("read");
    assert!(gone.is_none());
    // Nobody to remove the second time.
    assert!(state.handle_remove_member(f.alice, None).await.is_err());
}
