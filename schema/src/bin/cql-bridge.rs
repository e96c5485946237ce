//! `cql-bridge --listen ADDR --upstream ADDR`: runs the CQL protocol v4 ↔ v3 frame bridge
//! (see `voiceflow_schema::cql::bridge`) so the `scylla` driver can talk to the Apache
//! Cassandra 2.1 test server. Started by `scripts/cassandra`; loopback addresses only.
//!
//! Fault injection for tests (`scripts/chaos`): `--hold-file PATH` makes the bridge hold
//! every client's write frames for as many milliseconds as the file says (read every 100 ms;
//! missing or empty: 0), and `--no-rewrite` passes frames unchanged (a holding bridge in
//! front of another bridge or a v4 server).

use std::net::SocketAddr;
use std::process::ExitCode;

use voiceflow_schema::cql::bridge;

/// Parsed command line.
struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    hold_file: Option<std::path::PathBuf>,
    rewrite: bool,
}

/// Reads `--listen` and `--upstream`; both must be loopback addresses.
fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut hold_file = None;
    let mut rewrite = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-rewrite" {
            rewrite = false;
            continue;
        }
        if flag == "--hold-file" {
            hold_file = Some(args.next().ok_or("--hold-file needs a value")?.into());
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let addr: SocketAddr = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{flag} {addr}: only loopback addresses are allowed"
            ));
        }
        match flag.as_str() {
            "--listen" => listen = Some(addr),
            "--upstream" => upstream = Some(addr),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        hold_file,
        rewrite,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "cql-bridge: {e}\nusage: cql-bridge --listen 127.0.0.1:19042 --upstream 127.0.0.1:19142 [--hold-file PATH] [--no-rewrite]"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cql-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!(
            "cql-bridge listening on {} -> {}",
            listener.local_addr()?,
            args.upstream
        );
        let hold = bridge::hold::Hold::default();
        if let Some(path) = args.hold_file.clone() {
            let hold = hold.clone();
            tokio::spawn(async move {
                loop {
                    let ms = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    hold.set(std::time::Duration::from_millis(ms));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            });
        }
        bridge::hold::run_holding(listener, args.upstream, args.rewrite, hold).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cql-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
