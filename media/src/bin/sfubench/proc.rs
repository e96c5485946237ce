//! The bench's own process: renicing its load clients, percentiles, the server's counters;
//! what it reads from /proc comes from [`voiceflow_media::testing::procfs`].

pub(crate) use voiceflow_media::testing::procfs::{
    cpu_secs, rss, thread_cpu_secs, udp_rcvbuf_errors, udp_socket_drops,
};

/// Renices every thread of this process but the server's (`sfu`); threads the clients start
/// later inherit it. Lowering one's own priority needs no privilege.
pub(crate) fn deprioritise_clients(nice: u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut tids = Vec::new();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "sfu" {
            tids.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    let status = std::process::Command::new("renice")
        .args(["-n", &nice.to_string(), "-p"])
        .args(&tids)
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => println!(
            "clients_nice: {nice} ({} threads; the server's not)",
            tids.len()
        ),
        _ => eprintln!("sfubench: renice failed; clients not deprioritised"),
    }
}

pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

/// The server's datagram counters, one line: in, out, and dropped by reason.
pub(crate) fn print_server_datagrams(plane: &voiceflow_media::MediaPlane) {
    use std::sync::atomic::Ordering;
    let stats = plane.stats();
    let dropped: Vec<String> = voiceflow_media::DropReason::ALL
        .iter()
        .map(|r| format!("{}={}", r.label(), stats.dropped(*r)))
        .collect();
    println!(
        "server_datagrams: in {} out {} dropped {}",
        stats.received.load(Ordering::Relaxed),
        stats.sent.load(Ordering::Relaxed),
        dropped.join(" ")
    );
}
