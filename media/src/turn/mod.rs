//! The embedded TURN server (RFC 8656) for clients that cannot reach the SFU's UDP port
//! directly: clients reach it over UDP or TCP on one port and it relays their media over UDP
//! from a port of the relay range. Credentials are short-lived and need no storage (the
//! "TURN REST API" scheme, [`credentials`]).
//!
//! - [`core`]: the protocol, IO-free, time passed in.
//! - [`server`]: the tokio layer: the UDP and TCP listeners, relay sockets, the clock.
//! - [`wire`]: message encoding (STUN from `rtc-stun`, TURN attributes from `rtc-turn`).
//!
//! `rtc-turn` (webrtc-rs's sans-IO TURN, already under `webrtc` 0.21) ships the client and the
//! protocol attributes but no server, and the older async `turn` crate's server is UDP-only and
//! would bring a second copy of the webrtc-rs stack: the server logic is written here on top of
//! their message types.

pub mod core;
pub mod credentials;
pub mod server;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use credentials::{Refusal, TurnSecret};
pub use server::TurnServer;

/// How a client reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams on the UDP listener.
    Udp,
    /// A TCP connection (its id).
    Tcp(u64),
}

/// A client's side of the 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// UDP, or which TCP connection.
    pub transport: Transport,
    /// The client's address.
    pub addr: SocketAddr,
}

/// What the core asks the IO layer to do.
#[derive(Debug)]
pub enum Output {
    /// Send `data` to the client (a datagram, or a frame on its TCP connection).
    ToClient {
        /// The client.
        client: ClientKey,
        /// The encoded message.
        data: Vec<u8>,
    },
    /// Send `data` from allocation `alloc`'s relay socket to `peer`.
    ToPeer {
        /// The allocation.
        alloc: core::AllocId,
        /// Where to.
        peer: SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
    /// Open a relay socket for `client`'s Allocate, then call [`core::TurnCore::relay_opened`].
    OpenRelay {
        /// The client.
        client: ClientKey,
    },
    /// Close allocation `alloc`'s relay socket.
    CloseRelay {
        /// The allocation.
        alloc: core::AllocId,
    },
}

/// Limits of the TURN server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnLimits {
    /// Most allocations at once.
    pub max_allocations: usize,
    /// Most allocations one user holds at once.
    pub max_allocations_per_user: usize,
    /// Lifetime of an allocation when the client asks for none (RFC 8656: 600 s).
    pub default_lifetime: Duration,
    /// Longest lifetime granted (the client refreshes before it ends).
    pub max_lifetime: Duration,
    /// Relayed bandwidth per allocation, both directions together, kbit/s; 0: unlimited.
    pub max_kbps: u32,
    /// How long a nonce is accepted.
    pub nonce_ttl: Duration,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            max_allocations: 1000,
            max_allocations_per_user: 5,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            max_kbps: 512,
            nonce_ttl: Duration::from_secs(3600),
        }
    }
}

impl TurnLimits {
    /// The lifetime granted for a requested one (0 only when asked: a Refresh deleting).
    pub fn lifetime(&self, asked: Option<Duration>) -> Duration {
        let floor = self.default_lifetime.min(self.max_lifetime);
        match asked {
            None => floor,
            Some(d) if d.is_zero() => Duration::ZERO,
            Some(d) => d.clamp(floor, self.max_lifetime),
        }
    }
}

/// Where the TURN server listens and relays.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Address of the UDP and TCP listeners.
    pub listen_ip: IpAddr,
    /// Their port (both protocols); 0: any free port (tests).
    pub port: u16,
    /// Address relay sockets bind to.
    pub relay_ip: IpAddr,
    /// The relay address clients are told (1:1 NAT); unset: `relay_ip`.
    pub relay_announced_ip: Option<IpAddr>,
    /// Relay ports, inclusive; unset: any free port.
    pub relay_ports: Option<(u16, u16)>,
    /// The only peer addresses relays may reach; empty: any.
    pub allowed_peers: Vec<IpAddr>,
    /// Limits.
    pub limits: TurnLimits,
}
