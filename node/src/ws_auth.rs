//! A WebSocket lives only as long as its access token: when the token expires the connection
//! closes with 4001, unless the client extended it first with `auth:refresh {token}` (a fresh
//! access token of the same user, from `POST /auth/refresh`).

use std::time::Duration;

use voiceflow_wire::v1::client::{AuthRefresh, AuthRefreshed};
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use crate::account_sessions::CLOSE_TOKEN_EXPIRED;
use crate::state::AppState;
use voiceflow_actors::CloseReason;

/// When a connection's authentication ends.
pub struct TokenClock {
    /// Unix seconds.
    expires_at: u64,
}

impl TokenClock {
    /// The clock of a connection opened with a token expiring at `expires_at` (Unix seconds).
    pub fn new(expires_at: u64) -> TokenClock {
        TokenClock { expires_at }
    }

    /// The instant the connection must close unless extended.
    pub fn deadline(&self) -> tokio::time::Instant {
        let now_ms = voiceflow_wire::ids::now_ms();
        let left = (self.expires_at * 1000).saturating_sub(now_ms);
        tokio::time::Instant::now() + Duration::from_millis(left)
    }

    /// Whether the token has expired (the deadline timer fired and was not moved since).
    pub fn expired(&self) -> bool {
        voiceflow_wire::ids::now_ms() >= self.expires_at * 1000
    }

    /// The close of an expired connection.
    pub fn close_reason() -> CloseReason {
        CloseReason {
            code: CLOSE_TOKEN_EXPIRED,
            reason: "access token expired; send auth:refresh before it does, or reconnect".into(),
        }
    }

    /// Answers `auth:refresh` (parsed at the front door): an ack or failure when the frame
    /// has an id; the clock moves on success.
    pub fn handle(
        &mut self,
        state: &AppState,
        user: Snowflake,
        session_id: u64,
        id: Option<u64>,
        request: &AuthRefresh,
    ) -> Option<Frame> {
        let fresh = match state.auth.verify_access(&request.token) {
            Ok(fresh) => fresh,
            Err(e) => return Some(frame::failure(id, &e.0)),
        };
        if fresh.id != user {
            let error = ErrorBody::new(
                ErrorCode::Forbidden,
                "that token belongs to another user; reconnect with it instead",
            );
            return Some(frame::failure(id, &error));
        }
        // Never shortens the connection's life (an older token sent late).
        self.expires_at = self.expires_at.max(fresh.expires_at);
        state.ctx.sessions.set_family(session_id, fresh.family);
        let reply = AuthRefreshed {
            expires_at: self.expires_at * 1000,
        };
        id.map(|id| frame::ack_ok(id, &reply))
    }
}
