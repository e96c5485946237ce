//! `rooms` scenario: many small rooms, each receiving a steady trickle of messages.
//!
//! Setup: `--users` (default `--rooms`) users; room r (of `--rooms`, 1,000) is created
//! by user r mod users, and member k (k < `--members`, 10) of room r is user
//! (r + k) mod users, so with the defaults each user is a member of 10 rooms. Each user
//! opens ONE WebSocket session joined to all of its rooms (1,000 sessions).
//!
//! Load: room r is sent `--rate` (1) messages per second by its owner's session, at
//! times start + (r / rooms + n) / rate, i.e. the rooms' sends are spread evenly over
//! each period; a session that falls behind sends its late messages at once (open
//! loop). Sending lasts `--duration` (30) s. Every session records the latency of every
//! message it receives (its own included) into one histogram covering the whole run, and
//! those sent from `--warmup` (5) s on into a second one (`rooms.latency_after_warmup`).
//!
//! With `--shape community` the users, rooms and sessions come from [`crate::community`]
//! (defaults: 200 users, each a member of 50 of 1,000 rooms (10 members each), with 50
//! sessions that each join one of the user's rooms: 10,000 sessions). Room r is then sent to
//! by a session of its owner that joined it, and each message is expected at every session
//! joined to the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::stats::{
    CpuMeter, Recorder, RssProbe, SharedHist, elapsed_ns, fig, fig_f, latency_figs, per_sec,
    shared_histogram, snapshot,
};
use crate::ws::{self, Conn, Frame, Signal};
use crate::{Args, Ctx, Shape, community, conns, rest};

/// State shared by the session tasks and the main task.
struct Shared {
    start: Signal,
    start_at: OnceLock<Instant>,
    stop: Signal,
    delivered: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    /// Deliveries owed for the acknowledged messages (the receivers of each, summed).
    expected: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latency: SharedHist,
    /// Latencies of the messages sent after the warm-up.
    steady: SharedHist,
    /// When the warm-up ends, in nanoseconds since the origin (the send times' clock).
    warm_until_ns: AtomicU64,
    ack_latency: SharedHist,
}

/// One session's send schedule: (offset within the period, JSON-quoted room id, sessions
/// that receive each message), sorted by offset.
type Schedule = Vec<(Duration, String, u64)>;

/// Sessions to open (access token, rooms to join) and what each of them sends.
struct Setup {
    sessions: Vec<(Arc<str>, Vec<String>)>,
    schedules: Vec<Schedule>,
    rooms: usize,
}

/// Fixed parameters of every session task.
struct Plan {
    schedules: Vec<Schedule>,
    period: Duration,
    duration: Duration,
    pad_to: usize,
    origin: Instant,
}

#[derive(Default)]
struct ConnStats {
    disconnected: bool,
}

pub async fn run(args: &Args, ctx: &Ctx) -> Result<()> {
    let duration = Duration::from_secs(args.duration.unwrap_or(30).max(1));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let setup = match args.shape {
        Shape::Friendly => friendly(args, ctx, period).await?,
        Shape::Community => community(args, ctx, period).await?,
    };
    let Setup {
        sessions,
        schedules,
        rooms: rooms_n,
    } = setup;
    let sessions_n = sessions.len();

    let rss = RssProbe::before(args.server_pid);
    let shared = Arc::new(Shared {
        start: Signal::default(),
        start_at: OnceLock::new(),
        stop: Signal::default(),
        delivered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        expected: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        latency: shared_histogram(),
        steady: shared_histogram(),
        warm_until_ns: AtomicU64::new(u64::MAX),
        ack_latency: shared_histogram(),
    });
    let plan = Arc::new(Plan {
        schedules,
        period,
        duration,
        pad_to: args.content_bytes,
        origin: ctx.origin,
    });
    let target = ctx.target.clone().with_read_buffer(8 * 1024);
    eprintln!("rooms: opening {sessions_n} sessions, each joined to its rooms");
    let body = {
        let shared = shared.clone();
        move |i: usize, conn: Conn| session(conn, i, plan.clone(), shared.clone())
    };
    let opened = conns::open_many(
        &target,
        sessions_n,
        args.concurrency,
        |i| sessions[i].clone(),
        body,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    rss.idle(opened.ok);

    eprintln!(
        "rooms: {rooms_n} rooms, {} msg/s per room for {} s",
        args.rate,
        duration.as_secs()
    );
    let cpu = CpuMeter::start(args.server_pid);
    let start_at = Instant::now() + Duration::from_millis(20);
    let _ = shared.start_at.set(start_at);
    let warm_until = start_at + Duration::from_secs(args.warmup);
    shared.warm_until_ns.store(
        warm_until.saturating_duration_since(ctx.origin).as_nanos() as u64,
        Ordering::Relaxed,
    );
    shared.start.set();
    tokio::time::sleep_until((start_at + duration).into()).await;

    // Drain: every ack in, and every acked message delivered to all members.
    let drain_end = Instant::now() + Duration::from_secs(args.drain_secs);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        let sent = shared.sent.load(Ordering::Relaxed);
        let answered = shared.acked.load(Ordering::Relaxed) + shared.errors.load(Ordering::Relaxed);
        let expected = shared.expected.load(Ordering::Relaxed);
        if (answered >= sent && shared.delivered.load(Ordering::Relaxed) >= expected)
            || Instant::now() >= drain_end
        {
            break;
        }
        tick.tick().await;
    }
    let elapsed = start_at.elapsed();
    cpu.finish();
    shared.stop.set();
    let results = conns::join_all(opened.handles, Duration::from_secs(10)).await;

    let sent = shared.sent.load(Ordering::Relaxed);
    let acked = shared.acked.load(Ordering::Relaxed);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let expected = shared.expected.load(Ordering::Relaxed);
    fig("rooms.rooms", rooms_n, "rooms");
    fig("rooms.connections", opened.ok, "conns");
    fig("rooms.connect_failures", opened.failed, "conns");
    fig_f("rooms.duration_secs", duration.as_secs_f64(), "s");
    fig("rooms.sent", sent, "msgs");
    fig("rooms.acked", acked, "msgs");
    fig(
        "rooms.send_errors",
        shared.errors.load(Ordering::Relaxed),
        "msgs",
    );
    fig_f("rooms.sent_per_sec", per_sec(sent, duration), "msg/s");
    fig("rooms.delivered", delivered, "msgs");
    fig("rooms.expected", expected, "msgs");
    fig("rooms.missing", expected.saturating_sub(delivered), "msgs");
    fig_f(
        "rooms.delivered_per_sec",
        per_sec(delivered, elapsed),
        "msg/s",
    );
    latency_figs("rooms.latency", &snapshot(&shared.latency));
    fig("rooms.warmup", args.warmup, "s");
    latency_figs("rooms.latency_after_warmup", &snapshot(&shared.steady));
    latency_figs("rooms.ack_latency", &snapshot(&shared.ack_latency));
    let disconnected = results.iter().filter(|r| r.disconnected).count();
    fig("rooms.disconnects", disconnected, "conns");
    rss.end();
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(e) = first_error {
        eprintln!("error: first refused message:send: {e}");
    }
    Ok(())
}

/// The original shape: see the module docs.
async fn friendly(args: &Args, ctx: &Ctx, period: Duration) -> Result<Setup> {
    let rooms_n = args.rooms.unwrap_or(1000);
    let members = args.members;
    let users_n = args.users.unwrap_or(rooms_n);
    if rooms_n == 0 || !(1..=500).contains(&members) || members > users_n {
        bail!("rooms: need --rooms >= 1, 1 <= --members <= 500 and --members <= --users");
    }
    let users =
        rest::register_many(&ctx.api, &ctx.run_id, users_n, args.register_concurrency).await?;
    let specs = (0..rooms_n)
        .map(|r| {
            let owner = users[r % users_n].token.clone();
            (owner, format!("{} room {r}", ctx.run_id), members * 2)
        })
        .collect();
    let rooms = rest::create_rooms(&ctx.api, specs, args.rest_concurrency).await?;
    let mut joins = Vec::with_capacity(rooms_n * members);
    let mut member_of: Vec<Vec<String>> = vec![Vec::new(); users_n];
    let mut schedules: Vec<Schedule> = vec![Vec::new(); users_n];
    for (r, room) in rooms.iter().enumerate() {
        for k in 0..members {
            let u = (r + k) % users_n;
            member_of[u].push(room.id.clone());
            if k > 0 {
                joins.push((users[u].token.clone(), room.join_code.clone()));
            }
        }
        let offset = period.mul_f64(r as f64 / rooms_n as f64);
        schedules[r % users_n].push((offset, serde_json::to_string(&room.id)?, members as u64));
    }
    rest::join_many(&ctx.api, joins, args.rest_concurrency).await?;
    fig("rooms.members_per_room", members, "users");
    let sessions = users
        .iter()
        .zip(member_of)
        .map(|(u, rooms)| (u.token.clone(), rooms))
        .collect();
    Ok(Setup {
        sessions,
        schedules,
        rooms: rooms_n,
    })
}

/// The community shape: see the module docs.
async fn community(args: &Args, ctx: &Ctx, period: Duration) -> Result<Setup> {
    let shape = community::shape_from(args, 1000);
    let setup = community::setup(args, ctx, shape, "rooms").await?;
    let layout = &setup.layout;
    let joined = layout.joined_per_room();
    // The sender of room r: the first session of its owner that joined it, else the first
    // session that joined it at all.
    let mut sender: Vec<Option<usize>> = vec![None; shape.rooms];
    for (i, (user, rooms)) in layout.sessions.iter().enumerate() {
        for &r in rooms {
            let owner = layout.members[r].first() == Some(user);
            match sender[r] {
                None => sender[r] = Some(i),
                Some(j) if owner && layout.sessions[j].0 != *user => sender[r] = Some(i),
                Some(_) => {}
            }
        }
    }
    let mut schedules: Vec<Schedule> = vec![Vec::new(); layout.sessions.len()];
    let mut rooms = 0usize;
    for (r, sender) in sender.iter().enumerate() {
        let (Some(i), Some(id)) = (sender, &setup.room_ids[r]) else {
            continue;
        };
        rooms += 1;
        let offset = period.mul_f64(r as f64 / shape.rooms as f64);
        schedules[*i].push((offset, serde_json::to_string(id)?, joined[r] as u64));
    }
    for schedule in &mut schedules {
        schedule.sort_by_key(|e| e.0);
    }
    let sessions = (0..layout.sessions.len())
        .map(|i| setup.session_plan(i))
        .collect();
    Ok(Setup {
        sessions,
        schedules,
        rooms,
    })
}

/// Per-session frame bookkeeping.
struct Tally {
    shared: Arc<Shared>,
    origin: Instant,
    latency: Recorder,
    steady: Recorder,
    ack_latency: Recorder,
    /// Unacknowledged sends: id -> (send time, receivers).
    inflight: HashMap<u64, (u64, u64)>,
    frames: u32,
}

impl Tally {
    /// Handles one read result; false when the session is over.
    fn on_message(&mut self, msg: Option<Result<Message, WsError>>) -> bool {
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
            Some(Ok(_)) => return true,
        };
        match ws::classify(text.as_bytes()) {
            Frame::Received(t) => {
                self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = t {
                    let latency = elapsed_ns(self.origin).saturating_sub(t);
                    self.latency.record(latency);
                    if t >= self.shared.warm_until_ns.load(Ordering::Relaxed) {
                        self.steady.record(latency);
                    }
                }
            }
            Frame::Ack(ack) => {
                if let Some((t0, receivers)) = self.inflight.remove(&ack.id) {
                    if ack.ok && ack.error.is_none() {
                        self.shared.acked.fetch_add(1, Ordering::Relaxed);
                        self.shared.expected.fetch_add(receivers, Ordering::Relaxed);
                        self.ack_latency
                            .record(elapsed_ns(self.origin).saturating_sub(t0));
                    } else {
                        self.shared.errors.fetch_add(1, Ordering::Relaxed);
                        let mut first = self
                            .shared
                            .first_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if first.is_none() {
                            *first = Some(ack.error.unwrap_or_else(|| "ok:false".into()));
                        }
                    }
                }
            }
            _ => {}
        }
        // A session that always has data never polls `stop`: check it here.
        self.frames = self.frames.wrapping_add(1);
        !(self.frames.is_multiple_of(1024) && self.shared.stop.is_set())
    }
}

/// One session: drain until start, then send on schedule and count until stop.
async fn session(mut conn: Conn, i: usize, plan: Arc<Plan>, shared: Arc<Shared>) -> ConnStats {
    let mut tally = Tally {
        shared: shared.clone(),
        origin: plan.origin,
        latency: Recorder::new(shared.latency.clone()),
        steady: Recorder::new(shared.steady.clone()),
        ack_latency: Recorder::new(shared.ack_latency.clone()),
        inflight: HashMap::new(),
        frames: 0,
    };
    let mut st = ConnStats::default();
    {
        let start = shared.start.wait();
        tokio::pin!(start);
        loop {
            tokio::select! {
                biased;
                () = &mut start => break,
                msg = conn.ws.next() => if !tally.on_message(msg) {
                    st.disconnected = true;
                    return st;
                },
            }
        }
    }
    let Some(&start_at) = shared.start_at.get() else {
        return st;
    };
    let schedule = &plan.schedules[i];
    let end = start_at + plan.duration;
    let (mut idx, mut cycle) = (0usize, 0u32);
    let due = |idx: usize, cycle: u32| start_at + schedule[idx].0 + plan.period * cycle;
    let mut sending = !schedule.is_empty() && due(0, 0) < end;
    let first = if sending { due(0, 0) } else { end };
    let wake = tokio::time::sleep_until(first.into());
    tokio::pin!(wake);
    let stop = shared.stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            msg = conn.ws.next() => if !tally.on_message(msg) {
                st.disconnected = !shared.stop.is_set();
                break;
            },
            () = &mut wake, if sending => {
                let id = conn.next_id();
                let t = elapsed_ns(plan.origin);
                let frame = ws::send_frame(id, &schedule[idx].1, t, plan.pad_to);
                if conn.ws.send(Message::text(frame)).await.is_err() {
                    st.disconnected = true;
                    break;
                }
                tally.inflight.insert(id, (t, schedule[idx].2));
                shared.sent.fetch_add(1, Ordering::Relaxed);
                idx += 1;
                if idx == schedule.len() {
                    idx = 0;
                    cycle += 1;
                }
                let next = due(idx, cycle);
                if next >= end {
                    sending = false;
                } else {
                    wake.as_mut().reset(next.into());
                }
            },
            () = &mut stop => break,
        }
    }
    st
}
