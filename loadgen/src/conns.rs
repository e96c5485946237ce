//! Opening many WebSocket sessions with bounded concurrency, each in its own task.
//!
//! Each task connects, waits for `hello`, joins its rooms, reports its connect+join
//! latency, and then runs the scenario's body on the connection straight away (so the
//! connection is always being read and server pings or presence events never pile up).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::stats::{self, new_histogram};
use crate::ws::{Conn, WsTarget};

/// Outcome of [`open_many`].
pub struct Opened<R> {
    /// One task per attempted connection; failed ones return `R::default()`.
    pub handles: Vec<JoinHandle<R>>,
    pub ok: usize,
    pub failed: usize,
    /// Connect + hello + joins latency of the successful connections (ns).
    pub latency: Histogram<u64>,
    /// From the first attempt to the last connection's outcome.
    pub elapsed: Duration,
}

/// Opens `n` sessions, `concurrency` attempts at a time. `plan(i)` gives the access
/// token and the rooms to `room:join` for connection `i`; `body(i, conn)` then runs in
/// the connection's task.
pub async fn open_many<P, B, Fut, R>(
    target: &WsTarget,
    n: usize,
    concurrency: usize,
    plan: P,
    body: B,
) -> Result<Opened<R>>
where
    P: Fn(usize) -> (Arc<str>, Vec<String>),
    B: Fn(usize, Conn) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Default + Send + 'static,
{
    let target = Arc::new(target.clone());
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let (token, rooms) = plan(i);
        let target = target.clone();
        let tx = tx.clone();
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let result = target.connect_and_join(&token, &rooms).await;
            drop(permit);
            match result {
                Ok(conn) => {
                    let _ = tx.send(Ok(t0.elapsed()));
                    drop(tx);
                    body(i, conn).await
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("connection {i}: {e:#}")));
                    R::default()
                }
            }
        }));
    }
    drop(tx);

    let mut latency = new_histogram();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut elapsed = Duration::ZERO;
    // Every task sends exactly one result (or drops its sender by panicking), and each
    // attempt is bounded by the connect/ack timeouts, so this loop ends.
    while let Some(result) = rx.recv().await {
        elapsed = started.elapsed();
        match result {
            Ok(lat) => {
                ok += 1;
                latency.saturating_record(u64::try_from(lat.as_nanos()).unwrap_or(u64::MAX));
                if ok.is_multiple_of(2000) {
                    eprintln!("connect: {ok}/{n} sessions open");
                }
            }
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("error: {e}");
                }
                if failed == 1 {
                    hint(&e);
                }
            }
        }
    }
    if failed > 5 {
        eprintln!("error: {failed} of {n} connections failed in total");
    }
    if ok == 0 && n > 0 {
        bail!("all {n} WebSocket connections failed (see errors above)");
    }
    eprintln!(
        "connect: {ok} sessions open ({failed} failed) in {:.2} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        stats::per_sec(ok as u64, elapsed)
    );
    Ok(Opened {
        handles,
        ok,
        failed,
        latency,
        elapsed,
    })
}

fn hint(error: &str) {
    let lower = error.to_lowercase();
    if lower.contains("too many open files") {
        eprintln!(
            "hint: raise the open-files limit (`ulimit -n 65536`) for both the node and the generator"
        );
    } else if lower.contains("address not available") {
        eprintln!(
            "hint: out of ephemeral ports; widen net.ipv4.ip_local_port_range or lower --connections"
        );
    } else if lower.contains("refused") {
        eprintln!("hint: is the node listening on --url?");
    } else if lower.contains("401") || lower.contains("unauthorized") {
        eprintln!("hint: the node rejected the access token on /ws?token=");
    }
}

/// Waits for every task, up to `limit` in total; tasks still running after that are
/// aborted and contribute nothing.
pub async fn join_all<R>(handles: Vec<JoinHandle<R>>, limit: Duration) -> Vec<R> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::with_capacity(handles.len());
    let mut late = 0usize;
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => eprintln!("warning: connection task failed: {e}"),
            Err(_) => {
                abort.abort();
                late += 1;
            }
        }
    }
    if late > 0 {
        eprintln!("warning: {late} connection tasks did not stop in time and were aborted");
    }
    out
}
