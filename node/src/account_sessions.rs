//! Live sessions follow the account: a rename reaches every session and every room the user
//! is in (rooms stamp messages with the name they hold), and a revoked sign-in (logout,
//! refresh-token reuse) closes its connections, on every node of the cluster.

use voiceflow_actors::NodeContext;
use voiceflow_actors::remote::account_changed;
use voiceflow_actors::room::RoomMsg;
use voiceflow_schema::StoreError;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::UserOp;

/// Close code of a connection whose sign-in was revoked.
pub const CLOSE_REVOKED: u16 = 4003;

/// Close code of a connection whose access token expired without `auth:refresh`.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// Closes every connection of `user` opened (or last extended) with a token of `family`, on
/// every node, with 4003 and `reason`.
pub fn sign_in_revoked(ctx: &NodeContext, user: Snowflake, family: &str, reason: &str) {
    let op = UserOp::Close {
        family: Some(family.to_owned()),
        code: CLOSE_REVOKED,
        reason: reason.to_owned(),
    };
    account_changed(ctx, user, &op);
}

/// Tells `user`'s sessions (every node) and running rooms (wherever they run) the account's
/// new name. A room that is not running reads it from storage when it starts. Requests from
/// this node to a room travel on that room's lane, so a message sent through this node after
/// the rename is stamped with the new name.
pub async fn renamed(ctx: &NodeContext, user: Snowflake, username: &str) -> Result<(), StoreError> {
    account_changed(
        ctx,
        user,
        &UserOp::Renamed {
            username: username.to_owned(),
        },
    );
    for membership in ctx.store.user_rooms(user).await? {
        ctx.directory.send_if_running(
            membership.room_id,
            RoomMsg::Renamed {
                user_id: user,
                username: username.to_owned(),
            },
        );
    }
    Ok(())
}
