//! A loopback TCP relay that a test can freeze: both directions stop moving while both sockets
//! stay open, like a client whose network vanished without a FIN or RST (a phone in a tunnel).

use std::net::SocketAddr;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Relays every connection made to `addr` to the target until [`FreezableProxy::freeze`].
pub struct FreezableProxy {
    /// Where clients connect instead of the target.
    pub addr: SocketAddr,
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FreezableProxy {
    /// Listens on 127.0.0.1:0 and relays to `target`.
    pub async fn start(target: SocketAddr) -> Result<FreezableProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (frozen, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops every relay and closes their sockets.
            let mut relays = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (up_read, up_write) = upstream.into_split();
                relays.spawn(relay(client_read, up_write, watching.clone()));
                relays.spawn(relay(up_read, client_write, watching.clone()));
            }
        });
        Ok(FreezableProxy { addr, frozen, task })
    }

    /// From now on no byte moves in either direction; the sockets stay open.
    pub fn freeze(&self) {
        let _ = self.frozen.send(true);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either ends; once frozen, holds both open and moves nothing.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            () = until_frozen(&mut frozen) => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
    // Frozen: keep the halves alive (no FIN, no RST) until the proxy is dropped.
    std::future::pending::<()>().await;
    drop((from, to));
}

async fn until_frozen(frozen: &mut watch::Receiver<bool>) {
    loop {
        if *frozen.borrow_and_update() {
            return;
        }
        if frozen.changed().await.is_err() {
            return;
        }
    }
}
