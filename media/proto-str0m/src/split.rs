//! `mem_connected=1`: the server's memory per CONNECTED participant, the clients in another
//! process. This process runs the SFU and a signalling listener on loopback TCP, and starts
//! itself again as `role=clients` (the same str0m clients as the bench) which sends each
//! client's offer over that connection and gets the answer back. The RSS read is this
//! process's alone: the clients' `Rtc`s, sockets and threads are not in it.
//!
//! Frames on the TCP connection: a little-endian u32 length, then UTF-8 text.
//! Join: `J <key> <room> <slot|-> <mid>:<slot>,...\n<offer SDP>`;
//! answer: `A <key>\n<answer SDP>` or `E <key>\n<error>`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::media::Mid;

use crate::measure::{loadavg, rss};
use crate::server::Join;
use crate::{Args, client};

fn write_frame(w: &mut impl Write, text: &str) -> std::io::Result<()> {
    w.write_all(&(text.len() as u32).to_le_bytes())?;
    w.write_all(text.as_bytes())
}

/// The next frame, `None` at the end of the stream or on a malformed one.
fn read_frame(r: &mut impl Read) -> Option<String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 20 {
        return None;
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// A poll nobody waits on, for the `reply_waker` a `Join` must carry.
fn idle_waker() -> std::io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0))?);
    Ok((poll, waker))
}

/// The server side: the SFU, the signalling listener, the clients' process; RSS per
/// connection once every participant is connected (and the speakers talking).
pub fn server(a: &Args, cert: DtlsCert) {
    let run = || -> std::io::Result<()> {
        let sfu = crate::start_sfu(a, cert)?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let sig = listener.local_addr()?;
        let participants = a.rooms * (a.speakers + a.listeners);
        let before = rss();
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "role=clients".to_owned(),
                format!("sig={sig}"),
                format!("rooms={}", a.rooms),
                format!("speakers={}", a.speakers),
                format!("listeners={}", a.listeners),
                format!("client_threads={}", a.client_threads),
                format!("dtls={}", if a.cached_dtls { "cached" } else { "stock" }),
            ])
            .spawn()?;
        let (stream, _) = listener.accept()?;
        let mut reader = stream.try_clone()?;
        let mut writer = stream;
        let (reply_tx, reply_rx) = mpsc::channel::<(usize, Result<SdpAnswer, String>)>();
        let (_idle, idle) = idle_waker()?;
        thread::spawn(move || {
            for (key, r) in reply_rx {
                let text = match r {
                    Ok(answer) => format!("A {key}\n{}", answer.to_sdp_string()),
                    Err(e) => format!("E {key}\n{e}"),
                };
                if write_frame(&mut writer, &text).is_err() {
                    break;
                }
            }
        });
        let (joins, sfu_waker) = (sfu.joins.clone(), sfu.waker.clone());
        let bad = Arc::new(AtomicU64::new(0));
        let bad_frames = bad.clone();
        thread::spawn(move || {
            while let Some(frame) = read_frame(&mut reader) {
                let Some(j) = parse_join(&frame, reply_tx.clone(), idle.clone()) else {
                    bad_frames.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if joins.send(j).is_err() {
                    break;
                }
                let _ = sfu_waker.wake();
            }
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(a.join_timeout);
        while (sfu.stats.connected.load(Ordering::Relaxed) as usize) < participants
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(10));
        }
        let connected = sfu.stats.connected.load(Ordering::Relaxed);
        // Let the speakers' media and the first RTCP reports fill what they fill.
        thread::sleep(Duration::from_secs(3));
        let after = rss();
        println!("participants: {participants} (clients in a separate process)");
        println!(
            "server_connected: {connected} of {participants} in {:.2} s",
            started.elapsed().as_secs_f64() - 3.0
        );
        println!(
            "server_rss_per_connected_participant_kib: {:.1} (this process's RSS after all connected and talking, less before any join, / {participants})",
            after.saturating_sub(before) as f64 / participants.max(1) as f64 / 1024.0
        );
        println!("bad_signalling_frames: {}", bad.load(Ordering::Relaxed));
        println!("load_average: {} (after the run)", loadavg());
        sfu.stop.store(true, Ordering::Relaxed);
        let _ = sfu.waker.wake();
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("str0m-proto: {e}");
    }
}

fn parse_join(
    frame: &str,
    reply: mpsc::Sender<(usize, Result<SdpAnswer, String>)>,
    reply_waker: Arc<Waker>,
) -> Option<Join> {
    let (head, sdp) = frame.split_once('\n')?;
    let mut f = head.split(' ');
    if f.next()? != "J" {
        return None;
    }
    let id: usize = f.next()?.parse().ok()?;
    let room: usize = f.next()?.parse().ok()?;
    let slot = match f.next()? {
        "-" => None,
        s => Some(s.parse().ok()?),
    };
    let mut receives = Vec::new();
    for r in f.next().unwrap_or("").split(',').filter(|r| !r.is_empty()) {
        let (mid, slot) = r.split_once(':')?;
        receives.push((Mid::from(mid), slot.parse().ok()?));
    }
    let offer = SdpOffer::from_sdp_string(sdp).ok()?;
    Some(Join {
        id,
        room,
        offer: Some(offer),
        receives,
        slot,
        reply,
        reply_waker,
    })
}

/// A client's join waiting for its answer: its id on its thread, where the answer goes.
type Waiting = (
    usize,
    mpsc::Sender<(usize, Result<SdpAnswer, String>)>,
    Arc<Waker>,
);

/// `role=clients`: the bench's clients, their offers sent over `sig`; exits when it closes.
pub fn clients(a: &Args, cert: DtlsCert, sig: &str) {
    let run = || -> std::io::Result<()> {
        let stream = TcpStream::connect(sig)?;
        let mut reader = stream.try_clone()?;
        let mut writer = stream;
        let (_idle, idle) = idle_waker()?;
        let shared = Arc::new(client::Shared {
            epoch: Instant::now(),
            sfu_waker: idle,
            cert,
            window_start_us: AtomicU64::new(0),
            window_end_us: AtomicU64::new(u64::MAX),
            connected: AtomicUsize::new(0),
            first_audio: AtomicUsize::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let waiting: Arc<Mutex<HashMap<usize, Waiting>>> = Arc::default();
        let (join_tx, join_rx) = mpsc::channel::<Join>();
        {
            let waiting = waiting.clone();
            thread::spawn(move || {
                for (key, j) in join_rx.into_iter().enumerate() {
                    let Some(offer) = j.offer else { continue };
                    let receives: Vec<String> = j
                        .receives
                        .iter()
                        .map(|(mid, slot)| format!("{mid}:{slot}"))
                        .collect();
                    let slot = j.slot.map_or("-".to_owned(), |s| s.to_string());
                    let text = format!(
                        "J {key} {} {slot} {}\n{}",
                        j.room,
                        receives.join(","),
                        offer.to_sdp_string()
                    );
                    if let Ok(mut w) = waiting.lock() {
                        w.insert(key, (j.id, j.reply, j.reply_waker));
                    }
                    if write_frame(&mut writer, &text).is_err() {
                        break;
                    }
                }
            });
        }
        let reader_shared = shared.clone();
        thread::spawn(move || {
            while let Some(frame) = read_frame(&mut reader) {
                let Some((head, body)) = frame.split_once('\n') else {
                    continue;
                };
                let Some((kind, key)) = head.split_once(' ') else {
                    continue;
                };
                let Ok(key) = key.parse::<usize>() else {
                    continue;
                };
                let answer = match kind {
                    "A" => SdpAnswer::from_sdp_string(body).map_err(|e| e.to_string()),
                    _ => Err(body.to_owned()),
                };
                let entry = waiting.lock().ok().and_then(|mut w| w.remove(&key));
                if let Some((id, reply, waker)) = entry {
                    let _ = reply.send((id, answer));
                    let _ = waker.wake();
                }
            }
            reader_shared.stop.store(true, Ordering::Relaxed);
        });
        let mut threads = Vec::new();
        for (t, specs) in crate::specs(a).into_iter().enumerate() {
            let (shared, joins, nice) = (shared.clone(), join_tx.clone(), a.nice);
            threads.push(
                thread::Builder::new()
                    .name(format!("client{t}"))
                    .spawn(move || client::run(specs, shared, joins, nice))?,
            );
        }
        drop(join_tx);
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("str0m-proto clients: {e}");
    }
}
