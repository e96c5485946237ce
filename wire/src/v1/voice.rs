//! Voice channel signalling over the WebSocket. The client offers in `voice:join` and gets the
//! server's answer in the ack; ICE candidates trickle as `voice:signal {candidate}` both ways;
//! when the tracks a client receives change the server sends `voice:signal {sdp}` (an offer)
//! and the client answers with `voice:signal {sdp}`; `voice:leave` ends it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::Snowflake;

/// `voice:join`: join a voice channel with the client's SDP offer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceJoin {
    /// The voice channel (a room of kind `voice`).
    pub channel_id: Snowflake,
    /// The client's offer.
    pub sdp: String,
}

/// Ack of `voice:join`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceJoined {
    /// The channel.
    pub channel_id: Snowflake,
    /// The server's answer.
    pub sdp: String,
    /// Everyone in the channel now (the joiner included).
    pub participants: Vec<VoiceParticipant>,
    /// STUN/TURN servers for the client's connection.
    pub ice_servers: Vec<IceServer>,
}

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A participant of a voice channel (`voice:state` carries the same fields).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct VoiceMember {
    /// The channel.
    pub channel_id: Snowflake,
    /// The user.
    pub user_id: Snowflake,
    /// Their username.
    pub username: String,
    /// Their packets are dropped at the server.
    pub muted: bool,
    /// They receive nothing.
    pub deafened: bool,
    /// Speaking now (from the audio levels, computed at the server).
    pub speaking: bool,
    /// On a stage: `host`, `speaker` or `listener`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A participant as `voice:user_joined`, `voice:state` and the `voice:join` ack show them:
/// [`VoiceMember`]'s fields and what they publish besides their microphone. (The voice list
/// of `room:join`'s ack stays [`VoiceMember`]: it crosses nodes in a form version 10 of the
/// cluster protocol fixed; `voice:state` events bring the flags.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceParticipant {
    /// Who, and their audio state.
    #[serde(flatten)]
    pub member: VoiceMember,
    /// Their session in the channel (as a string): the tracks they publish are named by it
    /// (`camera-<sessionId>`, stream `voice-<sessionId>`).
    #[serde(default)]
    pub session_id: String,
    /// Their camera is on (a `camera-<sessionId>` track comes with it).
    #[serde(default)]
    pub video: bool,
    /// They share their screen (`screen-<sessionId>`, and `screen_audio-<sessionId>` when
    /// they share its sound).
    #[serde(default)]
    pub screen: bool,
}

/// A video track a participant publishes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum VideoTrack {
    /// The camera.
    Camera,
    /// The screen share (its audio follows it).
    Screen,
}

/// Which simulcast layer of a camera a subscriber wants at most: the server forwards the
/// highest layer at or below it that the publisher sends and the subscriber's bandwidth
/// estimate fits, switching at keyframes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum VideoLayer {
    /// The smallest (small tiles).
    Low,
    /// The middle one.
    Medium,
    /// Full size (a spotlight).
    High,
}

/// `voice:subscribe`: stop (`paused: true`) or resume receiving one participant's video (a
/// client pauses the tiles it does not display), and for a camera the largest simulcast layer
/// wanted (`layer`, for the size the tile is shown at; absent: unchanged, at first the
/// largest); the ack echoes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceSubscribe {
    /// The channel.
    pub channel_id: Snowflake,
    /// Whose video.
    pub user_id: Snowflake,
    /// Which.
    pub track: VideoTrack,
    /// Paused (not forwarded) or not; absent: not paused.
    #[serde(default)]
    pub paused: bool,
    /// The largest camera layer wanted (ignored for a screen share, which is sent in one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<VideoLayer>,
}

/// `stage:hand_raise`, `stage:hand_lower` (for oneself), `stage:promote`, `stage:demote`,
/// `stage:kick`, `stage:ban` (a `userId`; hosts only), `stage:end` (hosts only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRequest {
    /// The stage.
    pub channel_id: Snowflake,
    /// Whom it concerns (promote, demote, kick, ban).
    #[serde(default)]
    pub user_id: Option<Snowflake>,
}

/// A raised hand.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandRaise {
    /// Who.
    pub user_id: Snowflake,
    /// When (Unix ms): the queue is in this order.
    pub at: u64,
}

/// `stage:updated`: what changed on a stage, and the stage now (also the ack of `stage:*`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageUpdated {
    /// The stage.
    pub channel_id: Snowflake,
    /// `hand_raise`, `hand_lower`, `promote`, `demote`, `kick`, `ban` or `end`.
    pub action: String,
    /// Whom it concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Snowflake>,
    /// Who did it.
    pub by: Snowflake,
    /// Everyone on the stage, with roles.
    pub participants: Vec<VoiceMember>,
    /// Raised hands, oldest first.
    pub queue: Vec<HandRaise>,
}

/// `voice:signal`, both ways: an ICE candidate or an SDP (server: offer; client: answer).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceSignal {
    /// The channel.
    pub channel_id: Snowflake,
    /// `{candidate, sdpMid, sdpMLineIndex, usernameFragment?}` as browsers produce it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Value>,
    /// An SDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
}

/// `voice:state`: mute and deafen, camera and screen share on or off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceStateUpdate {
    /// The channel.
    pub channel_id: Snowflake,
    /// Mute (unchanged when absent).
    #[serde(default)]
    pub muted: Option<bool>,
    /// Deafen (unchanged when absent).
    #[serde(default)]
    pub deafened: Option<bool>,
    /// Publish the camera (the offer's first video section; unchanged when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<bool>,
    /// Publish the screen share (second video section, and second audio section if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<bool>,
}

/// `voice:leave`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceChannelRef {
    /// The channel.
    pub channel_id: Snowflake,
}

/// `voice:ice_servers {channelId}`: the STUN/TURN servers (with fresh TURN credentials) to
/// build the connection of that channel with, before the offer (`voice:join` carries them too).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceIceServers {
    /// The channel.
    pub channel_id: Snowflake,
    /// STUN/TURN servers for the client's connection.
    pub ice_servers: Vec<IceServer>,
}

/// `voice:user_left`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceUserLeft {
    /// The channel.
    pub channel_id: Snowflake,
    /// Who.
    pub user_id: Snowflake,
    /// `left`, `disconnected` (connection failed or heartbeats stopped), `rejoin`, `removed`
    /// (off a stage) or `moved` (a moderator moved them to another channel).
    pub reason: String,
}

/// Server event names of voice.
pub mod events {
    use crate::v1::event::ServerEventKind;

    /// Someone joined the channel (data: [`super::VoiceParticipant`]).
    pub const USER_JOINED: &str = ServerEventKind::VoiceUserJoined.name();
    /// Someone left (data: [`super::VoiceUserLeft`]).
    pub const USER_LEFT: &str = ServerEventKind::VoiceUserLeft.name();
    /// Mute/deafen/speaking/video/screen changed (data: [`super::VoiceParticipant`]).
    pub const STATE: &str = ServerEventKind::VoiceState.name();
    /// A candidate or an offer for this client (data: [`super::VoiceSignal`]).
    pub const SIGNAL: &str = ServerEventKind::VoiceSignal.name();
    /// A stage changed (data: [`super::StageUpdated`]).
    pub const STAGE_UPDATED: &str = ServerEventKind::StageUpdated.name();
}
