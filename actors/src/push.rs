//! Web Push, as rooms and presence actors see it. A room that stored a mention or a direct
//! message, or rings a call, decides with the user's notification settings ([`notifies`])
//! whether it is a notification and, if so, sends it to the user's presence actor
//! ([`offer`]); that actor, which alone knows every session of the user across the cluster
//! and which of them is focused, hands it to its node's [`PushSink`] unless one is focused.
//! The sink (the node's delivery queue) encrypts and sends it to each of the user's devices.

use voiceflow_schema::Store;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::PresenceOp;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::notify::{EffectiveNotification, NotifyKind, notifies};
use voiceflow_wire::v1::push::PushPayload;

use crate::context::NodeContext;
use crate::room::effective_settings;

/// Longest notification text, in characters.
pub const BODY_CHARS: usize = 120;

/// Delivers pushes to a user's registered devices (the node's queue); never blocks.
pub trait PushSink: Send + Sync {
    /// Queue `payload` for every device of `user`, at most once per device for `dedupe`
    /// (a message or call id).
    fn push(&self, user: Snowflake, payload: PushPayload, dedupe: u64);
}

/// What a push is about: a message or call id (at most one push per device for it) and
/// when it happened (Unix ms), which lets the presence actor hold back a push for an event
/// that a focused session of the user was there to see, however late the offer arrives.
#[derive(Debug, Clone, Copy)]
pub struct PushEvent {
    /// The message or call id.
    pub dedupe: u64,
    /// When the message was stored or the call rang.
    pub at_ms: u64,
}

/// Offers `payload` to `user`'s presence actor if the user's settings for the room make an
/// event of `kind` a notification now. Runs off the room's actor (reads settings).
pub fn offer(
    ctx: &NodeContext,
    user: Snowflake,
    community: Option<Snowflake>,
    kind: NotifyKind,
    payload: PushPayload,
    event: PushEvent,
) {
    if ctx.push.is_none() {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let settings = settings_or_default(&*ctx.store, user, payload.room_id, community).await;
        if notifies(&settings, kind, now_ms()) {
            send(&ctx, user, payload, event).await;
        }
    });
}

/// Hands `payload` to `user`'s presence actor, which pushes it unless a session is focused
/// (or was when the event happened); for callers that already applied the user's settings.
pub async fn send(ctx: &NodeContext, user: Snowflake, payload: PushPayload, event: PushEvent) {
    let PushEvent { dedupe, at_ms } = event;
    let op = PresenceOp::Push {
        payload,
        dedupe,
        at_ms,
    };
    ctx.presence.send(user, op).await;
}

/// `user`'s effective notification setting for `room`, or the default (notify) when storage
/// cannot say: better a notification too many than a silent mention.
pub async fn settings_or_default(
    store: &dyn Store,
    user: Snowflake,
    room: Snowflake,
    community: Option<Snowflake>,
) -> EffectiveNotification {
    effective_settings(store, user, room, community)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(%user, error = %e, "notification settings not read");
            EffectiveNotification::resolve(None, None, None)
        })
}

/// The first [`BODY_CHARS`] characters of `text`.
pub fn snippet(text: &str) -> String {
    let mut out: String = text.chars().take(BODY_CHARS).collect();
    if text.chars().nth(BODY_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The client path that opens `room`.
pub fn room_url(room: Snowflake) -> String {
    format!("/rooms/{room}")
}
