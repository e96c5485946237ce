//! The `[voice]` table.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use voiceflow_actors::context::VoiceRuntime;
use voiceflow_media::{MediaConfig, PortPool};
use voiceflow_wire::v1::voice::IceServer;

/// Voice channels: where media is received, what clients are told, limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    /// The address media (UDP) sockets bind to and that ICE candidates announce; on a public
    /// host, its public address; `0.0.0.0` binds every interface except loopback.
    pub bind_ip: IpAddr,
    /// The node's public address when it differs from `bind_ip` (1:1 NAT, e.g. a cloud VM):
    /// the candidates clients get name it instead. Unset: `bind_ip`.
    pub announced_ip: Option<IpAddr>,
    /// UDP ports for media, inclusive (one per participant connection); open them in the
    /// firewall. Unset: any free port.
    pub port_min: Option<u16>,
    /// Last port of the range.
    pub port_max: Option<u16>,
    /// STUN/TURN servers handed to clients in the `voice:join` ack.
    pub ice_servers: Vec<IceServer>,
    /// Most participants in one voice channel.
    pub capacity: usize,
    /// Most participants on one stage, listeners included.
    pub stage_capacity: usize,
    /// Most hosts and speakers on one stage.
    pub stage_speakers: usize,
    /// A participant whose connection is not up within this long is removed, seconds.
    pub connect_timeout_secs: u64,
    /// A participant whose session sent no heartbeat for this long is removed, seconds.
    pub ttl_secs: u64,
    /// A 1:1 call nobody answers within this long is missed, seconds.
    pub call_ring_secs: u64,
    /// An accepted call whose media is not up on both sides within this long fails, seconds.
    pub call_connect_secs: u64,
    /// A side whose media dropped during a call may come back within this long, seconds.
    pub call_grace_secs: u64,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            announced_ip: None,
            port_min: None,
            port_max: None,
            ice_servers: Vec::new(),
            capacity: 25,
            stage_capacity: 200,
            stage_speakers: 10,
            connect_timeout_secs: 15,
            ttl_secs: 30,
            call_ring_secs: 30,
            call_connect_secs: 30,
            call_grace_secs: 10,
        }
    }
}

impl VoiceConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        match (self.port_min, self.port_max) {
            (Some(min), Some(max)) if min > max => {
                Err("voice.port_min must not be above voice.port_max".into())
            }
            (Some(_), None) | (None, Some(_)) => {
                Err("voice.port_min and voice.port_max go together".into())
            }
            _ if self.capacity == 0 => Err("voice.capacity must be at least 1".into()),
            _ => Ok(()),
        }
    }

    /// What the voice channels of this node use.
    pub fn runtime(&self) -> VoiceRuntime {
        VoiceRuntime {
            media: MediaConfig {
                bind_ip: self.bind_ip,
                announced_ip: self.announced_ip,
                port_range: self.port_min.zip(self.port_max),
                connect_timeout: Duration::from_secs(self.connect_timeout_secs.max(1)),
            },
            ports: Arc::new(PortPool::default()),
            ice_servers: self.ice_servers.clone(),
            capacity: self.capacity,
            stage_capacity: self.stage_capacity,
            stage_speakers: self.stage_speakers,
            ttl: Duration::from_secs(self.ttl_secs.max(1)),
            call_timings: voiceflow_actors::call::CallTimings {
                ring: Duration::from_secs(self.call_ring_secs.max(1)),
                connect: Duration::from_secs(self.call_connect_secs.max(1)),
                grace: Duration::from_secs(self.call_grace_secs.max(1)),
            },
        }
    }
}
