//! Limits at the front door, checked before anything reaches a session actor or a store.
//!
//! - **Token buckets** ([governor](https://docs.rs/governor), GCRA): per WebSocket connection
//!   (`connection_events` per `connection_window_secs`, every frame counts); per user over all
//!   of the user's connections on this node, so reconnecting or opening more sockets gains
//!   nothing (`user_events` frames per window; `message:send` and `POST /messages`; edits,
//!   deletions and reactions, which are logged and fanned out like messages); and per client
//!   IP (`/auth/login` and `/auth/register`). A request over a limit is dropped and answered
//!   with RATE_LIMITED and `retryAfterMs` (REST: 429 with `Retry-After`); nothing else is
//!   affected and the connection stays open. Per-user and per-IP buckets are forgotten once
//!   full again (see [`Keyed`]), so their maps hold only recently active keys.
//! - **Floods**: a connection that sends more than `connection_close_factor` times its budget
//!   within one window is closed with [`CLOSE_RATE_LIMITED`].
//! - **Connections per user** (`max_connections_per_user`): one more is closed at once with
//!   [`per_user::CLOSE_TOO_MANY_CONNECTIONS`].
//! - **Bad input** (WebSocket): a frame over `ws_max_frame_bytes` gets PAYLOAD_TOO_LARGE and a
//!   frame nested deeper than `max_json_depth` gets INVALID_FRAME, both without being parsed.
//!   Every other frame is parsed here, once, into a [`RequestFrame`] (the session gets the
//!   parsed request, never the text); one that does not parse gets INVALID_FRAME,
//!   UNKNOWN_EVENT or VALIDATION_ERROR, as does a binary frame. All of these count as invalid
//!   frames, in the connection's one count ([`invalid`]): `max_invalid_frames` of them within
//!   a minute close the connection with 4002. Rate-limited frames are not invalid and do not
//!   count there.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};
use voiceflow_actors::CloseReason;
use voiceflow_wire::v1::client::ClientFrame;
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::request::{ClientEvent, RequestFrame};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::config::Config;
use crate::error::ApiError;

mod invalid;
mod per_user;

use invalid::InvalidFrames;
pub use per_user::{ConnectionSlot, UserConnections};

/// Close code of a connection that kept sending far over its rate limit.
pub const CLOSE_RATE_LIMITED: u16 = 4029;

/// A keyed limiter forgets idle keys after this many checks.
const SWEEP_EVERY: u64 = 4096;

/// A request refused for its rate, and when the bucket will allow the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// How long until a retry can succeed.
    pub retry_after: Duration,
}

impl RateLimited {
    fn from_not_until(
        not_until: &NotUntil<<DefaultClock as Clock>::Instant>,
        now: &DefaultClock,
    ) -> Self {
        RateLimited {
            retry_after: not_until.wait_time_from(now.now()),
        }
    }

    /// `retry_after` in whole milliseconds, rounded up (at least 1).
    pub fn retry_after_ms(&self) -> u64 {
        (self.retry_after.as_micros().div_ceil(1000) as u64).max(1)
    }

    /// The error body: RATE_LIMITED with `details.retryAfterMs`; `what` names what was limited.
    pub fn body(&self, what: &str) -> ErrorBody {
        let ms = self.retry_after_ms();
        ErrorBody {
            code: ErrorCode::RateLimited,
            message: format!("too many {what}; retry in {ms} ms"),
            details: Some(serde_json::json!({ "retryAfterMs": ms })),
        }
    }

    /// The REST reply: 429 with the body and `Retry-After` (whole seconds, rounded up).
    pub fn response(&self, what: &str) -> Response {
        let mut response = ApiError(self.body(what)).into_response();
        let secs = self.retry_after_ms().div_ceil(1000).max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response
    }
}

/// A keyed token bucket that forgets idle keys now and then: every [`SWEEP_EVERY`] checks,
/// keys whose bucket is full again (indistinguishable from a new key) are dropped.
pub(crate) struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    pub(crate) fn new(quota: Quota) -> Self {
        Keyed {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    pub(crate) fn check(&self, key: &K) -> Result<(), RateLimited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Keys whose bucket is full again are indistinguishable from new ones.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|n| RateLimited::from_not_until(&n, self.limiter.clock()))
    }

    /// Keys currently remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

pub(crate) fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The node-wide limits (shared by every connection and request handler).
pub struct Limits {
    /// One clock for every connection's bucket (cheap to clone, calibrated once).
    clock: DefaultClock,
    /// Per-connection quota; `None` when rate limits are off.
    connection: Option<Quota>,
    /// Frames per window above which a connection is closed.
    close_after: Option<u64>,
    window: Duration,
    messages: Option<Keyed<Snowflake>>,
    /// Frames per user over all of their connections.
    user_events: Option<Keyed<Snowflake>>,
    /// Edits, deletions and reactions per user.
    actions: Option<Keyed<Snowflake>>,
    /// Open WebSockets per user; `None` without a cap.
    user_connections: Option<UserConnections>,
    logins: Option<Keyed<IpAddr>>,
    max_frame_bytes: usize,
    max_depth: usize,
    max_invalid: u32,
    trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    /// The limits of `config` (`[limits]`, `ws_max_frame_bytes`, `max_invalid_frames`).
    pub fn new(config: &Config) -> Limits {
        let l = &config.limits;
        let on = l.rate_limits;
        let window = Duration::from_secs(l.connection_window_secs.max(1));
        let per = |n: u32, over: Duration| {
            Quota::with_period(over / n.max(1)).map(|q| q.allow_burst(nonzero(n)))
        };
        Limits {
            clock: DefaultClock::default(),
            connection: per(l.connection_events, window).filter(|_| on),
            close_after: (on && l.connection_close_factor > 0).then(|| {
                u64::from(l.connection_close_factor) * u64::from(l.connection_events.max(1))
            }),
            window,
            messages: per(l.messages_per_sec, Duration::from_secs(1))
                .filter(|_| on)
                .map(|q| Keyed::new(q.allow_burst(nonzero(l.messages_burst)))),
            user_events: per(l.user_events, window).filter(|_| on).map(Keyed::new),
            actions: per(l.actions_per_sec, Duration::from_secs(1))
                .filter(|_| on)
                .map(|q| Keyed::new(q.allow_burst(nonzero(l.actions_burst)))),
            user_connections: (on && l.max_connections_per_user > 0)
                .then(|| UserConnections::new(l.max_connections_per_user)),
            logins: per(l.logins_per_min, Duration::from_secs(60))
                .filter(|_| on)
                .map(Keyed::new),
            max_frame_bytes: config.ws_max_frame_bytes,
            max_depth: l.max_json_depth as usize,
            max_invalid: config.max_invalid_frames.max(1),
            trusted_proxies: l.trusted_proxies.clone(),
        }
    }

    /// Takes a message from `user`'s bucket.
    pub fn message(&self, user: Snowflake) -> Result<(), RateLimited> {
        self.messages.as_ref().map_or(Ok(()), |m| m.check(&user))
    }

    /// Takes an edit, deletion or reaction from `user`'s bucket.
    pub fn action(&self, user: Snowflake) -> Result<(), RateLimited> {
        self.actions.as_ref().map_or(Ok(()), |a| a.check(&user))
    }

    /// The bucket an event draws on besides the frame budgets (messages, and the logged
    /// changes other than messages), if it is empty: the refusal, what to call the limited
    /// requests, and the metric's label.
    fn charge(
        &self,
        user: Snowflake,
        event: ClientEvent,
    ) -> Option<(RateLimited, &'static str, &'static str)> {
        match event {
            ClientEvent::SendMessage => self
                .message(user)
                .err()
                .map(|l| (l, "messages", "messages")),
            ClientEvent::UpdateMessage
            | ClientEvent::DeleteMessage
            | ClientEvent::ReactionAdd
            | ClientEvent::ReactionRemove => self
                .action(user)
                .err()
                .map(|l| (l, "edits, deletions and reactions", "actions")),
            ClientEvent::JoinRoom
            | ClientEvent::LeaveRoom
            | ClientEvent::MarkRead
            | ClientEvent::PresenceUpdate
            | ClientEvent::SessionFocus
            | ClientEvent::TypingStart
            | ClientEvent::TypingStop
            | ClientEvent::Ping
            | ClientEvent::AuthRefresh
            | ClientEvent::VoiceJoin
            | ClientEvent::VoiceSignal
            | ClientEvent::VoiceState
            | ClientEvent::VoiceSubscribe
            | ClientEvent::VoiceLeave
            | ClientEvent::VoiceIceServers
            | ClientEvent::StageHandRaise
            | ClientEvent::StageHandLower
            | ClientEvent::StagePromote
            | ClientEvent::StageDemote
            | ClientEvent::StageKick
            | ClientEvent::StageBan
            | ClientEvent::StageEnd
            | ClientEvent::CallStart
            | ClientEvent::CallAccept
            | ClientEvent::CallDecline
            | ClientEvent::CallCancel
            | ClientEvent::CallHangup => None,
        }
    }

    /// A place for a new WebSocket of `user`, or the close for one over the cap.
    pub fn open_connection(&self, user: Snowflake) -> Result<ConnectionSlot<'_>, CloseReason> {
        match &self.user_connections {
            Some(cap) => cap.open(user),
            None => Ok(ConnectionSlot::unlimited()),
        }
    }

    /// Takes a login attempt from the bucket of the client's address (requests without a
    /// known address share one bucket); `forwarded` is the request's `X-Forwarded-For`.
    pub fn login(
        &self,
        peer: Option<std::net::SocketAddr>,
        forwarded: Option<&str>,
    ) -> Result<(), RateLimited> {
        let Some(logins) = self.logins.as_ref() else {
            return Ok(());
        };
        let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        logins.check(&client_ip(peer, forwarded, &self.trusted_proxies))
    }

    /// The per-connection state of a new WebSocket.
    pub fn connection(&self) -> ConnectionGate {
        ConnectionGate {
            events: self.connection.map(|quota| {
                DefaultDirectRateLimiter::direct_with_clock(quota, self.clock.clone())
            }),
            window_start: Instant::now(),
            in_window: 0,
            invalid: InvalidFrames::new(Instant::now()),
        }
    }
}

/// What to do with one client frame.
#[derive(Debug)]
pub enum Verdict {
    /// Hand the parsed request to the session (or, `auth:refresh`, to the token clock).
    Forward(RequestFrame),
    /// Drop it and send this answer.
    Refuse(Frame),
    /// Drop it, send this answer and close the connection.
    Close(Frame, CloseReason),
}

/// One connection's limits: its token bucket, its frame count in the current window, and
/// the invalid frames refused here this minute.
pub struct ConnectionGate {
    events: Option<DefaultDirectRateLimiter>,
    window_start: Instant,
    in_window: u64,
    invalid: InvalidFrames,
}

impl ConnectionGate {
    /// Checks a text frame from `user`.
    pub fn check_text(&mut self, limits: &Limits, user: Snowflake, text: &str) -> Verdict {
        if let Some(verdict) = self.check_rate(limits, user, || envelope_id(text)) {
            return verdict;
        }
        if text.len() > limits.max_frame_bytes {
            let error = ErrorBody {
                code: ErrorCode::PayloadTooLarge,
                message: format!(
                    "frame of {} bytes is over the limit of {} bytes",
                    text.len(),
                    limits.max_frame_bytes
                ),
                details: Some(serde_json::json!({ "limit": limits.max_frame_bytes })),
            };
            return self.invalid(limits, envelope_id(text), &error);
        }
        if nesting_exceeds(text.as_bytes(), limits.max_depth) {
            let error = ErrorBody::new(
                ErrorCode::InvalidFrame,
                format!(
                    "frame nested too deeply (limit {} levels)",
                    limits.max_depth
                ),
            );
            return self.invalid(limits, envelope_id(text), &error);
        }
        // The frame's one parse: the envelope, the event, then (once the event's bucket has
        // been charged, so a malformed message still costs one) the payload.
        let envelope = match ClientFrame::parse(text) {
            Ok(envelope) => envelope,
            Err(e) => return self.invalid(limits, e.id, &e.error),
        };
        let event = match envelope.known_event() {
            Ok(event) => event,
            Err(e) => return self.invalid(limits, e.id, &e.error),
        };
        if let Some((limited, what, label)) = limits.charge(user, event) {
            metrics::counter!("voiceflow_rate_limited_total", "limit" => label).increment(1);
            return Verdict::Refuse(frame::failure(envelope.id, &limited.body(what)));
        }
        match event.parse(&envelope) {
            Ok(request) => Verdict::Forward(RequestFrame {
                id: envelope.id,
                request,
            }),
            Err(e) => self.invalid(limits, e.id, &e.error),
        }
    }

    /// Checks a binary frame: not part of the protocol, so refused (and counted) unless a
    /// rate limit refuses it first.
    pub fn check_binary(&mut self, limits: &Limits, user: Snowflake) -> Verdict {
        if let Some(verdict) = self.check_rate(limits, user, || None) {
            return verdict;
        }
        let error = ErrorBody::new(
            ErrorCode::InvalidFrame,
            "binary frames are not part of the protocol",
        );
        self.invalid(limits, None, &error)
    }

    /// The connection's bucket, then the user's (all their connections, surviving
    /// reconnects), and the connection's flood count; `Some` if the frame stops here.
    fn check_rate(
        &mut self,
        limits: &Limits,
        user: Snowflake,
        id: impl FnOnce() -> Option<u64>,
    ) -> Option<Verdict> {
        let events = self.events.as_ref()?;
        if self.window_start.elapsed() >= limits.window {
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        let (limited, what, label) = match events.check() {
            Err(n) => (
                RateLimited::from_not_until(&n, events.clock()),
                "events on this connection",
                "connection",
            ),
            Ok(()) => {
                let user_events = limits.user_events.as_ref()?;
                let limited = user_events.check(&user).err()?;
                (limited, "events from this user", "user_events")
            }
        };
        let answer = frame::failure(id(), &limited.body(what));
        metrics::counter!("voiceflow_rate_limited_total", "limit" => label).increment(1);
        if limits.close_after.is_some_and(|max| self.in_window > max) {
            return Some(Verdict::Close(
                answer,
                CloseReason {
                    code: CLOSE_RATE_LIMITED,
                    reason: "rate limit exceeded: too many frames".into(),
                },
            ));
        }
        Some(Verdict::Refuse(answer))
    }

    fn invalid(&mut self, limits: &Limits, id: Option<u64>, error: &ErrorBody) -> Verdict {
        let answer = frame::failure(id, error);
        if self.invalid.count(Instant::now(), limits.max_invalid) {
            return Verdict::Close(answer, CloseReason::too_many_errors());
        }
        Verdict::Refuse(answer)
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy (entries left of it were written by
/// the client and prove nothing). An unreadable entry stops the walk at the last good one.
pub fn client_ip(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    if !trusted.contains(&peer) {
        return client;
    }
    let Some(forwarded) = forwarded else {
        return client;
    };
    for entry in forwarded.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The ack id of a frame, if its envelope parses.
fn envelope_id(text: &str) -> Option<u64> {
    ClientFrame::parse(text).ok().and_then(|f| f.id)
}

/// Whether `json` nests objects and arrays deeper than `max` levels. A byte scan, no parse:
/// brackets inside strings (with their escapes) do not count. Malformed JSON is left to the
/// parser.
pub fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    // Each level needs at least one byte.
    if json.len() <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz_tests;
