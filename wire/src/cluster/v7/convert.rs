//! Conversions between versions 7 and 8. Every version 8 message has a version 7 form, and
//! back: version 8 only changed how the same fields are encoded (typed instead of JSON text,
//! snowflakes instead of `u64`) and added `MemberInfo::protocols`.

use serde::Serialize;

use super::*;
use crate::ErrorBody;
use crate::cluster::PeerFrameError;
use crate::cluster::room::CallAnswer;
use crate::ids::Snowflake;
use v8::{PeerMsg as PeerMsg8, RoomCall as RoomCall8, RoomDelivery as RoomDelivery8};
use v8::{RoomOp as RoomOp8, UserOp as UserOp8};

mod v8 {
    pub use crate::cluster::{
        MemberInfo, PeerMsg, PresenceOp, RoomCall, RoomDelivery, RoomOp, UserOp,
    };
}

/// A version 7 payload that is not the JSON its version 8 type reads: the frame is refused
/// as any undecodable frame is (version 7 nodes wrote it with the same types, so this only
/// happens with a broken peer).
fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, PeerFrameError> {
    serde_json::from_str(text).map_err(|e| PeerFrameError::Decode(format!("version 7 {what}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn member_up(m: MemberInfo) -> v8::MemberInfo {
    v8::MemberInfo {
        node_id: m.node_id,
        incarnation: m.incarnation,
        quic_addr: m.quic_addr,
        http_addr: m.http_addr,
        state: m.state,
        rooms: m.rooms,
        sessions: m.sessions,
        protocols: (7, 7),
    }
}

fn member_down(m: &v8::MemberInfo) -> MemberInfo {
    MemberInfo {
        node_id: m.node_id,
        incarnation: m.incarnation,
        quic_addr: m.quic_addr.clone(),
        http_addr: m.http_addr.clone(),
        state: m.state,
        rooms: m.rooms,
        sessions: m.sessions,
    }
}

/// A version 7 message as the current types (on decode).
pub fn upgrade(msg: PeerMsg) -> Result<PeerMsg8, PeerFrameError> {
    Ok(match msg {
        PeerMsg::Hello(m) => PeerMsg8::Hello(member_up(m)),
        PeerMsg::Heartbeat { from, members } => PeerMsg8::Heartbeat {
            from: member_up(from),
            members: members.into_iter().map(member_up).collect(),
        },
        PeerMsg::ToRoom {
            room,
            origin,
            hops,
            op,
        } => PeerMsg8::ToRoom {
            room: Snowflake(room),
            origin,
            hops,
            op: op_up(op)?,
        },
        PeerMsg::FromRoom { room, delivery } => PeerMsg8::FromRoom {
            room: Snowflake(room),
            delivery: delivery_up(delivery)?,
        },
        PeerMsg::ToPresence { user, op } => PeerMsg8::ToPresence {
            user: Snowflake(user),
            op: presence_up(op),
        },
        PeerMsg::ToUser { user, frames } => PeerMsg8::ToUser {
            user: Snowflake(user),
            frames,
        },
        PeerMsg::ForUser { user, op } => PeerMsg8::ForUser {
            user: Snowflake(user),
            op: match op {
                UserOp::Renamed { username } => UserOp8::Renamed { username },
                UserOp::Close {
                    family,
                    code,
                    reason,
                } => UserOp8::Close {
                    family,
                    code,
                    reason,
                },
            },
        },
    })
}

fn presence_up(op: PresenceOp) -> v8::PresenceOp {
    match op {
        PresenceOp::Attach { session_id } => v8::PresenceOp::Attach { session_id },
        PresenceOp::Beat {
            session_id,
            idle_ms,
            chosen,
        } => v8::PresenceOp::Beat {
            session_id,
            idle_ms,
            chosen,
        },
        PresenceOp::Detach { session_id } => v8::PresenceOp::Detach { session_id },
        PresenceOp::Set { chosen } => v8::PresenceOp::Set { chosen },
        PresenceOp::InCall { channel, on, at_ms } => v8::PresenceOp::InCall {
            channel: Snowflake(channel),
            on,
            at_ms,
        },
        PresenceOp::Probe { room } => v8::PresenceOp::Probe {
            room: Snowflake(room),
        },
    }
}

fn op_up(op: RoomOp) -> Result<RoomOp8, PeerFrameError> {
    Ok(match op {
        RoomOp::Join {
            session_id,
            user_id,
            username,
            since,
            epoch,
            members,
            req_id,
        } => RoomOp8::Join {
            session_id,
            user_id: Snowflake(user_id),
            username,
            since,
            epoch,
            members,
            req_id,
        },
        RoomOp::Leave {
            session_id,
            user_id,
            req_id,
        } => RoomOp8::Leave {
            session_id,
            user_id: Snowflake(user_id),
            req_id,
        },
        RoomOp::Post {
            session_id,
            user_id,
            username,
            post_json,
            req_id,
        } => RoomOp8::Post {
            session_id,
            user_id: Snowflake(user_id),
            username,
            post: json("post", &post_json)?,
            req_id,
        },
        RoomOp::Act {
            session_id,
            user_id,
            username,
            action_json,
            req_id,
        } => RoomOp8::Act {
            session_id,
            user_id: Snowflake(user_id),
            username,
            action: json("action", &action_json)?,
            req_id,
        },
        RoomOp::Voice {
            session_id,
            user_id,
            username,
            op_json,
            req_id,
        } => RoomOp8::Voice {
            session_id,
            user_id: Snowflake(user_id),
            username,
            op: json("voice op", &op_json)?,
            req_id,
        },
        RoomOp::Presence {
            user_id,
            status,
            last_seen,
            version,
            source,
        } => RoomOp8::Presence {
            user_id: Snowflake(user_id),
            status,
            last_seen,
            version,
            source,
        },
        RoomOp::Typing {
            session_id,
            user_id,
            start,
            req_id,
        } => RoomOp8::Typing {
            session_id,
            user_id: Snowflake(user_id),
            start,
            req_id,
        },
        RoomOp::Renamed { user_id, username } => RoomOp8::Renamed {
            user_id: Snowflake(user_id),
            username,
        },
        RoomOp::Call { call_id, call } => RoomOp8::Call {
            call_id,
            call: match call {
                RoomCall::AddMember { user_id, username } => RoomCall8::AddMember {
                    user_id: Snowflake(user_id),
                    username,
                },
                RoomCall::RemoveMember {
                    user_id,
                    removed_by,
                } => RoomCall8::RemoveMember {
                    user_id: Snowflake(user_id),
                    removed_by: removed_by.map(Snowflake),
                },
                RoomCall::DeleteMessage { message_id, by } => RoomCall8::DeleteMessage {
                    message_id: Snowflake(message_id),
                    by: Snowflake(by),
                },
                RoomCall::Updated { room_json } => RoomCall8::Updated {
                    room: Box::new(json("room record", &room_json)?),
                },
                RoomCall::DeleteRoom { by } => RoomCall8::DeleteRoom { by: Snowflake(by) },
                RoomCall::Members => RoomCall8::Members,
            },
        },
        RoomOp::Release { call_id } => RoomOp8::Release { call_id },
    })
}

/// A version 7 call answer: its JSON says which kind it is (`null` for done, an array of
/// members, a join reply object), as each call has one answer type.
fn answer_up(json_text: &str) -> Result<CallAnswer, PeerFrameError> {
    let value: serde_json::Value = json("call answer", json_text)?;
    let bad = |e: serde_json::Error| PeerFrameError::Decode(format!("version 7 call answer: {e}"));
    Ok(match value {
        serde_json::Value::Null => CallAnswer::Done,
        serde_json::Value::Array(_) => {
            CallAnswer::Members(serde_json::from_value(value).map_err(bad)?)
        }
        _ => CallAnswer::Joined(serde_json::from_value(value).map_err(bad)?),
    })
}

fn delivery_up(delivery: RoomDelivery) -> Result<RoomDelivery8, PeerFrameError> {
    Ok(match delivery {
        RoomDelivery::ToSession {
            session_id,
            last,
            frames,
        } => RoomDelivery8::ToSession {
            session_id,
            last,
            frames,
        },
        RoomDelivery::Subscribed { session_id } => RoomDelivery8::Subscribed { session_id },
        RoomDelivery::Forget { session_id } => RoomDelivery8::Forget { session_id },
        RoomDelivery::Fanout {
            except_user,
            last,
            frames,
        } => RoomDelivery8::Fanout {
            except_user: except_user.map(Snowflake),
            last,
            frames,
        },
        RoomDelivery::Closed => RoomDelivery8::Closed,
        RoomDelivery::CallResult { call_id, result } => {
            RoomDelivery8::CallResult {
                call_id,
                result: match result {
                    Ok(text) => Ok(answer_up(&text)?),
                    // As version 7 read it: an error body that does not parse means "unavailable".
                    Err(text) => Err(serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(
                        |_| ErrorBody::unavailable("room temporarily unavailable, retry"),
                    )),
                },
            }
        }
        RoomDelivery::JoinLater { session_id } => RoomDelivery8::JoinLater { session_id },
        RoomDelivery::Released { call_id, busy } => RoomDelivery8::Released { call_id, busy },
    })
}

/// A current message in its version 7 form (on encode, for a link that negotiated 7).
pub fn downgrade(msg: &PeerMsg8) -> PeerMsg {
    match msg {
        // Never written at version 7: `encode_at` refuses them first (`v8::needs`). Were
        // they converted anyway, they would become frames for nobody.
        PeerMsg8::Search { .. }
        | PeerMsg8::SearchAnswer { .. }
        | PeerMsg8::Swim { .. }
        | PeerMsg8::HandedOff { .. } => PeerMsg::ToUser {
            user: 0,
            frames: Vec::new(),
        },
        PeerMsg8::Hello(m) => PeerMsg::Hello(member_down(m)),
        PeerMsg8::Heartbeat { from, members } => PeerMsg::Heartbeat {
            from: member_down(from),
            members: members.iter().map(member_down).collect(),
        },
        PeerMsg8::ToRoom {
            room,
            origin,
            hops,
            op,
        } => PeerMsg::ToRoom {
            room: room.0,
            origin: *origin,
            hops: *hops,
            op: op_down(op),
        },
        PeerMsg8::FromRoom { room, delivery } => PeerMsg::FromRoom {
            room: room.0,
            delivery: delivery_down(delivery),
        },
        PeerMsg8::ToPresence { user, op } => PeerMsg::ToPresence {
            user: user.0,
            op: presence_down(op),
        },
        PeerMsg8::ToUser { user, frames } => PeerMsg::ToUser {
            user: user.0,
            frames: frames.clone(),
        },
        PeerMsg8::ForUser { user, op } => PeerMsg::ForUser {
            user: user.0,
            op: match op {
                UserOp8::Renamed { username } => UserOp::Renamed {
                    username: username.clone(),
                },
                UserOp8::Close {
                    family,
                    code,
                    reason,
                } => UserOp::Close {
                    family: family.clone(),
                    code: *code,
                    reason: reason.clone(),
                },
            },
        },
    }
}

fn presence_down(op: &v8::PresenceOp) -> PresenceOp {
    match *op {
        v8::PresenceOp::Attach { session_id } => PresenceOp::Attach { session_id },
        v8::PresenceOp::Beat {
            session_id,
            idle_ms,
            chosen,
        } => PresenceOp::Beat {
            session_id,
            idle_ms,
            chosen,
        },
        v8::PresenceOp::Detach { session_id } => PresenceOp::Detach { session_id },
        v8::PresenceOp::Set { chosen } => PresenceOp::Set { chosen },
        v8::PresenceOp::InCall { channel, on, at_ms } => PresenceOp::InCall {
            channel: channel.0,
            on,
            at_ms,
        },
        v8::PresenceOp::Probe { room } => PresenceOp::Probe { room: room.0 },
        // Never written at version 7: `encode_at` refuses them first (`v8::needs`). Were they
        // converted anyway, they would become a probe for room 0, which never exists.
        v8::PresenceOp::FocusUntimed { .. }
        | v8::PresenceOp::PushUntimed { .. }
        | v8::PresenceOp::Focus { .. }
        | v8::PresenceOp::Push { .. } => PresenceOp::Probe { room: 0 },
    }
}

fn op_down(op: &RoomOp8) -> RoomOp {
    match op {
        RoomOp8::Join {
            session_id,
            user_id,
            username,
            since,
            epoch,
            members,
            req_id,
        } => RoomOp::Join {
            session_id: *session_id,
            user_id: user_id.0,
            username: username.clone(),
            since: *since,
            epoch: *epoch,
            members: *members,
            req_id: *req_id,
        },
        RoomOp8::Leave {
            session_id,
            user_id,
            req_id,
        } => RoomOp::Leave {
            session_id: *session_id,
            user_id: user_id.0,
            req_id: *req_id,
        },
        RoomOp8::Post {
            session_id,
            user_id,
            username,
            post,
            req_id,
        } => RoomOp::Post {
            session_id: *session_id,
            user_id: user_id.0,
            username: username.clone(),
            post_json: to_json(post),
            req_id: *req_id,
        },
        RoomOp8::Act {
            session_id,
            user_id,
            username,
            action,
            req_id,
        } => RoomOp::Act {
            session_id: *session_id,
            user_id: user_id.0,
            username: username.clone(),
            action_json: to_json(action),
            req_id: *req_id,
        },
        RoomOp8::Voice {
            session_id,
            user_id,
            username,
            op,
            req_id,
        } => RoomOp::Voice {
            session_id: *session_id,
            user_id: user_id.0,
            username: username.clone(),
            op_json: to_json(op),
            req_id: *req_id,
        },
        RoomOp8::Presence {
            user_id,
            status,
            last_seen,
            version,
            source,
        } => RoomOp::Presence {
            user_id: user_id.0,
            status: *status,
            last_seen: *last_seen,
            version: *version,
            source: *source,
        },
        RoomOp8::Typing {
            session_id,
            user_id,
            start,
            req_id,
        } => RoomOp::Typing {
            session_id: *session_id,
            user_id: user_id.0,
            start: *start,
            req_id: *req_id,
        },
        RoomOp8::Renamed { user_id, username } => RoomOp::Renamed {
            user_id: user_id.0,
            username: username.clone(),
        },
        RoomOp8::Call { call_id, call } => RoomOp::Call {
            call_id: *call_id,
            call: match call {
                RoomCall8::AddMember { user_id, username } => RoomCall::AddMember {
                    user_id: user_id.0,
                    username: username.clone(),
                },
                RoomCall8::RemoveMember {
                    user_id,
                    removed_by,
                } => RoomCall::RemoveMember {
                    user_id: user_id.0,
                    removed_by: removed_by.map(|by| by.0),
                },
                RoomCall8::DeleteMessage { message_id, by } => RoomCall::DeleteMessage {
                    message_id: message_id.0,
                    by: by.0,
                },
                RoomCall8::Updated { room } => RoomCall::Updated {
                    room_json: to_json(room),
                },
                RoomCall8::DeleteRoom { by } => RoomCall::DeleteRoom { by: by.0 },
                RoomCall8::Members => RoomCall::Members,
                // Never written at version 7: `encode_at` refuses it first (`v8::needs`). Were
                // it converted anyway, it would become a harmless read of the member list.
                RoomCall8::DisconnectVoice { .. } => RoomCall::Members,
            },
        },
        RoomOp8::Release { call_id } => RoomOp::Release { call_id: *call_id },
    }
}

fn delivery_down(delivery: &RoomDelivery8) -> RoomDelivery {
    match delivery {
        RoomDelivery8::ToSession {
            session_id,
            last,
            frames,
        } => RoomDelivery::ToSession {
            session_id: *session_id,
            last: *last,
            frames: frames.clone(),
        },
        RoomDelivery8::Subscribed { session_id } => RoomDelivery::Subscribed {
            session_id: *session_id,
        },
        RoomDelivery8::Forget { session_id } => RoomDelivery::Forget {
            session_id: *session_id,
        },
        RoomDelivery8::Fanout {
            except_user,
            last,
            frames,
        } => RoomDelivery::Fanout {
            except_user: except_user.map(|u| u.0),
            last: *last,
            frames: frames.clone(),
        },
        RoomDelivery8::Closed => RoomDelivery::Closed,
        RoomDelivery8::CallResult { call_id, result } => RoomDelivery::CallResult {
            call_id: *call_id,
            result: match result {
                Ok(CallAnswer::Joined(reply)) => Ok(to_json(reply)),
                Ok(CallAnswer::Done) => Ok("null".into()),
                Ok(CallAnswer::Members(members)) => Ok(to_json(members)),
                Err(body) => Err(to_json(body)),
            },
        },
        RoomDelivery8::JoinLater { session_id } => RoomDelivery::JoinLater {
            session_id: *session_id,
        },
        RoomDelivery8::Released { call_id, busy } => RoomDelivery::Released {
            call_id: *call_id,
            busy: *busy,
        },
    }
}

#[cfg(test)]
mod tests;
