//! What travels for one user: account changes their sessions follow ([`UserOp`]) and the
//! requests to their presence actor ([`PresenceOp`], with the [`ChosenStatus`] it carries).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ids::Snowflake;

/// Account changes a user's live sessions follow, on every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum UserOp {
    /// The account was renamed: sessions speak under the new name from now on.
    Renamed {
        /// The new username.
        username: String,
    },
    /// Sign-in revoked (logout, refresh-token reuse): close the sessions that were opened
    /// with tokens of `family` (all of the user's sessions when `None`) with this close code.
    Close {
        /// The refresh-token family (one sign-in) whose sessions end.
        family: Option<String>,
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// A status a user chose, and when (Unix ms): the newest choice wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ChosenStatus {
    /// Online, away or dnd.
    pub status: crate::v1::rich::PresenceStatus,
    /// When it was chosen.
    pub at_ms: u64,
}

/// Requests to a user's presence actor, from that user's sessions (or a room asking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub enum PresenceOp {
    /// A session of the user connected.
    Attach {
        /// The session (cluster-unique id).
        session_id: u64,
    },
    /// A session is alive (every 15 s); `idle_ms`: time since the client last did something.
    Beat {
        /// The session.
        session_id: u64,
        /// Milliseconds since the client's last action.
        idle_ms: u64,
        /// The status this session last chose, so a presence actor that took over (its
        /// predecessor's node died or placement changed) learns it again.
        chosen: Option<ChosenStatus>,
    },
    /// A session ended.
    Detach {
        /// The session.
        session_id: u64,
    },
    /// The user chose a status (online, away, dnd).
    Set {
        /// The status and when it was chosen.
        chosen: ChosenStatus,
    },
    /// From a voice channel, a stage or a conversation's call: the user is in it (sent again
    /// every heartbeat while they are, so it lapses if the channel's node dies) or left it.
    InCall {
        /// The channel's room.
        channel: Snowflake,
        /// In it now.
        on: bool,
        /// When the room said so (Unix ms): ops travel on separate tasks, so a confirmation
        /// sent just before a leave may arrive after it; the newer one wins (a leave on a tie).
        at_ms: u64,
    },
    /// A room wants the user's current status (it started, or lost its source).
    Probe {
        /// The room.
        room: Snowflake,
    },
    /// A session's tab gained or lost focus, as version 10 writes it: without the time, so
    /// the presence actor counts it from its arrival ([`PresenceOp::timed`]).
    FocusUntimed {
        /// The session.
        session_id: u64,
        /// Focused and visible now.
        focused: bool,
    },
    /// A push offer as version 10 writes it: without the time of the event, so the presence
    /// actor counts it from its arrival ([`PresenceOp::timed`]).
    PushUntimed {
        /// What the service worker shows.
        payload: crate::v1::push::PushPayload,
        /// The message or call id.
        dedupe: u64,
    },
    /// A session's tab gained or lost focus (`session:focus`; version 11 added `at_ms`).
    Focus {
        /// The session.
        session_id: u64,
        /// Focused and visible now.
        focused: bool,
        /// When the session was told (Unix ms, the session node's clock): a push for an
        /// event before a focus ended is held back, one for an event after it is not,
        /// however late the presence actor reads the report.
        at_ms: u64,
    },
    /// From the room of a mention, direct message or call: push `payload` to the user's
    /// devices unless one of their sessions is focused, or was at `at_ms` or since
    /// (version 11 added `at_ms`). `dedupe` (the message or call id) makes it at most once
    /// per device.
    Push {
        /// What the service worker shows.
        payload: crate::v1::push::PushPayload,
        /// The message or call id.
        dedupe: u64,
        /// When the message was stored or the call rang (Unix ms, the room node's clock).
        at_ms: u64,
    },
}

impl PresenceOp {
    /// The op with a time: what version 10 sent without one counts from `now_ms`, its
    /// arrival (as version 10 itself decided, by the sessions focused when it arrived).
    pub fn timed(self, now_ms: u64) -> PresenceOp {
        match self {
            PresenceOp::FocusUntimed {
                session_id,
                focused,
            } => PresenceOp::Focus {
                session_id,
                focused,
                at_ms: now_ms,
            },
            PresenceOp::PushUntimed { payload, dedupe } => PresenceOp::Push {
                payload,
                dedupe,
                at_ms: now_ms,
            },
            op @ (PresenceOp::Attach { .. }
            | PresenceOp::Beat { .. }
            | PresenceOp::Detach { .. }
            | PresenceOp::Set { .. }
            | PresenceOp::InCall { .. }
            | PresenceOp::Probe { .. }
            | PresenceOp::Focus { .. }
            | PresenceOp::Push { .. }) => op,
        }
    }
}
