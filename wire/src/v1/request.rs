//! The client protocol as one type: every event a client may send is a variant of
//! [`ClientRequest`], with its payload, and names the payload its ack carries
//! ([`ClientEvent::reply_type`], the aliases in [`reply`]).
//!
//! A text frame is parsed once, at the front door: the envelope ([`ClientFrame::parse`]), the
//! event name ([`ClientFrame::known_event`]), then the payload ([`ClientEvent::parse`]).
//! Everything after that (rate limits, the session) matches on the enums, so a new event is a
//! compile error wherever it must be handled. The table below is the only place where event
//! names are written; `PROTOCOL.md` is checked against it (`protocol_doc_tests`).

use serde::Serialize;

use crate::error::{ErrorBody, ErrorCode};
use crate::v1::call::{CallInfo, CallRequest};
use crate::v1::client::{
    AuthRefresh, AuthRefreshed, ClientFrame, FrameError, JoinRoom, LeaveRoom, Ping, Pong, RoomRef,
    SendMessage, SentReply, Typing,
};
use crate::v1::push::SessionFocus;
use crate::v1::rich::{
    DeleteMessage, MarkRead, MessageRef, MessageReply, PresenceStatus, PresenceUpdate,
    ReactionRequest, ReactionUpdated, UpdateMessage,
};
use crate::v1::server::JoinReply;
use crate::v1::voice::{
    StageRequest, StageUpdated, VoiceChannelRef, VoiceIceServers, VoiceJoin, VoiceJoined,
    VoiceParticipant, VoiceSignal, VoiceStateUpdate, VoiceSubscribe,
};

/// Defines [`ClientRequest`], [`ClientEvent`] and [`reply`] from one table:
/// `Variant("event:name", Payload) -> Reply;` (the reply: what an ack's `data` holds).
macro_rules! client_requests {
    ($( $(#[$doc:meta])* $variant:ident($event:literal, $payload:ident) -> $reply:ident; )*) => {
        /// A client request: one variant per event, holding its payload. Serializes to the
        /// frame's shape, `{"type": EVENT, "data": {…}}` (the ack `id` sits beside it, see
        /// [`RequestFrame`]).
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "type", content = "data")]
        pub enum ClientRequest {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\n`", $event, "`; ack `data`: [`", stringify!($reply), "`].")]
                #[serde(rename = $event)]
                $variant($payload),
            )*
        }

        /// The events a client may send, without their payloads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ClientEvent {
            $(
                #[doc = concat!("`", $event, "`")]
                $variant,
            )*
        }

        impl ClientEvent {
            /// Every client event, in the table's order.
            pub const ALL: &'static [ClientEvent] = &[$(ClientEvent::$variant),*];

            /// The name in the frame's `type` field.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ClientEvent::$variant => $event,)*
                }
            }

            /// The event of a frame's `type`, if there is one.
            pub fn from_name(name: &str) -> Option<ClientEvent> {
                match name {
                    $($event => Some(ClientEvent::$variant),)*
                    _ => None,
                }
            }

            /// The name of the type an ack of this request carries in `data`.
            pub const fn reply_type(self) -> &'static str {
                match self {
                    $(ClientEvent::$variant => stringify!($reply),)*
                }
            }

            /// Parses the frame's `data` as this event's payload; a wrong shape is a
            /// VALIDATION_ERROR naming the field.
            pub fn parse(self, frame: &ClientFrame<'_>) -> Result<ClientRequest, FrameError> {
                let request = match self {
                    $(ClientEvent::$variant => ClientRequest::$variant(frame.payload()?),)*
                };
                request.check().map_err(|error| FrameError { id: frame.id, error })?;
                Ok(request)
            }
        }

        impl ClientRequest {
            /// Which event this is.
            pub fn event(&self) -> ClientEvent {
                match self {
                    $(ClientRequest::$variant(_) => ClientEvent::$variant,)*
                }
            }
        }

        /// The ack payload of each request, under the request's variant name (so
        /// `reply::SendMessage` is what the ack of `message:send` carries).
        pub mod reply {
            $(
                #[doc = concat!("Ack `data` of `", $event, "`.")]
                pub type $variant = super::$reply;
            )*
        }
    };
}

client_requests! {
    /// Subscribe this connection to a room's live events (replaying from `since`).
    JoinRoom("room:join", JoinRoom) -> JoinReply;
    /// Stop receiving a room's live events.
    LeaveRoom("room:leave", LeaveRoom) -> RoomRef;
    /// Post a message; acked once it is durably stored.
    SendMessage("message:send", SendMessage) -> SentReply;
    /// Edit one's message.
    UpdateMessage("message:update", UpdateMessage) -> MessageReply;
    /// Delete a message (author or room admin).
    DeleteMessage("message:delete", DeleteMessage) -> MessageRef;
    /// Add a reaction.
    ReactionAdd("reaction:add", ReactionRequest) -> ReactionUpdated;
    /// Remove a reaction.
    ReactionRemove("reaction:remove", ReactionRequest) -> ReactionUpdated;
    /// Move the read marker.
    MarkRead("message:read", MarkRead) -> MessageRef;
    /// Choose a status: only online, away or dnd parse (the others are the server's).
    PresenceUpdate("presence:update", PresenceUpdate) -> PresenceUpdate;
    /// Start typing in a joined room.
    TypingStart("typing:start", Typing) -> RoomRef;
    /// Stop typing.
    TypingStop("typing:stop", Typing) -> RoomRef;
    /// Application-level keepalive (also answered by a `pong` event).
    Ping("ping", Ping) -> Pong;
    /// Extend the connection with a fresh access token (answered at the front door, which
    /// owns the connection's token clock).
    AuthRefresh("auth:refresh", AuthRefresh) -> AuthRefreshed;
    /// Join a voice channel with an SDP offer.
    VoiceJoin("voice:join", VoiceJoin) -> VoiceJoined;
    /// Trickle an ICE candidate, or answer a server offer.
    VoiceSignal("voice:signal", VoiceSignal) -> VoiceChannelRef;
    /// Mute or deafen oneself, turn the camera or screen share on or off.
    VoiceState("voice:state", VoiceStateUpdate) -> VoiceParticipant;
    /// Leave a voice channel.
    VoiceLeave("voice:leave", VoiceChannelRef) -> VoiceChannelRef;
    /// The STUN/TURN servers of a channel, before the offer.
    VoiceIceServers("voice:ice_servers", VoiceChannelRef) -> VoiceIceServers;
    /// A listener asks to speak.
    StageHandRaise("stage:hand_raise", StageRequest) -> StageUpdated;
    /// A listener no longer asks to speak.
    StageHandLower("stage:hand_lower", StageRequest) -> StageUpdated;
    /// A host lets someone speak.
    StagePromote("stage:promote", StageRequest) -> StageUpdated;
    /// A host makes a speaker a listener again.
    StageDemote("stage:demote", StageRequest) -> StageUpdated;
    /// A host removes someone from the stage.
    StageKick("stage:kick", StageRequest) -> StageUpdated;
    /// A host removes someone from the stage and the room for good.
    StageBan("stage:ban", StageRequest) -> StageUpdated;
    /// A host ends the stage.
    StageEnd("stage:end", StageRequest) -> StageUpdated;
    /// Call the other person of a direct conversation.
    CallStart("call:start", CallRequest) -> CallInfo;
    /// The callee answers.
    CallAccept("call:accept", CallRequest) -> CallInfo;
    /// The callee refuses.
    CallDecline("call:decline", CallRequest) -> CallInfo;
    /// The caller gives up before an answer.
    CallCancel("call:cancel", CallRequest) -> CallInfo;
    /// Either side ends the call.
    CallHangup("call:hangup", CallRequest) -> CallInfo;
    /// This session's tab gained or lost focus: a user with a focused session gets no push.
    SessionFocus("session:focus", SessionFocus) -> SessionFocus;
    /// Pause or resume receiving a participant's video.
    VoiceSubscribe("voice:subscribe", VoiceSubscribe) -> VoiceSubscribe;
}

impl ClientRequest {
    /// The rules a payload's type cannot express: a client may only choose online, away or
    /// dnd (`in_call` and `offline` are set by the server). Checked while parsing, so a
    /// [`ClientRequest`] always holds an acceptable request.
    fn check(&self) -> Result<(), ErrorBody> {
        match self {
            ClientRequest::PresenceUpdate(update) => match update.status {
                PresenceStatus::Online | PresenceStatus::Away | PresenceStatus::Dnd => Ok(()),
                PresenceStatus::InCall | PresenceStatus::Offline => Err(ErrorBody::field(
                    "status",
                    "status must be online, away or dnd (in_call and offline are set by the server)",
                )),
            },
            ClientRequest::JoinRoom(_)
            | ClientRequest::LeaveRoom(_)
            | ClientRequest::SendMessage(_)
            | ClientRequest::UpdateMessage(_)
            | ClientRequest::DeleteMessage(_)
            | ClientRequest::ReactionAdd(_)
            | ClientRequest::ReactionRemove(_)
            | ClientRequest::MarkRead(_)
            | ClientRequest::TypingStart(_)
            | ClientRequest::TypingStop(_)
            | ClientRequest::Ping(_)
            | ClientRequest::AuthRefresh(_)
            | ClientRequest::VoiceJoin(_)
            | ClientRequest::VoiceSignal(_)
            | ClientRequest::VoiceState(_)
            | ClientRequest::VoiceSubscribe(_)
            | ClientRequest::VoiceLeave(_)
            | ClientRequest::VoiceIceServers(_)
            | ClientRequest::StageHandRaise(_)
            | ClientRequest::StageHandLower(_)
            | ClientRequest::StagePromote(_)
            | ClientRequest::StageDemote(_)
            | ClientRequest::StageKick(_)
            | ClientRequest::StageBan(_)
            | ClientRequest::StageEnd(_)
            | ClientRequest::CallStart(_)
            | ClientRequest::CallAccept(_)
            | ClientRequest::CallDecline(_)
            | ClientRequest::CallCancel(_)
            | ClientRequest::CallHangup(_)
            | ClientRequest::SessionFocus(_) => Ok(()),
        }
    }
}

/// A client frame, parsed: the ack id it asked for (if any) and the request.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// Present when the client wants an ack.
    pub id: Option<u64>,
    /// The request.
    pub request: ClientRequest,
}

impl RequestFrame {
    /// Parses a whole text frame: envelope, event name, payload. (The front door does the
    /// same in steps, to charge rate limits by event before the payload is read.)
    pub fn parse(text: &str) -> Result<RequestFrame, FrameError> {
        let frame = ClientFrame::parse(text)?;
        let request = frame.known_event()?.parse(&frame)?;
        Ok(RequestFrame {
            id: frame.id,
            request,
        })
    }
}

impl ClientFrame<'_> {
    /// The event the frame's `type` names; UNKNOWN_EVENT (naming it) if there is none.
    pub fn known_event(&self) -> Result<ClientEvent, FrameError> {
        ClientEvent::from_name(self.event).ok_or_else(|| FrameError {
            id: self.id,
            error: ErrorBody::new(
                ErrorCode::UnknownEvent,
                format!("unknown event `{}`", truncate(self.event, 64)),
            ),
        })
    }
}

/// At most `max` characters of `s` (an unknown event's name is echoed back, but not all of it).
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_parses_into_its_own_variant_and_serializes_back_to_the_frame_shape() {
        for &event in ClientEvent::ALL {
            assert_eq!(ClientEvent::from_name(event.name()), Some(event));
            // The smallest payload every event takes.
            let data = serde_json::json!({
                "roomId": "1", "messageId": "2", "channelId": "3", "content": "hi",
                "emoji": "👍", "status": "away", "sdp": "v=0", "token": "t", "focused": true,
                "userId": "4", "track": "camera", "paused": true,
            });
            let text = serde_json::json!({"type": event.name(), "id": 7, "data": data}).to_string();
            let parsed = RequestFrame::parse(&text).unwrap_or_else(|e| panic!("{event:?}: {e:?}"));
            assert_eq!(parsed.id, Some(7));
            assert_eq!(parsed.request.event(), event);
            let back = serde_json::to_value(&parsed.request).expect("serialize");
            assert_eq!(back["type"], event.name());
            let again = serde_json::json!({"type": back["type"], "data": back["data"]}).to_string();
            assert_eq!(
                RequestFrame::parse(&again)
                    .expect("round trip")
                    .request
                    .event(),
                event
            );
        }
    }

    #[test]
    fn bad_frames_keep_todays_errors() {
        let e = RequestFrame::parse(r#"{"type":"nope","id":3}"#).expect_err("unknown");
        assert_eq!(e.id, Some(3));
        assert_eq!(e.error.code, ErrorCode::UnknownEvent);
        assert_eq!(e.error.message, "unknown event `nope`");
        let e = RequestFrame::parse(r#"{"type":"message:send","id":4,"data":{"roomId":"1"}}"#)
            .expect_err("no content");
        assert_eq!(e.id, Some(4));
        assert_eq!(e.error.code, ErrorCode::ValidationError);
        assert_eq!(
            e.error.details,
            Some(serde_json::json!({"field": "content"}))
        );
        let e = RequestFrame::parse(r#"{"type":"presence:update","data":{"status":"in_call"}}"#)
            .expect_err("the server's status");
        assert_eq!(
            e.error.details,
            Some(serde_json::json!({"field": "status"}))
        );
        let e = RequestFrame::parse("{").expect_err("malformed");
        assert_eq!(e.error.code, ErrorCode::InvalidFrame);
        // A missing `data` is `{}`, as before.
        let ping = RequestFrame::parse(r#"{"type":"ping"}"#).expect("ping");
        assert!(matches!(ping.request, ClientRequest::Ping(_)));
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(100));
        let e = RequestFrame::parse(&long).expect_err("unknown");
        assert_eq!(
            e.error.message,
            format!("unknown event `{}`", "x".repeat(64))
        );
    }

    #[test]
    fn a_camera_layer_is_one_of_three_names() {
        let frame = |layer: &str| {
            format!(
                r#"{{"type":"voice:subscribe","id":5,"data":{{"channelId":"1","userId":"2","track":"camera","layer":{layer}}}}}"#
            )
        };
        let ok = RequestFrame::parse(&frame(r#""low""#)).expect("low");
        let ClientRequest::VoiceSubscribe(sub) = ok.request else {
            panic!("{:?}", ok.request);
        };
        assert_eq!(sub.layer, Some(crate::v1::voice::VideoLayer::Low));
        assert!(!sub.paused, "absent: not paused");
        for bad in [r#""huge""#, "2", r#""High""#] {
            let e = RequestFrame::parse(&frame(bad)).expect_err(bad);
            assert_eq!(e.id, Some(5));
            assert_eq!(e.error.code, ErrorCode::ValidationError, "{bad}");
            assert_eq!(
                e.error.details,
                Some(serde_json::json!({"field": "layer"})),
                "{bad}"
            );
        }
    }

    #[test]
    fn replies_are_named() {
        assert_eq!(ClientEvent::SendMessage.reply_type(), "SentReply");
        let pong: reply::Ping = Pong { server_time: 1 };
        assert_eq!(pong.server_time, 1);
        let _: Option<reply::JoinRoom> = None::<JoinReply>;
    }
}
