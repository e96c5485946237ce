//! /proc readings (thread CPU, RSS, load) and percentiles, as sfubench takes them.

use std::path::Path;

/// The calling thread's kernel id, from the `/proc/thread-self` link (`<pid>/task/<tid>`).
pub fn gettid() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()?.parse().ok()))
        .unwrap_or(0)
}

/// CPU seconds (utime + stime, ticks of 10 ms) of a process or thread from its `stat` file.
pub fn stat_cpu_secs(stat_path: &Path) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of one thread of this process.
pub fn thread_cpu_secs(tid: u64) -> f64 {
    stat_cpu_secs(Path::new(&format!("/proc/self/task/{tid}/stat")))
}

/// CPU seconds of this whole process.
pub fn process_cpu_secs() -> f64 {
    stat_cpu_secs(Path::new("/proc/self/stat"))
}

/// Resident memory, bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The 1-, 5- and 15-minute load averages as /proc/loadavg gives them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `p` quantile of sorted values (nearest rank), 0 for none.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}
