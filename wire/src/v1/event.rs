//! The events the server sends, as one type: [`ServerEvent`] (one variant per event, with its
//! payload) and [`ServerEventKind`] (the names). The `events` constants of [`crate::v1::server`],
//! [`crate::v1::voice`] and [`crate::v1::call`] are taken from this table, so a name is written
//! once; `PROTOCOL.md`'s table of server events is checked against it (`protocol_doc_tests`).
//!
//! Acks (`{"type":"ack","id":N,"ok":…}`) are not events: they answer a request, and their
//! `data` is the request's reply type (see [`crate::v1::request::ClientEvent::reply_type`]).
//!
//! Rooms fan one encoded frame out to many sessions ([`crate::v1::frame::event`] with the
//! constants), so they need not build a [`ServerEvent`]; a frame for one connection can.

use serde::Serialize;

use crate::error::ErrorBody;
use crate::v1::call::{CallEnded, CallIncoming, CallInfo};
use crate::v1::client::Pong;
use crate::v1::community::{
    JoinDecided, JoinRequested, MemberUpdated, RoomJoinDecided, RoomJoinRequested, VoiceModerated,
    VoiceMoved,
};
use crate::v1::frame::{self, Frame};
use crate::v1::notify::MentionCreated;
use crate::v1::rich::{PresenceChanged, ReactionUpdated, ReadReceipt};
use crate::v1::server::{
    Hello, MessageDeleted, MessageView, RoomDeleted, RoomRemoved, TypingEvent, UserPresenceInRoom,
};
use crate::v1::voice::{StageUpdated, VoiceParticipant, VoiceSignal, VoiceUserLeft};

/// Defines [`ServerEvent`] and [`ServerEventKind`] from one table:
/// `Variant("event:name", Payload);`.
macro_rules! server_events {
    ($( $(#[$doc:meta])* $variant:ident($event:literal, $payload:ident); )*) => {
        /// An event the server sends: `{"type": EVENT, "data": {…}}`.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "type", content = "data")]
        pub enum ServerEvent {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\n`", $event, "`.")]
                #[serde(rename = $event)]
                $variant($payload),
            )*
        }

        /// The events the server sends, without their payloads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ServerEventKind {
            $(
                #[doc = concat!("`", $event, "`")]
                $variant,
            )*
        }

        impl ServerEventKind {
            /// Every server event, in the table's order.
            pub const ALL: &'static [ServerEventKind] = &[$(ServerEventKind::$variant),*];

            /// The name in the frame's `type` field.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ServerEventKind::$variant => $event,)*
                }
            }

            /// The event of a frame's `type`, if there is one.
            pub fn from_name(name: &str) -> Option<ServerEventKind> {
                match name {
                    $($event => Some(ServerEventKind::$variant),)*
                    _ => None,
                }
            }

            /// The name of the type the event carries in `data`.
            pub const fn payload_type(self) -> &'static str {
                match self {
                    $(ServerEventKind::$variant => stringify!($payload),)*
                }
            }
        }

        impl ServerEvent {
            /// Which event this is.
            pub fn kind(&self) -> ServerEventKind {
                match self {
                    $(ServerEvent::$variant(_) => ServerEventKind::$variant,)*
                }
            }
        }
    };
}

server_events! {
    /// The first frame of a connection.
    Hello("hello", Hello);
    /// The answer to `ping`.
    Pong("pong", Pong);
    /// A refused frame that had no `id` (one with an id gets a failed ack instead).
    Error("error", ErrorBody);
    /// A new message in a joined room.
    MessageReceived("message:received", MessageView);
    /// A message was edited (the message, with `editedAt`).
    MessageUpdated("message:updated", MessageView);
    /// A message became a tombstone.
    MessageDeleted("message:deleted", MessageDeleted);
    /// A reaction was added or removed.
    ReactionUpdated("reaction:updated", ReactionUpdated);
    /// A member's read marker moved.
    ReadReceipt("message:read_receipt", ReadReceipt);
    /// Someone's first session subscribed to the room.
    UserJoined("room:user_joined", UserPresenceInRoom);
    /// Someone's last session left the room.
    UserLeft("room:user_left", UserPresenceInRoom);
    /// The room was deleted by its admin.
    RoomDeleted("room:deleted", RoomDeleted);
    /// A room admin removed the receiving user from the room.
    RoomRemoved("room:removed", RoomRemoved);
    /// Someone started typing.
    UserTyping("user:typing", TypingEvent);
    /// Someone stopped typing (or their typing expired).
    UserStoppedTyping("user:stopped_typing", TypingEvent);
    /// A user's presence changed.
    PresenceChanged("user:presence_changed", PresenceChanged);
    /// Someone joined the room's voice session.
    VoiceUserJoined("voice:user_joined", VoiceParticipant);
    /// Someone left the room's voice session.
    VoiceUserLeft("voice:user_left", VoiceUserLeft);
    /// A voice participant muted, deafened, or started or stopped speaking.
    VoiceState("voice:state", VoiceParticipant);
    /// An ICE candidate or a new SDP offer from the server.
    VoiceSignal("voice:signal", VoiceSignal);
    /// A stage changed (also the ack of `stage:*`).
    StageUpdated("stage:updated", StageUpdated);
    /// Someone is calling (to the callee's sessions).
    CallIncoming("call:incoming", CallIncoming);
    /// A call changed state (to both people's sessions).
    CallState("call:state", CallInfo);
    /// A call ended.
    CallEnded("call:ended", CallEnded);
    /// Someone asked to join a community (to those who may accept).
    CommunityJoinRequest("community:join_request", JoinRequested);
    /// A request to join was answered (to the requester and those who may accept).
    CommunityJoinDecided("community:join_decided", JoinDecided);
    /// A moderator changed your server mute or deafen.
    VoiceModerated("voice:moderated", VoiceModerated);
    /// A moderator moved you out of a voice channel (and into another, if named).
    VoiceMoved("voice:moved", VoiceMoved);
    /// What you may do in a community changed: fetch its channels again.
    CommunityMemberUpdated("community:member_updated", MemberUpdated);
    /// Someone asked to join a room that requires approval (to its admins).
    RoomJoinRequest("room:join_request", RoomJoinRequested);
    /// A request to join a room was answered (to the requester and the admins).
    RoomJoinDecided("room:join_decided", RoomJoinDecided);
    /// You were mentioned by name (to every session of the mentioned user).
    MentionCreated("mention:created", MentionCreated);
}

impl ServerEvent {
    /// The event encoded as a frame for one connection.
    pub fn frame(&self) -> Frame {
        frame::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_as_the_frames_the_constants_make() {
        let pong = Pong { server_time: 5 };
        assert_eq!(
            ServerEvent::Pong(pong.clone()).frame(),
            frame::event(crate::v1::server::events::PONG, &pong)
        );
        for &kind in ServerEventKind::ALL {
            assert_eq!(ServerEventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(
            ServerEventKind::from_name("ack"),
            None,
            "acks are not events"
        );
    }
}
