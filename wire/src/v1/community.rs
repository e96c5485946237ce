//! Community events sent to particular users (not to a room's audience): requests to join
//! and their answers, and a member's server mute and deafen. They travel as encoded frames to
//! every session of their users, on whichever node those sessions live.

use serde::{Deserialize, Serialize};

use crate::Snowflake;

/// `community:join_request`: someone asked to join a community that requires approval (to
/// the members who may accept: the owner and holders of `kick_members`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequested {
    /// The community.
    pub community_id: Snowflake,
    /// Who asks.
    pub user_id: Snowflake,
    /// Their username.
    pub username: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// `community:join_decided`: a request was accepted, declined or withdrawn (to the requester
/// and the members who may accept).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinDecided {
    /// The community.
    pub community_id: Snowflake,
    /// Who asked.
    pub user_id: Snowflake,
    /// Whether they are a member now.
    pub accepted: bool,
    /// Who decided (the requester themselves for a withdrawal).
    pub by: Snowflake,
}

/// `voice:moderated`: a moderator server-muted or -deafened you (or lifted it), in every
/// voice channel of the community (to the member's sessions).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceModerated {
    /// The community.
    pub community_id: Snowflake,
    /// The member.
    pub user_id: Snowflake,
    /// Nobody hears them.
    pub mute: bool,
    /// They hear nobody.
    pub deafen: bool,
    /// The moderator.
    pub by: Snowflake,
}

/// `voice:moved`: a moderator took you out of a voice channel, into `toChannelId` if set
/// (to the moved sessions; the client then joins that channel's voice as if asked to).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceMoved {
    /// The channel they were in.
    pub channel_id: Snowflake,
    /// Where they go, if anywhere.
    pub to_channel_id: Option<Snowflake>,
    /// The moderator.
    pub by: Snowflake,
}

/// `community:member_updated`: what you may do in a community changed (a role granted or
/// taken, a timeout, a server mute, an override naming you): fetch its channels and your
/// permissions again (to that member's sessions).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberUpdated {
    /// The community.
    pub community_id: Snowflake,
    /// The member.
    pub user_id: Snowflake,
}

/// `room:join_request`: someone asked to join a room (outside communities) that requires
/// approval, with its join code (to the room's admins).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomJoinRequested {
    /// The room.
    pub room_id: Snowflake,
    /// Who asks.
    pub user_id: Snowflake,
    /// Their username.
    pub username: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// `room:join_decided`: a request to join a room was answered or withdrawn (to the requester
/// and the room's admins).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomJoinDecided {
    /// The room.
    pub room_id: Snowflake,
    /// Who asked.
    pub user_id: Snowflake,
    /// Whether they are a member now.
    pub accepted: bool,
    /// Who decided.
    pub by: Snowflake,
}

/// The event names.
pub mod events {
    use crate::v1::event::ServerEventKind;

    /// `community:join_request`.
    pub const JOIN_REQUEST: &str = ServerEventKind::CommunityJoinRequest.name();
    /// `community:join_decided`.
    pub const JOIN_DECIDED: &str = ServerEventKind::CommunityJoinDecided.name();
    /// `voice:moderated`.
    pub const VOICE_MODERATED: &str = ServerEventKind::VoiceModerated.name();
    /// `voice:moved`.
    pub const VOICE_MOVED: &str = ServerEventKind::VoiceMoved.name();
    /// `community:member_updated`.
    pub const MEMBER_UPDATED: &str = ServerEventKind::CommunityMemberUpdated.name();
    /// `room:join_request`.
    pub const ROOM_JOIN_REQUEST: &str = ServerEventKind::RoomJoinRequest.name();
    /// `room:join_decided`.
    pub const ROOM_JOIN_DECIDED: &str = ServerEventKind::RoomJoinDecided.name();
}
