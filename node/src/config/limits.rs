//! The `[limits]` table: token buckets against floods, and limits on what one frame may be.

use serde::{Deserialize, Serialize};

/// The `[limits]` table: token buckets against floods, and limits on what one frame may be.
/// Over a rate limit a request gets RATE_LIMITED with `retryAfterMs` (REST: 429 with
/// `Retry-After`) and is dropped; nothing else is affected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Enforce the rate limits below (`false` turns every token bucket off, e.g. for load
    /// generators that drive thousands of users from one address). Frame size and JSON depth
    /// limits stay on.
    pub rate_limits: bool,
    /// Frames one WebSocket connection may send per `connection_window_secs` (a bucket of
    /// this many, refilled evenly over the window; Discord's gateway allows 120 per 60 s).
    pub connection_events: u32,
    /// The window of `connection_events`, seconds.
    pub connection_window_secs: u64,
    /// A connection that sends more than this many times `connection_events` within one
    /// window is closed with 4029 (0: never closed for its rate).
    pub connection_close_factor: u32,
    /// `message:send` frames (and `POST /messages`) per user per second, sustained, counted
    /// over all of the user's connections on this node.
    pub messages_per_sec: u32,
    /// How many messages a user may send at once before `messages_per_sec` applies.
    pub messages_burst: u32,
    /// `POST /auth/login` and `/auth/register` requests per client IP address per minute
    /// (also the burst).
    pub logins_per_min: u32,
    /// `POST /auth/refresh` requests per client IP address per minute (also the burst).
    pub refreshes_per_min: u32,
    /// Rooms one user may create per minute (`POST /rooms`, also the burst).
    pub room_creates_per_min: u32,
    /// Uploads one user may start per minute (`POST /files`, also the burst).
    pub uploads_per_min: u32,
    /// Direct conversations one user may open per minute (`POST /dms`, also the burst).
    pub dm_opens_per_min: u32,
    /// Profile edits one user may make per minute (`PATCH /users/me`, also the burst).
    pub profile_edits_per_min: u32,
    /// Join-by-code attempts (`POST /rooms/:code/join`, right or wrong) per minute, counted
    /// both per client IP address and per user: join codes cannot be guessed faster.
    pub joins_per_min: u32,
    /// A REST JSON body that has not arrived completely this many seconds after its headers
    /// gets 408 REQUEST_TIMEOUT (uploads have `[files] body_idle_timeout_secs` instead).
    pub rest_body_timeout_secs: u64,
    /// Reverse proxies or load balancers in front of the node (IP addresses). A request from
    /// one of them counts against the client address its `X-Forwarded-For` names (the
    /// rightmost entry that is not itself a trusted proxy); from anyone else the header is
    /// ignored, so clients cannot pick their own bucket. Empty: the peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Deepest nesting of objects and arrays in a WebSocket frame (the envelope is level 1);
    /// deeper frames get INVALID_FRAME "nested too deeply" without being parsed.
    pub max_json_depth: u32,
    /// WebSocket frames larger than `ws_max_frame_bytes` and at most this size are read,
    /// answered with PAYLOAD_TOO_LARGE and dropped; larger ones cannot be read without
    /// buffering them and close the connection with 1009 (message too big). Bytes.
    pub ws_frame_close_bytes: usize,
    /// Frames one user may send per `connection_window_secs` over all of their WebSocket
    /// connections on this node (a bucket of this many that survives reconnects, checked
    /// after the connection's own `connection_events`).
    pub user_events: u32,
    /// Logged changes other than messages (`message:update`, `message:delete`,
    /// `reaction:add`, `reaction:remove`, `DELETE /messages/:id`) per user per second,
    /// sustained, over all of the user's connections on this node.
    pub actions_per_sec: u32,
    /// How many such changes a user may make at once before `actions_per_sec` applies.
    pub actions_burst: u32,
    /// Open WebSocket connections per user on this node (tabs and devices); one more is
    /// closed at once with 4030. 0: no cap. Lifted with `rate_limits = false`.
    pub max_connections_per_user: u32,
    /// Roles one community may have besides `@everyone` (`POST /communities/:id/roles`
    /// beyond it gets 400 `limit`).
    pub max_roles_per_community: u32,
    /// Most channels in one community (`POST /communities/:id/channels`).
    pub max_channels_per_community: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_limits: true,
            connection_events: 120,
            connection_window_secs: 60,
            connection_close_factor: 3,
            messages_per_sec: 10,
            messages_burst: 20,
            logins_per_min: 5,
            refreshes_per_min: 30,
            room_creates_per_min: 10,
            uploads_per_min: 30,
            dm_opens_per_min: 20,
            profile_edits_per_min: 10,
            joins_per_min: 10,
            rest_body_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            max_json_depth: 32,
            ws_frame_close_bytes: 256 * 1024,
            user_events: 240,
            actions_per_sec: 5,
            actions_burst: 20,
            max_connections_per_user: 10,
            max_roles_per_community: 250,
            max_channels_per_community: 500,
        }
    }
}
