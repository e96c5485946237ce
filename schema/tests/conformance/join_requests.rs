//! Approval of joins and voice moderation: a community's `require_approval`, a member's
//! server mute and deafen, and the requests to join.

use voiceflow_schema::JoinRequest;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::Permissions;

use crate::Backend;
use crate::communities::{community, found, member, role};

fn request(community: u64, user: u64) -> JoinRequest {
    JoinRequest {
        community_id: Snowflake(community),
        user_id: Snowflake(user),
        invite_code: format!("CODE{user}"),
        created_at: 7_000 + user,
    }
}

/// `require_approval` and a member's voice flags round-trip; requests are kept once (a
/// second request does not replace the first), paged by user id, taken exactly once even by
/// racing takers, and go with their community.
pub async fn join_requests_are_paged_taken_once_and_go_with_their_community(backend: Backend) {
    let store = backend.open().await;
    let (c, owner) = (3_800_001, 3_800_100);
    found(
        store.as_ref(),
        c,
        owner,
        "Gated",
        &role(c, c, 0, Permissions::VIEW_CHANNEL),
    )
    .await;
    let mut record = community(c, owner, "Gated");
    record.require_approval = true;
    store.update_community(&record).await.expect("update");
    let read = store.community_by_id(Snowflake(c)).await.expect("read");
    assert_eq!(read.map(|r| r.require_approval), Some(true));

    let mut muted = member(c, 3_800_150, &[]);
    muted.voice_muted = true;
    muted.voice_deafened = true;
    store.put_community_member(&muted).await.expect("join");
    let back = store
        .community_member(Snowflake(c), Snowflake(3_800_150))
        .await
        .expect("read");
    assert_eq!(back, Some(muted));

    let users = [3_800_205, 3_800_201, 3_800_203];
    for user in users {
        store
            .put_join_request(&request(c, user))
            .await
            .expect("ask");
    }
    let mut again = request(c, users[0]);
    again.invite_code = "OTHER".into();
    store.put_join_request(&again).await.expect("ask again");
    let first = store
        .join_requests(Snowflake(c), None, 2)
        .await
        .expect("page");
    assert_eq!(first, vec![request(c, users[1]), request(c, users[2])]);
    let rest = store
        .join_requests(Snowflake(c), Some(Snowflake(users[2])), 2)
        .await
        .expect("page");
    assert_eq!(rest, vec![request(c, users[0])], "the first request stays");

    assert_eq!(
        store
            .take_join_request(Snowflake(c), Snowflake(users[1]))
            .await
            .expect("take"),
        Some(request(c, users[1]))
    );
    assert_eq!(
        store
            .take_join_request(Snowflake(c), Snowflake(users[1]))
            .await
            .expect("take again"),
        None
    );
    // Two moderators answer one request at once: exactly one takes it.
    let takers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .take_join_request(Snowflake(c), Snowflake(users[2]))
                .await
                .expect("take")
        })
    });
    let mut taken = 0;
    for taker in takers {
        if taker.await.expect("task").is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, 1, "one taker wins");

    store.delete_community(Snowflake(c)).await.expect("delete");
    assert_eq!(
        store
            .join_requests(Snowflake(c), None, 10)
            .await
            .expect("gone"),
        vec![]
    );
}
