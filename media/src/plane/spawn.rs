//! Starting the media plane's threads: the socket bound and sized, one loop per
//! `media_threads`, and with more than one the receiving thread of `shard`; and where each
//! loop's datagrams come from.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Cmd;
use super::media_loop::Loop;
use super::shard::{self, Batch, Router};
use crate::engine::MediaConfig;
use crate::{MediaError, PlaneStats};

/// Kernel buffer asked for the media socket, each way.
const SOCKET_BUFFER: usize = 8 << 20;

/// Runs `work` on a thread of its own with a single-threaded runtime.
fn thread<F: std::future::Future<Output = ()> + 'static>(
    make: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        // `sfubench` measures the CPU time of the threads named so.
        .name("sfu".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(make()),
                Err(e) => tracing::error!(error = %e, "voice: no media runtime"),
            }
        })
        .map(|_| ())
}

/// Binds the socket and starts the loops' threads (and, with more than one loop, the
/// receiving thread of `shard`); a command sender per loop.
pub(super) fn spawn(
    config: MediaConfig,
    stats: Arc<PlaneStats>,
) -> Result<(Vec<mpsc::UnboundedSender<Cmd>>, SocketAddr), MediaError> {
    let bind = SocketAddr::new(config.bind_ip, config.udp_port);
    let err = |e| MediaError::Bind(bind, e);
    let socket = std::net::UdpSocket::bind(bind).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    // Every participant's datagrams queue in this one socket while the loop is busy (a burst
    // of DTLS handshakes): with the default ~200 KiB a few milliseconds' stall overflowed it,
    // and a lost handshake flight costs a second (DTLS's first retransmission timeout). The
    // kernel caps the request at `net.core.rmem_max`/`wmem_max`.
    let sock = socket2::SockRef::from(&socket);
    for (what, result) in [
        ("receive", sock.set_recv_buffer_size(SOCKET_BUFFER)),
        ("send", sock.set_send_buffer_size(SOCKET_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::warn!(error = %e, "voice: cannot size the media socket's {what} buffer");
        }
    }
    let local = socket.local_addr().map_err(err)?;
    let socket = Arc::new(socket);
    let threads = config.media_threads.max(1);
    let router = (threads > 1).then(|| Arc::new(Router::default()));
    let mut commands = Vec::with_capacity(threads);
    let mut batches = Vec::with_capacity(threads);
    for shard in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        let (inbox, shared) = match &router {
            Some(router) => {
                let (btx, brx) = mpsc::channel(shard::QUEUED_BATCHES);
                batches.push(btx);
                (Inbox::Batches(brx), Some((router.clone(), shard)))
            }
            None => (Inbox::Socket(socket.try_clone().map_err(err)?), None),
        };
        let (config, socket, stats) = (config.clone(), socket.clone(), stats.clone());
        thread(move || async move {
            let inbox = match inbox {
                Inbox::Socket(s) => match UdpSocket::from_std(s) {
                    Ok(s) => Some(Input::Socket(s)),
                    Err(e) => return tracing::error!(error = %e, "voice: media socket"),
                },
                Inbox::Batches(b) => Some(Input::Batches(b)),
            };
            Loop::new(config, socket, local, stats, shared)
                .run(rx, inbox)
                .await
        })
        .map_err(err)?;
    }
    if let Some(router) = router {
        let recv = socket.try_clone().map_err(err)?;
        let batch = config.recv_batch;
        thread(move || async move {
            match UdpSocket::from_std(recv) {
                Ok(recv) => shard::receive(recv, router, batches, stats, batch).await,
                Err(e) => tracing::error!(error = %e, "voice: media socket"),
            }
        })
        .map_err(err)?;
    }
    Ok((commands, local))
}

/// Where a loop's datagrams come from, as handed to its thread.
enum Inbox {
    Socket(std::net::UdpSocket),
    Batches(mpsc::Receiver<Batch>),
}

/// Where a loop's datagrams come from: the socket itself (one loop), or the receiving thread.
pub(super) enum Input {
    Socket(UdpSocket),
    Batches(mpsc::Receiver<Batch>),
}

/// What a loop's input had for it.
pub(super) enum Received {
    One(std::io::Result<(usize, SocketAddr)>),
    Batch(Option<Batch>),
}

impl Input {
    async fn next(&mut self, buf: &mut [u8]) -> Received {
        match self {
            Input::Socket(s) => Received::One(s.recv_from(buf).await),
            Input::Batches(b) => Received::Batch(b.recv().await),
        }
    }
}

/// The next thing from a loop's input; nothing ever if it has none.
pub(super) async fn next_input(input: Option<&mut Input>, buf: &mut [u8]) -> Received {
    match input {
        Some(input) => input.next(buf).await,
        None => std::future::pending().await,
    }
}
