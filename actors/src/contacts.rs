//! Who may reach whom: blocks and each user's contact setting decide whether a direct
//! conversation may be opened (`POST /dms`), a call rung, or a direct message posted.

use std::collections::HashSet;

use voiceflow_schema::{ContactPolicy, RoomKind, Store};
use voiceflow_wire::Snowflake;

use crate::error::ActorError;

/// Whether either of the two blocked the other (a direct message between them is refused).
pub async fn blocked_between(
    store: &dyn Store,
    from: Snowflake,
    to: Snowflake,
) -> Result<Option<ActorError>, ActorError> {
    if store.block(to, from).await?.is_some() {
        return Ok(Some(ActorError::Forbidden(
            "this person does not accept messages or calls from you",
        )));
    }
    if store.block(from, to).await?.is_some() {
        return Ok(Some(ActorError::Forbidden(
            "you blocked this person; unblock them first",
        )));
    }
    Ok(None)
}

/// Whether `from` may open a direct conversation with `to` or call them: neither blocked the
/// other, and `to`'s contact setting lets `from` in. FORBIDDEN (with the reason) otherwise.
pub async fn may_contact(
    store: &dyn Store,
    from: Snowflake,
    to: Snowflake,
) -> Result<(), ActorError> {
    if let Some(refusal) = blocked_between(store, from, to).await? {
        return Err(refusal);
    }
    let policy = store
        .user_settings(to)
        .await?
        .map(|s| s.contact)
        .unwrap_or_default();
    match policy {
        ContactPolicy::Everyone => Ok(()),
        ContactPolicy::Nobody => Err(ActorError::Forbidden(
            "this person does not accept direct messages or calls",
        )),
        ContactPolicy::SharedRoom if share_a_room(store, from, to).await? => Ok(()),
        ContactPolicy::SharedRoom => Err(ActorError::Forbidden(
            "this person only accepts direct messages and calls from people in their rooms",
        )),
    }
}

/// Whether the two are members of one room that is not a direct conversation.
async fn share_a_room(store: &dyn Store, a: Snowflake, b: Snowflake) -> Result<bool, ActorError> {
    let theirs: HashSet<Snowflake> = store
        .user_rooms(b)
        .await?
        .into_iter()
        .map(|m| m.room_id)
        .collect();
    for membership in store.user_rooms(a).await? {
        if !theirs.contains(&membership.room_id) {
            continue;
        }
        let shared = store
            .room_by_id(membership.room_id)
            .await?
            .is_some_and(|room| room.kind != RoomKind::Dm);
        if shared {
            return Ok(true);
        }
    }
    Ok(false)
}
