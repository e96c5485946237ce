//! Reading a room's members when it starts (rooms of their own: a community channel reads
//! its members as they act, `channel.rs`).

use std::collections::HashMap;

use voiceflow_schema::StoreError;
use voiceflow_wire::Snowflake;

use super::Member;
use crate::context::NodeContext;

/// Every member of `room`, with their current usernames (a member whose account is gone is
/// left out).
pub(super) async fn read(
    ctx: &NodeContext,
    room: Snowflake,
) -> Result<HashMap<Snowflake, Member>, StoreError> {
    let mut members = HashMap::new();
    let list = ctx.store.room_members(room).await?;
    // Names 32 at a time, not one round trip after another (large rooms).
    for chunk in list.chunks(32) {
        let mut names = tokio::task::JoinSet::new();
        for m in chunk {
            let (store, m) = (ctx.store.clone(), m.clone());
            names
                .spawn(async move { Ok::<_, StoreError>((store.user_by_id(m.user_id).await?, m)) });
        }
        while let Some(done) = names.join_next().await {
            let (user, m) = done.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            let Some(user) = user else { continue };
            members.insert(
                m.user_id,
                Member {
                    role: m.role,
                    username: user.username,
                    joined_at: m.joined_at,
                },
            );
        }
    }
    Ok(members)
}
