//! What the bench reads of this process and the host from /proc: CPU, memory, the kernel's
//! UDP drops.

/// UDP datagrams the kernel dropped for a full receive buffer (`RcvbufErrors` of
/// /proc/net/snmp: every socket of the network namespace, this process's and others').
pub(crate) fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Datagrams the kernel dropped on this process's UDP sockets (the `drops` column of
/// /proc/net/udp, counted since each socket was made): on the socket bound to `server_port`,
/// and on all the others (the clients').
pub(crate) fn udp_socket_drops(server_port: u16) -> (u64, u64) {
    let mut mine = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                {
                    mine.insert(inode.to_owned());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut server, mut clients) = (0, 0);
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(inode), Some(drops)) = (f.get(1), f.get(9), f.last()) else {
            continue;
        };
        if !mine.contains(*inode) {
            continue;
        }
        let drops: u64 = drops.parse().unwrap_or(0);
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if port == Some(server_port) {
            server += drops;
        } else {
            clients += drops;
        }
    }
    (server, clients)
}

/// CPU seconds (user + system) of a process or thread, from its /proc `stat` file.
fn stat_cpu_secs(stat_path: &std::path::Path) -> f64 {
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

/// CPU seconds this process used (user + system).
pub(crate) fn cpu_secs() -> f64 {
    stat_cpu_secs(std::path::Path::new("/proc/self/stat"))
}

/// CPU seconds of this process's threads named `name` (tokio names every thread of a runtime).
pub(crate) fn thread_cpu_secs(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        total += stat_cpu_secs(&task.path().join("stat"));
    }
    total
}

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

/// Resident memory, bytes.
pub(crate) fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
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
