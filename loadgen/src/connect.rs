//! `connect` scenario: connection establishment rate, then memory per idle connection.
//!
//! Setup: `--users` (20) users and `--rooms` (20) rooms (maxUsers 500); every user is a
//! member of every room (membership counts a user once however many sessions it has).
//! Load: `--connections` (10,000) sessions, `--concurrency` (256) attempts in flight;
//! session i is user i mod users joining room (i / users) mod rooms. One attempt is a
//! TCP connect, the WebSocket upgrade, the `hello` frame and the `room:join` ack, timed
//! from before the TCP connect to the ack. Afterwards every session stays open and is
//! read (pings answered) for `--idle-secs` before the node's RSS is read.
//!
//! With `--shape community` the users, rooms and joins come from [`crate::community`]
//! instead (defaults: 200 users, each a member of 50 of 100 rooms, with 50 sessions that
//! each join one of the user's rooms: 10,000 connections, every join a user's first session
//! in that room); `--connections` is then the layout's session count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{CpuMeter, RssProbe, fig, fig_f, latency_figs, per_sec};
use crate::ws::{Conn, Signal};
use crate::{Args, Ctx, Shape, community, conns, rest};

#[derive(Default)]
struct IdleStats {
    frames: u64,
    disconnected: bool,
    /// The server's close frame: its code, and when it came.
    closed: Option<(u16, Instant)>,
}

pub async fn run(args: &Args, ctx: &Ctx) -> Result<()> {
    if args.shape == Shape::Community {
        return run_community(args, ctx).await;
    }
    let users_n = args.users.unwrap_or(20);
    let rooms_n = args.rooms.unwrap_or(20);
    let n = args.connections;
    if !(1..=500).contains(&users_n) || rooms_n == 0 || n == 0 {
        bail!("connect: need 1 <= --users <= 500, --rooms >= 1 and --connections >= 1");
    }

    let users =
        rest::register_many(&ctx.api, &ctx.run_id, users_n, args.register_concurrency).await?;
    let specs = (0..rooms_n)
        .map(|r| {
            let owner = users[r % users_n].token.clone();
            (owner, format!("{} connect {r}", ctx.run_id), 500)
        })
        .collect();
    let rooms = rest::create_rooms(&ctx.api, specs, args.rest_concurrency).await?;
    let mut joins = Vec::with_capacity(users_n * rooms_n);
    for (r, room) in rooms.iter().enumerate() {
        for (u, user) in users.iter().enumerate() {
            if u != r % users_n {
                joins.push((user.token.clone(), room.join_code.clone()));
            }
        }
    }
    rest::join_many(&ctx.api, joins, args.rest_concurrency).await?;
    let room_ids: Vec<String> = rooms.into_iter().map(|r| r.id).collect();

    eprintln!(
        "connect: {n} sessions ({} at a time), {users_n} users, {rooms_n} rooms",
        args.concurrency
    );
    measure(args, ctx, n, n, |i| {
        let token = users[i % users_n].token.clone();
        (token, vec![room_ids[(i / users_n) % rooms_n].clone()])
    })
    .await
}

/// The community shape: see the module docs.
async fn run_community(args: &Args, ctx: &Ctx) -> Result<()> {
    let shape = community::shape_from(args, 100);
    let setup = community::setup(args, ctx, shape, "connect").await?;
    let n = setup.layout.sessions.len();
    let joins = (0..n).map(|i| setup.session_plan(i).1.len()).sum();
    eprintln!(
        "connect: community shape, {n} sessions ({} at a time), {joins} joins",
        args.concurrency
    );
    measure(args, ctx, n, joins, |i| setup.session_plan(i)).await
}

/// Opens `n` sessions (`joins` room:joins in all) as `plan` says, prints the rate and the
/// latency, then keeps them idle and reads the server's memory.
async fn measure<P>(args: &Args, ctx: &Ctx, n: usize, joins: usize, plan: P) -> Result<()>
where
    P: Fn(usize) -> (Arc<str>, Vec<String>),
{
    let rss = RssProbe::before(args.server_pid);
    let cpu = CpuMeter::start(args.server_pid);
    let stop = Arc::new(Signal::default());
    let target = ctx.target.clone().with_read_buffer(4 * 1024);
    let body = {
        let stop = stop.clone();
        move |_i: usize, conn: Conn| idle(conn, stop.clone())
    };
    let opened = conns::open_many(&target, n, args.concurrency, plan, body).await?;
    cpu.finish();

    fig("connect.attempted", n, "conns");
    fig("connect.ok", opened.ok, "conns");
    fig("connect.failed", opened.failed, "conns");
    fig("connect.concurrency", args.concurrency, "conns");
    fig_f("connect.elapsed_secs", opened.elapsed.as_secs_f64(), "s");
    fig_f(
        "connect.connect_join_per_sec",
        per_sec(opened.ok as u64, opened.elapsed),
        "conn/s",
    );
    fig("connect.joins", joins, "joins");
    fig_f(
        "connect.joins_per_sec",
        per_sec((joins * opened.ok / n.max(1)) as u64, opened.elapsed),
        "joins/s",
    );
    latency_figs("connect.latency", &opened.latency);

    eprintln!("connect: idling {} s before reading RSS", args.idle_secs);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    rss.idle(opened.ok);
    if args.then_stop_node {
        return stop_node(args, opened.handles).await;
    }
    stop.set();
    let results = conns::join_all(opened.handles, Duration::from_secs(10)).await;
    let disconnected = results.iter().filter(|r| r.disconnected).count();
    let frames: u64 = results.iter().map(|r| r.frames).sum();
    fig("connect.idle_disconnects", disconnected, "conns");
    fig("connect.frames_after_join", frames, "frames");
    rss.end();
    Ok(())
}

/// Keeps reading an idle session (answering pings) until stopped.
async fn idle(mut conn: Conn, stop: Arc<Signal>) -> IdleStats {
    let mut st = IdleStats::default();
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            msg = conn.ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    st.closed = Some((code, Instant::now()));
                    st.disconnected = !stop.is_set();
                    break;
                }
                Some(Err(_)) | None => {
                    st.disconnected = !stop.is_set();
                    break;
                }
                Some(Ok(_)) => {
                    st.frames += 1;
                    if stop.is_set() {
                        break;
                    }
                }
            },
        }
    }
    st
}

/// `--then-stop-node`: SIGTERM the node and time its drain while every session is open (all
/// its rooms running): when the last client got its close frame, and when the process ended.
/// The node's own account of retiring its rooms is in its log ("rooms retired").
async fn stop_node(args: &Args, handles: Vec<tokio::task::JoinHandle<IdleStats>>) -> Result<()> {
    let Some(pid) = args.server_pid else {
        bail!("--then-stop-node needs --server-pid");
    };
    let sessions = handles.len();
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -TERM {pid} failed");
    }
    let results = conns::join_all(handles, Duration::from_secs(args.drain_secs.max(30))).await;
    let mut codes: Vec<(u16, usize)> = Vec::new();
    let mut last_close = Duration::ZERO;
    for (code, at) in results.iter().filter_map(|r| r.closed) {
        last_close = last_close.max(at.duration_since(started));
        match codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => codes.push((code, 1)),
        }
    }
    let deadline = started + Duration::from_secs(60);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let exited = !process_alive(pid);
    fig("drain.sessions", sessions, "conns");
    for (code, n) in codes {
        fig(&format!("drain.closed_with_{code}"), n, "conns");
    }
    let unclosed = sessions - results.iter().filter(|r| r.closed.is_some()).count();
    fig("drain.not_closed", unclosed, "conns");
    fig_f("drain.last_close_secs", last_close.as_secs_f64(), "s");
    if exited {
        fig_f("drain.exit_secs", started.elapsed().as_secs_f64(), "s");
    } else {
        bail!("the node (pid {pid}) did not exit within 60 s of SIGTERM");
    }
    Ok(())
}

/// Whether process `pid` still runs (a zombie waiting for its parent counts as ended).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
