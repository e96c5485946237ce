//! `cql-bridge --listen ADDR --upstream ADDR`: runs the CQL protocol v4 ↔ v3 frame bridge
//! (see `voiceflow_schema::cql::bridge`) so the `scylla` driver can talk to the Apache
//! Cassandra 2.1 test server. Started by `scripts/cassandra`; loopback addresses only.

use std::net::SocketAddr;
use std::process::ExitCode;

use voiceflow_schema::cql::bridge;

/// Parsed command line.
struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
}

/// Reads `--listen` and `--upstream`; both must be loopback addresses.
fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
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
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "cql-bridge: {e}\nusage: cql-bridge --listen 127.0.0.1:19042 --upstream 127.0.0.1:19142"
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
        bridge::run(listener, args.upstream).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cql-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
