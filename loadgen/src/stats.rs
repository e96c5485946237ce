//! Figures output, latency histograms, and /proc readings (RSS, CPU).

use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latency histograms are kept in nanoseconds, 1 µs resolution floor, 3 significant
/// digits, up to 10 minutes (larger values saturate).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// A histogram shared by many connection tasks; each task buffers locally.
pub type SharedHist = Arc<Mutex<Histogram<u64>>>;

pub fn shared_histogram() -> SharedHist {
    Arc::new(Mutex::new(new_histogram()))
}

/// Nanoseconds elapsed since `origin`.
#[inline]
pub fn elapsed_ns(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Per-task latency buffer flushed into a [`SharedHist`] every 4,096 samples and on
/// drop, so the hot path is a `Vec::push`.
pub struct Recorder {
    buf: Vec<u64>,
    shared: SharedHist,
}

impl Recorder {
    const BATCH: usize = 4096;

    pub fn new(shared: SharedHist) -> Self {
        Self {
            buf: Vec::with_capacity(256),
            shared,
        }
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.buf.push(ns);
        if self.buf.len() >= Self::BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut h = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        for v in self.buf.drain(..) {
            h.saturating_record(v);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints one figure line: `name: value unit`.
pub fn fig(name: &str, value: impl Display, unit: &str) {
    println!("{name}: {value} {unit}");
}

/// Prints a floating-point figure with 3 decimals.
pub fn fig_f(name: &str, value: f64, unit: &str) {
    println!("{name}: {value:.3} {unit}");
}

/// Prints `<prefix>_p50_ms`, `_p99_ms`, `_p999_ms`, `_max_ms` and `_samples`.
pub fn latency_figs(prefix: &str, h: &Histogram<u64>) {
    fig(&format!("{prefix}_samples"), h.len(), "samples");
    if h.is_empty() {
        return;
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    fig_f(
        &format!("{prefix}_p50_ms"),
        ms(h.value_at_quantile(0.5)),
        "ms",
    );
    fig_f(
        &format!("{prefix}_p99_ms"),
        ms(h.value_at_quantile(0.99)),
        "ms",
    );
    fig_f(
        &format!("{prefix}_p999_ms"),
        ms(h.value_at_quantile(0.999)),
        "ms",
    );
    fig_f(&format!("{prefix}_max_ms"), ms(h.max()), "ms");
}

/// Copies a shared histogram out.
pub fn snapshot(h: &SharedHist) -> Histogram<u64> {
    h.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Rate per second, 0 when `elapsed` is zero.
pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// VmRSS of a process in KiB.
pub fn read_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime of a process (`"self"` or a pid) in clock ticks (USER_HZ = 100).
pub fn read_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); index 0 here is field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Server RSS before connections, after idle connections, and at the end.
pub struct RssProbe {
    pid: Option<u32>,
    before: Option<u64>,
}

impl RssProbe {
    /// Reads the "before" value (call before the first WebSocket connection).
    pub fn before(pid: Option<u32>) -> Self {
        let before = pid.and_then(read_rss_kib);
        if let (Some(pid), None) = (pid, before) {
            eprintln!("warning: cannot read /proc/{pid}/status; no RSS figures");
        }
        Self { pid, before }
    }

    /// Prints `server.rss_before_kib`, `server.rss_kib` and `server.rss_per_conn_kib`.
    pub fn idle(&self, connections: usize) {
        let (Some(before), Some(after)) = (self.before, self.pid.and_then(read_rss_kib)) else {
            return;
        };
        fig("server.rss_before_kib", before, "KiB");
        fig("server.rss_kib", after, "KiB");
        fig("server.idle_connections", connections, "conns");
        if connections > 0 {
            let per = after.saturating_sub(before) as f64 / connections as f64;
            fig_f("server.rss_per_conn_kib", per, "KiB");
        }
    }

    /// Prints `server.rss_end_kib`.
    pub fn end(&self) {
        if let Some(rss) = self.pid.and_then(read_rss_kib) {
            fig("server.rss_end_kib", rss, "KiB");
        }
    }
}

/// CPU use of the server and of this generator over a measured phase.
pub struct CpuMeter {
    pid: Option<u32>,
    started: Instant,
    server0: Option<u64>,
    self0: Option<u64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            started: Instant::now(),
            server0: pid.and_then(|p| read_cpu_ticks(&p.to_string())),
            self0: read_cpu_ticks("self"),
        }
    }

    /// Prints `server.cpu_util_pct` and `loadgen.cpu_util_pct` (100 = one core) and
    /// warns when the generator itself was near one full core.
    pub fn finish(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let pct = |t0: u64, t1: u64| (t1.saturating_sub(t0)) as f64 / 100.0 / secs * 100.0;
        let server1 = self.pid.and_then(|p| read_cpu_ticks(&p.to_string()));
        if let (Some(t0), Some(t1)) = (self.server0, server1) {
            fig_f("server.cpu_util_pct", pct(t0, t1), "%");
        }
        if let (Some(t0), Some(t1)) = (self.self0, read_cpu_ticks("self")) {
            let p = pct(t0, t1);
            fig_f("loadgen.cpu_util_pct", p, "%");
            if p > 90.0 {
                eprintln!(
                    "warning: the generator used {p:.0}% of a core; figures may be limited by \
                     the generator rather than the server"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_flushes_on_drop() {
        let shared = shared_histogram();
        {
            let mut r = Recorder::new(shared.clone());
            for i in 1..=10_000u64 {
                r.record(i * 1_000);
            }
        }
        assert_eq!(snapshot(&shared).len(), 10_000);
    }

    #[test]
    fn reads_own_proc_files() {
        assert!(read_rss_kib(std::process::id()).is_some());
        assert!(read_cpu_ticks("self").is_some());
    }
}
