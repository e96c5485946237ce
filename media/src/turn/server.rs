//! The TURN server's tokio layer: one UDP socket and one TCP listener on the TURN port, a UDP
//! socket per allocation for the relay, a one-second clock. Everything protocol is in
//! [`TurnCore`]; this only moves bytes and opens/closes sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::core::{AllocId, TurnCore};
use super::{ClientKey, Output, Transport, TurnConfig, TurnSecret, wire};
use crate::MediaError;

/// Frames queued for one TCP client before more are dropped.
const TCP_QUEUE: usize = 256;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 1600;

struct Relay {
    socket: Arc<UdpSocket>,
    task: JoinHandle<()>,
}

struct Shared {
    core: Mutex<TurnCore>,
    udp: UdpSocket,
    config: TurnConfig,
    tcp: Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>,
    relays: Mutex<HashMap<AllocId, Relay>>,
    next_conn: AtomicU64,
}

/// A running TURN server; dropping it stops it.
pub struct TurnServer {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TurnServer {
    /// Binds the UDP and TCP listeners (the same port; with port 0 the UDP socket's port is
    /// then taken for TCP too) and starts serving.
    pub async fn start(config: TurnConfig, secret: TurnSecret) -> Result<TurnServer, MediaError> {
        let (udp, tcp) = bind_pair(&config).await?;
        let udp_addr = udp.local_addr().map_err(MediaError::turn)?;
        let tcp_addr = tcp.local_addr().map_err(MediaError::turn)?;
        let core = TurnCore::new(
            secret,
            config.limits,
            config.relay_announced_ip,
            config.allowed_peers.clone(),
        );
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            udp,
            config,
            tcp: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        let tasks = vec![
            tokio::spawn(udp_loop(shared.clone())),
            tokio::spawn(tcp_accept(shared.clone(), tcp)),
            tokio::spawn(clock(shared.clone())),
        ];
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, "TURN server listening");
        Ok(TurnServer {
            udp_addr,
            tcp_addr,
            tasks,
            shared,
        })
    }

    /// The UDP listener's address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Live allocations.
    pub fn allocations(&self) -> usize {
        self.shared.core.lock().allocations()
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for (_, relay) in self.shared.relays.lock().drain() {
            relay.task.abort();
        }
        self.shared.tcp.lock().clear();
    }
}

async fn bind_pair(config: &TurnConfig) -> Result<(UdpSocket, TcpListener), MediaError> {
    // With an ephemeral port, the TCP listener takes the UDP socket's port; a few tries in
    // case another process holds that TCP port.
    for _ in 0..16 {
        let udp = UdpSocket::bind(SocketAddr::new(config.listen_ip, config.port))
            .await
            .map_err(MediaError::turn)?;
        let port = udp.local_addr().map_err(MediaError::turn)?.port();
        match TcpListener::bind(SocketAddr::new(config.listen_ip, port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if config.port != 0 => return Err(MediaError::turn(e)),
            Err(_) => continue,
        }
    }
    Err(MediaError::Turn("no port free for both UDP and TCP".into()))
}

/// Carries out the core's outputs (opening a relay gives more).
fn perform(shared: &Arc<Shared>, mut outputs: Vec<Output>) {
    while let Some(output) = outputs.pop() {
        match output {
            Output::ToClient { client, data } => match client.transport {
                Transport::Udp => {
                    let _ = shared.udp.try_send_to(&data, client.addr);
                }
                Transport::Tcp(conn) => {
                    let tx = shared.tcp.lock().get(&conn).cloned();
                    if let Some(tx) = tx
                        && tx.try_send(data).is_err()
                    {
                        metrics::counter!("voiceflow_turn_dropped_total", "reason" => "tcp_queue")
                            .increment(1);
                    }
                }
            },
            Output::ToPeer { alloc, peer, data } => {
                let socket = shared.relays.lock().get(&alloc).map(|r| r.socket.clone());
                if let Some(socket) = socket {
                    let _ = socket.try_send_to(&data, peer);
                }
            }
            Output::OpenRelay { client } => {
                let socket = open_relay(&shared.config);
                let local = socket.as_ref().and_then(|s| s.local_addr().ok());
                let mut more = Vec::new();
                let id = shared
                    .core
                    .lock()
                    .relay_opened(Instant::now(), client, local, &mut more);
                if let (Some(id), Some(socket)) = (id, socket) {
                    let socket = Arc::new(socket);
                    let task = tokio::spawn(relay_loop(shared.clone(), id, socket.clone()));
                    shared.relays.lock().insert(id, Relay { socket, task });
                }
                outputs.extend(more);
            }
            Output::CloseRelay { alloc } => {
                if let Some(relay) = shared.relays.lock().remove(&alloc) {
                    relay.task.abort();
                }
            }
        }
    }
}

/// A relay socket in the configured range (from a random point of it), or any free port.
fn open_relay(config: &TurnConfig) -> Option<UdpSocket> {
    let bind = |port: u16| -> Option<UdpSocket> {
        let std = std::net::UdpSocket::bind(SocketAddr::new(config.relay_ip, port)).ok()?;
        std.set_nonblocking(true).ok()?;
        UdpSocket::from_std(std).ok()
    };
    let Some((min, max)) = config.relay_ports else {
        return bind(0);
    };
    let span = u32::from(max - min) + 1;
    let start: u32 = rand::random::<u32>() % span;
    (0..span).find_map(|i| bind(min + ((start + i) % span) as u16))
}

async fn udp_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = shared.udp.recv_from(&mut buf).await else {
            continue;
        };
        let client = ClientKey {
            transport: Transport::Udp,
            addr: from,
        };
        let mut out = Vec::new();
        shared
            .core
            .lock()
            .handle_client(Instant::now(), unix_now(), client, &buf[..n], &mut out);
        perform(&shared, out);
    }
}

async fn relay_loop(shared: Arc<Shared>, id: AllocId, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let mut out = Vec::new();
        shared
            .core
            .lock()
            .handle_relay(Instant::now(), id, from, &buf[..n], &mut out);
        perform(&shared, out);
    }
}

async fn clock(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut out = Vec::new();
        shared.core.lock().handle_timeout(Instant::now(), &mut out);
        perform(&shared, out);
    }
}

async fn tcp_accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        if shared.tcp.lock().len() >= shared.config.limits.max_allocations {
            metrics::counter!("voiceflow_turn_refused_total", "reason" => "tcp_connections")
                .increment(1);
            continue;
        }
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TCP_QUEUE);
        shared.tcp.lock().insert(conn, tx);
        tokio::spawn(tcp_conn(shared.clone(), stream, from, conn, rx));
    }
}

async fn tcp_conn(
    shared: Arc<Shared>,
    stream: TcpStream,
    from: SocketAddr,
    conn: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let client = ClientKey {
        transport: Transport::Tcp(conn),
        addr: from,
    };
    // Quiet for longer than an allocation may live: nothing is using the connection.
    let idle = shared.config.limits.max_lifetime + Duration::from_secs(60);
    let mut buf = vec![0u8; 64 * 1024 + 64];
    loop {
        let mut head = [0u8; 4];
        match tokio::time::timeout(idle, reader.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let Some(len) = wire::tcp_frame_len(head) else {
            metrics::counter!("voiceflow_turn_dropped_total", "reason" => "garbage").increment(1);
            break;
        };
        let Some(frame) = buf.get_mut(..len) else {
            break;
        };
        frame[..4].copy_from_slice(&head);
        match tokio::time::timeout(idle, reader.read_exact(&mut frame[4..])).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let mut out = Vec::new();
        shared
            .core
            .lock()
            .handle_client(Instant::now(), unix_now(), client, frame, &mut out);
        perform(&shared, out);
    }
    shared.tcp.lock().remove(&conn);
    writing.abort();
    let mut out = Vec::new();
    shared.core.lock().client_closed(client, &mut out);
    perform(&shared, out);
}
