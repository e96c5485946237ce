//! What a benchmark reads of its own process and the host from /proc: CPU time (the whole
//! process's, or its threads of one name), resident memory, and the kernel's UDP drops.
//! Shared by `sfubench` and `sfubench_video`; Linux only (elsewhere every figure is 0).

/// UDP datagrams the kernel dropped for a full receive buffer (`RcvbufErrors` of
/// /proc/net/snmp: every socket of the network namespace, this process's and others').
pub fn udp_rcvbuf_errors() -> u64 {
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
pub fn udp_socket_drops(server_port: u16) -> (u64, u64) {
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
pub fn cpu_secs() -> f64 {
    stat_cpu_secs(std::path::Path::new("/proc/self/stat"))
}

/// CPU seconds of this process's threads named `name` (tokio names every thread of a runtime).
pub fn thread_cpu_secs(name: &str) -> f64 {
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
