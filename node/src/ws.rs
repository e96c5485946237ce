//! `GET /ws?token=…`: the WebSocket front door.
//!
//! warp routes and authenticates the upgrade; the upgraded connection runs on tokio-tungstenite
//! directly so we choose its buffers (small read buffer: idle connections stay light) and can
//! hand it shared frame bytes without a copy per recipient. One task per connection reads
//! frames (forwarded to the session actor once they pass the connection's limits, see
//! [`crate::limits`]) and drains the session's [`Outbox`] into the socket with one flush per
//! batch.

use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use ractor::{Actor, ActorRef};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use voiceflow_actors::outbox::Drained;
use voiceflow_actors::room::Author;
use voiceflow_actors::session::{SessionActor, SessionArgs, SessionMsg};
use voiceflow_actors::{CloseReason, Outbox};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::PROTOCOL_VERSION;
use voiceflow_wire::v1::event::ServerEvent;
use voiceflow_wire::v1::frame::Frame;
use voiceflow_wire::v1::request::ClientRequest;
use voiceflow_wire::v1::server::Hello;
use warp::http::{StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::api::with_state;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::Verdict;
use crate::state::AppState;
use crate::ws_auth::TokenClock;

#[derive(serde::Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// The `/ws` route.
pub fn route(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(with_state(state))
        .and(warp::query::<WsQuery>())
        .and(warp::header::optional::<String>("sec-websocket-key"))
        .and(warp::header::optional::<String>("upgrade"))
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            |state: AppState,
             q: WsQuery,
             key: Option<String>,
             upgrade: Option<String>,
             on_upgrade: Option<OnUpgrade>| {
                accept(state, q, key, upgrade, on_upgrade).unwrap_or_else(ApiError::into_response)
            },
        )
}

fn accept(
    state: AppState,
    q: WsQuery,
    key: Option<String>,
    upgrade: Option<String>,
    on_upgrade: Option<OnUpgrade>,
) -> Result<Response, ApiError> {
    let (Some(key), Some(on_upgrade)) = (key, on_upgrade) else {
        return Err(ApiError::field(
            "upgrade",
            "expected a WebSocket upgrade request",
        ));
    };
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(ApiError::field(
            "upgrade",
            "expected a WebSocket upgrade request",
        ));
    }
    if state.draining.load(Ordering::Relaxed) {
        // Retry later (on another node of a cluster), not a storage failure.
        return Err(ApiError(voiceflow_wire::ErrorBody::unavailable(
            "node is shutting down",
        )));
    }
    let token = q
        .token
        .ok_or_else(|| ApiError::unauthorized("missing token"))?;
    let user = state.auth.verify_access(&token)?;
    let accept_key = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = ws_config(&state);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(state, ws, user).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let reply = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS);
    let reply = warp::reply::with_header(reply, header::CONNECTION, "upgrade");
    let reply = warp::reply::with_header(reply, header::UPGRADE, "websocket");
    let reply = warp::reply::with_header(reply, header::SEC_WEBSOCKET_ACCEPT, accept_key);
    Ok(warp::Reply::into_response(reply))
}

fn ws_config(state: &AppState) -> WebSocketConfig {
    WebSocketConfig::default()
        // Allocated per connection up front: keep it small, it grows for larger frames.
        .read_buffer_size(1024)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        // Frames up to this size are read and refused with PAYLOAD_TOO_LARGE by the gate
        // (over `ws_max_frame_bytes`); tungstenite refuses larger ones, which ends the
        // connection (1009).
        .max_message_size(Some(state.config.limits.ws_frame_close_bytes))
        .max_frame_size(Some(state.config.limits.ws_frame_close_bytes))
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn serve(state: AppState, mut ws: Ws, auth: AuthUser) {
    // Held until the connection ends: the user's place under `max_connections_per_user`.
    let _slot = match state.limits.open_connection(auth.id) {
        Ok(slot) => slot,
        Err(reason) => {
            metrics::counter!("voiceflow_rate_limited_total", "limit" => "connections_per_user")
                .increment(1);
            // Closed before any session starts: the connection costs nothing further.
            Box::pin(close_handshake(&mut ws, &reason)).await;
            return;
        }
    };
    let outbox = Outbox::new(state.config.outbound_queue_frames);
    let session_id = state.ctx.sessions.next_session_id();
    // Counted until this task ends, closing handshake included: shutdown waits for it.
    let _open = state.ctx.sessions.connection_opened();
    // The account's current name (the token's may predate a rename); renames from now on
    // reach the session as they happen.
    // One-off futures are boxed so that the connection's task, alive as long as the
    // connection, is not sized by them (the state machine is as large as its largest await).
    let username = match Box::pin(state.ctx.store.user_by_id(auth.id)).await {
        Ok(Some(account)) => account.username,
        _ => auth.username,
    };
    let user = Author {
        user_id: auth.id,
        username,
    };
    let mut clock = TokenClock::new(auth.expires_at);
    let args = SessionArgs {
        session_id,
        user: user.clone(),
        family: auth.family,
        outbox: outbox.clone(),
        ctx: state.ctx.clone(),
    };
    let spawned = Box::pin(Actor::spawn_linked(
        None,
        SessionActor,
        args,
        state.sessions.get_cell(),
    ));
    let session = match spawned.await {
        Ok((session, _)) => session,
        Err(e) => {
            tracing::error!(error = %e, "session actor failed to start");
            let _ = ws
                .close(Some(close_frame(&CloseReason {
                    code: 1011,
                    reason: "internal error".into(),
                })))
                .await;
            return;
        }
    };
    // Shutdown may have closed every registered session just before this one registered.
    if state.draining.load(Ordering::Relaxed) {
        outbox.close(if state.cluster.is_some() {
            CloseReason::reconnect_elsewhere()
        } else {
            CloseReason::going_away()
        });
    }
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        session_id: session_id.to_string(),
        user_id: user.user_id,
        idle_timeout_secs: state.config.ws_idle_timeout_secs,
        max_upload_bytes: state.config.files.max_bytes,
        max_frame_bytes: state.config.ws_max_frame_bytes as u64,
    };
    outbox.push(ServerEvent::Hello(hello).frame());
    let close = pump(
        &state,
        &mut ws,
        &outbox,
        &session,
        (user.user_id, session_id),
        &mut clock,
    )
    .await;
    // The session ends now (presence, rooms, voice), not after a closing handshake that a
    // vanished client would make us wait for.
    let _ = session.cast(SessionMsg::Disconnected);
    if let Some(reason) = close {
        Box::pin(close_handshake(&mut ws, &reason)).await;
    }
}

/// The closing handshake: send our close, then read until the client's close (or the end of
/// the stream, at most 2 s) so the client reads our reason before the TCP connection goes.
async fn close_handshake(ws: &mut Ws, reason: &CloseReason) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.close(Some(close_frame(reason))).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

fn close_frame(reason: &CloseReason) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(reason.code),
        reason: Utf8Bytes::from(reason.reason.clone()),
    }
}

/// Why a write to a client stopped.
enum WriteFailure {
    /// The socket failed or closed.
    Io(std::io::Error),
    /// Not one byte went out for the whole stall timeout: the client is not reading.
    Stalled,
}

/// Frames handed to one vectored write (well under every system's `IOV_MAX`; the slices live
/// in the connection's future, so a few hundred bytes, not a kilobyte). Larger batches are
/// joined into a buffer freed after the write.
const WRITE_SLICES: usize = 16;

/// Writes pre-encoded frames straight to the socket: small batches gathered into vectored
/// writes, bursts joined into a buffer that is freed afterwards, so no per-connection copy
/// buffer keeps a burst's size for the connection's life. tungstenite keeps the read side, pings and the close handshake; its own buffer (a
/// queued pong) is flushed first so frames never interleave. Progress is tracked write by
/// write, so a frame is never cut in half by a timeout: either everything is written, or the
/// client stalled completely and the connection is dropped (a close frame could not reach it
/// anyway).
async fn write_raw(ws: &mut Ws, batch: &[Frame], stall: Duration) -> Result<(), WriteFailure> {
    match tokio::time::timeout(stall, ws.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(WriteFailure::Io(std::io::Error::other(e))),
        Err(_) => return Err(WriteFailure::Stalled),
    }
    let io = ws.get_mut();
    if batch.len() > WRITE_SLICES {
        // A burst (a busy room): one copy into a buffer that lives only for this write, then
        // as few syscalls as the socket allows, rather than a writev per WRITE_SLICES frames.
        let mut joined = Vec::with_capacity(batch.iter().map(|f| f.wire_bytes().len()).sum());
        for f in batch {
            joined.extend_from_slice(f.wire_bytes());
        }
        let mut written = 0;
        while written < joined.len() {
            match tokio::time::timeout(stall, io.write(&joined[written..])).await {
                Ok(Ok(0)) => return Err(WriteFailure::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => return Err(WriteFailure::Io(e)),
                Err(_) => return Err(WriteFailure::Stalled),
            }
        }
        return Ok(());
    }
    // The next byte to write: frame `index`, byte `offset` within it.
    let (mut index, mut offset) = (0usize, 0usize);
    loop {
        while index < batch.len() && offset >= batch[index].wire_bytes().len() {
            (index, offset) = (index + 1, 0);
        }
        if index == batch.len() {
            return Ok(());
        }
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
        let mut used = 0;
        for (k, f) in batch[index..].iter().take(WRITE_SLICES).enumerate() {
            let start = if k == 0 { offset } else { 0 };
            slices[used] = IoSlice::new(&f.wire_bytes()[start..]);
            used += 1;
        }
        let mut written =
            match tokio::time::timeout(stall, io.write_vectored(&slices[..used])).await {
                Ok(Ok(0)) => return Err(WriteFailure::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(WriteFailure::Io(e)),
                Err(_) => return Err(WriteFailure::Stalled),
            };
        while written > 0 {
            let left = batch[index].wire_bytes().len() - offset;
            if written >= left {
                written -= left;
                (index, offset) = (index + 1, 0);
            } else {
                offset += written;
                written = 0;
            }
        }
    }
}

/// Moves frames both ways until either side ends. Returns the close to send, if any.
async fn pump(
    state: &AppState,
    ws: &mut Ws,
    outbox: &Outbox,
    session: &ActorRef<SessionMsg>,
    (user, session_id): (Snowflake, u64),
    clock: &mut TokenClock,
) -> Option<CloseReason> {
    let mut gate = state.limits.connection();
    let idle_timeout = Duration::from_secs(state.config.ws_idle_timeout_secs);
    let write_timeout = Duration::from_millis(state.config.ws_write_timeout_ms);
    let mut ping = tokio::time::interval(Duration::from_secs(state.config.ws_ping_interval_secs));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    // Its own timer rather than the ping tick, so a client that vanishes without closing (a
    // phone losing its network) is dropped exactly `idle_timeout` after its last frame, not up
    // to a ping interval later. Re-armed lazily: frames only move `last_heard`.
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    // The access token's end: the connection closes then unless `auth:refresh` moved it.
    let expiry = tokio::time::sleep_until(clock.deadline());
    tokio::pin!(expiry);
    let mut batch: Vec<Frame> = Vec::new();
    loop {
        tokio::select! {
            inbound = ws.next() => {
                last_heard = Instant::now();
                // Limits are checked and the frame parsed here, before it reaches the session
                // actor; refusals and closes go through the outbox, in order with everything
                // else.
                let verdict = match &inbound {
                    Some(Ok(Message::Text(text))) => {
                        Some(gate.check_text(&state.limits, user, text.as_str()))
                    }
                    Some(Ok(Message::Binary(_))) => Some(gate.check_binary(&state.limits, user)),
                    _ => None,
                };
                match verdict {
                    None => {}
                    Some(Verdict::Forward(frame)) => {
                        if let ClientRequest::AuthRefresh(refresh) = &frame.request {
                            if let Some(answer) = clock.handle(state, user, session_id, frame.id, refresh) {
                                outbox.push(answer);
                            }
                            expiry.as_mut().reset(clock.deadline());
                            continue;
                        }
                        if session.cast(SessionMsg::Inbound(frame)).is_err() {
                            return Some(CloseReason { code: 1011, reason: "session ended".into() });
                        }
                        continue;
                    }
                    Some(Verdict::Refuse(answer)) => {
                        outbox.push(answer);
                        continue;
                    }
                    Some(Verdict::Close(answer, reason)) => {
                        outbox.push(answer);
                        outbox.close(reason);
                        continue;
                    }
                }
                match inbound {
                    // Handled above.
                    Some(Ok(Message::Text(_) | Message::Binary(_))) => {}
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::debug!(error = %e, "websocket frame over the hard limit");
                        return Some(CloseReason {
                            code: 1009,
                            reason: format!(
                                "message too big: frames over {} bytes close the connection (the limit is {} bytes)",
                                state.config.limits.ws_frame_close_bytes,
                                state.config.ws_max_frame_bytes
                            ),
                        });
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read error");
                        return Some(CloseReason { code: 1002, reason: "protocol error".into() });
                    }
                }
            }
            drained = outbox.next_batch(&mut batch) => {
                match drained {
                    Drained::Closed(reason) => return Some(reason),
                    Drained::Frames => {
                        // A client that overflows its queue while this write is under way gets
                        // its 4008 close right after it (the outbox reports the close next).
                        match write_raw(ws, &batch, write_timeout).await {
                            Ok(()) => {}
                            Err(WriteFailure::Io(e)) => {
                                tracing::debug!(error = %e, "websocket write error");
                                return None;
                            }
                            Err(WriteFailure::Stalled) => {
                                tracing::info!("client stopped reading; dropping the connection");
                                metrics::counter!("voiceflow_slow_consumer_drops_total").increment(1);
                                return None;
                            }
                        }
                        batch.clear();
                        // A burst is over; idle connections should stay small.
                        batch.shrink_to(8);
                    }
                }
            }
            () = &mut expiry => {
                if clock.expired() {
                    return Some(TokenClock::close_reason());
                }
                expiry.as_mut().reset(clock.deadline());
            }
            () = &mut idle => {
                if last_heard.elapsed() >= idle_timeout {
                    return Some(CloseReason::idle_timeout());
                }
                idle.as_mut().reset(tokio::time::Instant::from_std(last_heard + idle_timeout));
            }
            _ = ping.tick() => {
                match tokio::time::timeout(write_timeout, ws.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        }
    }
}
