//! `fanout` scenario: one room, 1,000 receiver sessions, one windowed sender.
//!
//! Setup: `--users` (500) users, user 0 creates the room (maxUsers 500) and the others
//! join it through REST. Each user opens `--sessions-per-user` (2) sessions that
//! `room:join` the room; a further session of user 0 is the sender. The sender keeps at
//! most `--window` (64) `message:send` events unacknowledged for `--duration` (10) s,
//! then waits for the remaining acks. Receivers count every `message:received`; evenly
//! spaced `--latency-receivers` (50, 0 = all) also record send-to-receive latency.
//! Throughput is all receivers' deliveries divided by the time from the first send to
//! the last delivery (sampled every millisecond by the main task).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{
    CpuMeter, Recorder, RssProbe, SharedHist, elapsed_ns, fig, fig_f, latency_figs, per_sec,
    shared_histogram, snapshot,
};
use crate::ws::{self, Conn, Frame, Signal};
use crate::{Args, Ctx, conns, rest};

/// State shared by the receivers and the main task.
struct Shared {
    delivered: AtomicU64,
    stop: Signal,
    latency: SharedHist,
}

#[derive(Default)]
struct RecvStats {
    delivered: u64,
    disconnected: bool,
}

#[derive(Default)]
struct SenderStats {
    sent: u64,
    acked: u64,
    errors: u64,
    first_error: Option<String>,
    own_copies: u64,
    send_elapsed: Duration,
    failure: Option<String>,
}

pub async fn run(args: &Args, ctx: &Ctx) -> Result<()> {
    let users_n = args.users.unwrap_or(500);
    if !(1..=500).contains(&users_n) {
        bail!("fanout: --users must be within 1..=500 (room maxUsers is at most 500)");
    }
    let sessions = args.sessions_per_user.unwrap_or(2).max(1);
    let duration = Duration::from_secs(args.duration.unwrap_or(10).max(1));
    let window = args.window.max(1);

    let users =
        rest::register_many(&ctx.api, &ctx.run_id, users_n, args.register_concurrency).await?;
    let owner = users[0].clone();
    let spec = vec![(owner.token.clone(), format!("{} fanout", ctx.run_id), 500)];
    let room = rest::create_rooms(&ctx.api, spec, args.rest_concurrency)
        .await?
        .remove(0);
    let joins = users[1..]
        .iter()
        .map(|u| (u.token.clone(), room.join_code.clone()))
        .collect();
    rest::join_many(&ctx.api, joins, args.rest_concurrency).await?;

    let rss = RssProbe::before(args.server_pid);
    let n = users_n * sessions;
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        stop: Signal::default(),
        latency: shared_histogram(),
    });
    let every = match args.latency_receivers {
        0 => 1,
        k => (n / k).max(1),
    };
    let max_sampled = if args.latency_receivers == 0 {
        n
    } else {
        args.latency_receivers
    };
    let target = ctx.target.clone().with_read_buffer(16 * 1024);
    let room_ids = vec![room.id.clone()];
    eprintln!("fanout: opening {n} receiver sessions");
    let body = {
        let shared = shared.clone();
        let origin = ctx.origin;
        move |i: usize, conn: Conn| {
            let record = i.is_multiple_of(every) && i / every < max_sampled;
            receive_loop(conn, shared.clone(), origin, record)
        }
    };
    let opened = conns::open_many(
        &target,
        n,
        args.concurrency,
        |i| (users[i % users_n].token.clone(), room_ids.clone()),
        body,
    )
    .await?;
    let sender = target
        .connect_and_join(&owner.token, &room_ids)
        .await
        .context("opening the sender session")?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    rss.idle(opened.ok + 1);

    eprintln!(
        "fanout: sending for {} s with window {window}, rate {}",
        duration.as_secs(),
        if args.send_rate > 0.0 {
            format!("{} msg/s", args.send_rate)
        } else {
            "unpaced".into()
        }
    );
    let cpu = CpuMeter::start(args.server_pid);
    let ack_latency = shared_histogram();
    let send_start = Instant::now();
    let mut sender_task = tokio::spawn(send_loop(
        sender,
        SendPlan {
            room_json: serde_json::to_string(&room.id)?,
            window,
            rate: args.send_rate,
            pad_to: args.content_bytes,
            origin: ctx.origin,
            send_end: send_start + duration,
            drain: Duration::from_secs(args.drain_secs),
        },
        ack_latency.clone(),
    ));

    // Track the time of the last delivery while the sender runs, then drain.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut progress = Progress {
        count: 0,
        last_change: send_start,
    };
    let bound = duration + Duration::from_secs(args.drain_secs + args.timeout_secs + 5);
    let sender_stats = loop {
        tokio::select! {
            joined = &mut sender_task => break joined.context("sender task")?,
            _ = tick.tick() => {
                progress.observe(shared.delivered.load(Ordering::Relaxed), Instant::now());
                if send_start.elapsed() > bound {
                    sender_task.abort();
                    bail!("fanout: the sender did not finish within {bound:?}");
                }
            }
        }
    };
    let expected = sender_stats.acked * opened.ok as u64;
    let drain_end = Instant::now() + Duration::from_secs(args.drain_secs);
    loop {
        let now = Instant::now();
        let d = shared.delivered.load(Ordering::Relaxed);
        progress.observe(d, now);
        if d >= expected || now >= drain_end || now - progress.last_change > Duration::from_secs(2)
        {
            break;
        }
        tick.tick().await;
    }
    cpu.finish();
    shared.stop.set();
    let results = conns::join_all(opened.handles, Duration::from_secs(10)).await;

    let delivered: u64 = results.iter().map(|r| r.delivered).sum();
    let disconnected = results.iter().filter(|r| r.disconnected).count();
    let elapsed = progress.last_change.saturating_duration_since(send_start);
    fig("fanout.receivers", opened.ok, "conns");
    fig("fanout.connect_failures", opened.failed, "conns");
    fig("fanout.window", window, "msgs");
    fig_f(
        "fanout.send_secs",
        sender_stats.send_elapsed.as_secs_f64(),
        "s",
    );
    fig("fanout.sent", sender_stats.sent, "msgs");
    fig("fanout.acked", sender_stats.acked, "msgs");
    fig("fanout.send_errors", sender_stats.errors, "msgs");
    fig_f(
        "fanout.acked_per_sec",
        per_sec(sender_stats.acked, sender_stats.send_elapsed),
        "msg/s",
    );
    fig("fanout.delivered", delivered, "msgs");
    fig("fanout.expected", expected, "msgs");
    fig("fanout.missing", expected.saturating_sub(delivered), "msgs");
    fig_f("fanout.elapsed_secs", elapsed.as_secs_f64(), "s");
    fig_f(
        "fanout.delivered_per_sec",
        per_sec(delivered, elapsed),
        "msg/s",
    );
    latency_figs("fanout.latency", &snapshot(&shared.latency));
    latency_figs("fanout.ack_latency", &snapshot(&ack_latency));
    fig("fanout.receiver_disconnects", disconnected, "conns");
    rss.end();
    if let Some(e) = &sender_stats.first_error {
        eprintln!("error: first refused message:send: {e}");
    }
    if let Some(f) = &sender_stats.failure {
        eprintln!("error: sender: {f}");
    }
    eprintln!(
        "fanout: sender saw {} copies of its own messages",
        sender_stats.own_copies
    );
    Ok(())
}

/// Counts `message:received` frames until stopped; records latency when asked.
async fn receive_loop(
    mut conn: Conn,
    shared: Arc<Shared>,
    origin: Instant,
    record: bool,
) -> RecvStats {
    let mut st = RecvStats::default();
    let mut recorder = record.then(|| Recorder::new(shared.latency.clone()));
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    let mut since_check = 0u32;
    loop {
        tokio::select! {
            biased;
            msg = conn.ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if on_frame(text.as_bytes(), recorder.as_mut(), origin) {
                        st.delivered += 1;
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    // A receiver that always has data never polls `stop`: check it here.
                    since_check += 1;
                    if since_check >= 1024 {
                        since_check = 0;
                        if shared.stop.is_set() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    st.disconnected = !shared.stop.is_set();
                    break;
                }
                Some(Ok(_)) => {}
            },
            () = &mut stop => break,
        }
    }
    st
}

/// Returns whether `frame` is a delivery, recording its latency if `recorder` is set.
#[inline]
fn on_frame(frame: &[u8], recorder: Option<&mut Recorder>, origin: Instant) -> bool {
    let t = if ws::is_received(frame) {
        match recorder {
            Some(_) => ws::received_t(frame),
            None => None,
        }
    } else {
        match ws::classify(frame) {
            Frame::Received(t) => t,
            _ => return false,
        }
    };
    if let (Some(recorder), Some(t)) = (recorder, t) {
        recorder.record(elapsed_ns(origin).saturating_sub(t));
    }
    true
}

/// Time of the last change of the delivered counter.
struct Progress {
    count: u64,
    last_change: Instant,
}

impl Progress {
    fn observe(&mut self, count: u64, now: Instant) {
        if count != self.count {
            self.count = count;
            self.last_change = now;
        }
    }
}

struct SendPlan {
    room_json: String,
    window: usize,
    /// Messages per second; 0 = unpaced.
    rate: f64,
    pad_to: usize,
    origin: Instant,
    send_end: Instant,
    drain: Duration,
}

/// How long until the pacing schedule allows the next send.
fn pace_wait(plan: &SendPlan, started: Instant, sent: u64) -> Duration {
    // select! builds every branch's future, even disabled ones.
    if plan.rate <= 0.0 {
        return Duration::from_secs(3600);
    }
    let next = Duration::from_secs_f64((sent + 1) as f64 / plan.rate);
    next.saturating_sub(started.elapsed())
}

/// Keeps up to `window` messages unacknowledged until `send_end`, then waits up to
/// `drain` for the outstanding acks.
async fn send_loop(mut conn: Conn, plan: SendPlan, ack_latency: SharedHist) -> SenderStats {
    let mut st = SenderStats::default();
    let mut recorder = Recorder::new(ack_latency);
    let mut inflight: HashMap<u64, u64> = HashMap::with_capacity(plan.window * 2);
    let started = Instant::now();
    let mut drain_end = plan.send_end + plan.drain;
    let wake = tokio::time::sleep_until(plan.send_end.into());
    tokio::pin!(wake);
    let mut sending = true;
    loop {
        let now = Instant::now();
        if sending && now >= plan.send_end {
            sending = false;
            st.send_elapsed = started.elapsed();
            drain_end = now + plan.drain;
            wake.as_mut().reset(drain_end.into());
        }
        if !sending {
            if inflight.is_empty() {
                break;
            }
            if now >= drain_end {
                st.failure = Some(format!(
                    "{} acks still outstanding after --drain-secs",
                    inflight.len()
                ));
                break;
            }
        }
        // With a rate, only what the schedule allows by now may go out.
        let due = if plan.rate > 0.0 {
            ((started.elapsed().as_secs_f64() * plan.rate) as u64).saturating_sub(st.sent)
        } else {
            u64::MAX
        };
        if sending && inflight.len() < plan.window && due > 0 {
            let mut budget = due;
            while inflight.len() < plan.window && budget > 0 {
                budget -= 1;
                let id = conn.next_id();
                let t = elapsed_ns(plan.origin);
                let frame = ws::send_frame(id, &plan.room_json, t, plan.pad_to);
                if let Err(e) = conn.ws.feed(Message::text(frame)).await {
                    st.failure = Some(format!("send failed: {e}"));
                    return st;
                }
                inflight.insert(id, t);
                st.sent += 1;
            }
            if let Err(e) = conn.ws.flush().await {
                st.failure = Some(format!("send failed: {e}"));
                return st;
            }
        }
        tokio::select! {
            biased;
            msg = conn.ws.next() => match msg {
                Some(Ok(Message::Text(text))) => match ws::classify(text.as_bytes()) {
                    Frame::Ack(ack) => {
                        if let Some(t0) = inflight.remove(&ack.id) {
                            if ack.ok && ack.error.is_none() {
                                st.acked += 1;
                                recorder.record(elapsed_ns(plan.origin).saturating_sub(t0));
                            } else {
                                st.errors += 1;
                                if st.first_error.is_none() {
                                    st.first_error =
                                        Some(ack.error.unwrap_or_else(|| "ok:false".into()));
                                }
                            }
                        }
                    }
                    Frame::Received(_) => st.own_copies += 1,
                    _ => {}
                },
                Some(Ok(Message::Close(frame))) => {
                    st.failure = Some(format!("server closed the sender session: {frame:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    st.failure = Some(format!("sender read failed: {e}"));
                    break;
                }
                None => {
                    st.failure = Some("sender session ended".into());
                    break;
                }
            },
            () = &mut wake => {}
            () = tokio::time::sleep(pace_wait(&plan, started, st.sent)), if sending && plan.rate > 0.0 => {}
        }
    }
    if sending {
        st.send_elapsed = started.elapsed();
    }
    st
}
