//! The `[voice]` table.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use voiceflow_actors::context::VoiceRuntime;
use voiceflow_media::{MediaConfig, MediaPlane};
use voiceflow_wire::v1::voice::IceServer;

/// Voice channels: where media is received, what clients are told, limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    /// The address the media (UDP) socket binds to and that ICE candidates announce; on a
    /// public host, its public address. `0.0.0.0` binds every interface and then needs
    /// `announced_ip` (the one address candidates name).
    pub bind_ip: IpAddr,
    /// The node's public address when it differs from `bind_ip` (1:1 NAT, e.g. a cloud VM):
    /// the candidates clients get name it instead. Unset: `bind_ip`.
    pub announced_ip: Option<IpAddr>,
    /// The one UDP port all media of this node goes through (every participant; open it in
    /// the firewall). 0: any free port (tests). Bound when the first participant joins.
    pub udp_port: u16,
    /// Threads running the media loop; channels are sharded across them (with more than one,
    /// one more thread reads the shared socket and hands each loop its datagrams).
    pub media_threads: usize,
    /// Datagrams the media loop reads in one go before it looks at its timers and commands.
    pub recv_batch: usize,
    /// STUN/TURN servers handed to clients in the `voice:join` ack.
    pub ice_servers: Vec<IceServer>,
    /// Most participants in one voice channel.
    pub capacity: usize,
    /// Most participants on one stage, listeners included.
    pub stage_capacity: usize,
    /// Most hosts and speakers on one stage.
    pub stage_speakers: usize,
    /// Most participants publishing video (a camera or a screen share) at once in one voice
    /// channel, stage or call; one more is refused (`video_limit`). 0: video is off.
    pub max_video_publishers: usize,
    /// The most a participant may send per video track (camera, screen), kbit/s: clients are
    /// told so in the session descriptions (`b=AS`) and browsers keep under it. 0: no cap.
    pub video_max_kbps: u32,
    /// Keyframe requests (PLI) to one publisher stream (a simulcast layer) at most this
    /// often, milliseconds; one asked for meanwhile goes out when the interval is over.
    pub keyframe_request_interval_ms: u64,
    /// Video packets kept per publisher stream to answer subscribers' NACKs by sending them
    /// again. 0: no retransmissions.
    pub nack_history_packets: usize,
    /// A subscriber's video moves up a simulcast layer only after its bandwidth estimate
    /// (REMB) allowed the higher layer for this long, milliseconds (down happens at once).
    pub layer_upgrade_after_ms: u64,
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
    /// Run the embedded TURN server (for clients whose UDP to the media ports is blocked):
    /// UDP and TCP on `turn_port`; clients get `turn:` URLs with short-lived credentials in
    /// `voice:ice_servers` and the `voice:join` ack.
    pub turn_enabled: bool,
    /// Address the TURN listeners bind to. Unset: `bind_ip`.
    pub turn_listen_ip: Option<IpAddr>,
    /// TURN port, UDP and TCP; open both in the firewall. 0: any free port (tests).
    pub turn_port: u16,
    /// Address relay sockets bind to. Unset: `bind_ip`.
    pub turn_relay_ip: Option<IpAddr>,
    /// Address clients are told for the TURN server and its relays (1:1 NAT). Unset:
    /// `announced_ip`, else the bound addresses.
    pub turn_announced_ip: Option<IpAddr>,
    /// UDP ports of relays, inclusive (one per allocation); open them. Unset: any free port.
    pub turn_relay_port_min: Option<u16>,
    /// Last relay port.
    pub turn_relay_port_max: Option<u16>,
    /// Shared secret of the credentials (`HMAC-SHA1(secret, "expiry:userId")`); every node of
    /// a cluster must have the same. Unset: derived from the JWT secret (which the nodes of a
    /// cluster already share).
    pub turn_secret: Option<String>,
    /// How long a handed-out credential may start allocations, seconds (an allocation made
    /// in time keeps refreshing after that).
    pub turn_credential_ttl_secs: u64,
    /// Most TURN allocations at once on this node (and TCP connections to the TURN port).
    pub turn_max_allocations: usize,
    /// Most TURN allocations one user holds at once.
    pub turn_max_allocations_per_user: usize,
    /// Longest allocation lifetime granted per Allocate/Refresh, seconds (at least 600 is
    /// granted when asked, per RFC 8656, unless this is lower).
    pub turn_max_lifetime_secs: u64,
    /// Relayed bandwidth per allocation (both directions), kbit/s; 0: unlimited. Voice needs
    /// about 50 per other speaker heard.
    pub turn_max_kbps: u32,
    /// The only addresses relays may send to. Empty: this node's media address (`bind_ip`,
    /// `announced_ip`), or any when `bind_ip` is unspecified; list every node's media address
    /// in a cluster. `0.0.0.0` in the list: any.
    pub turn_allowed_peers: Vec<IpAddr>,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            announced_ip: None,
            udp_port: 50000,
            media_threads: 1,
            recv_batch: 64,
            ice_servers: Vec::new(),
            capacity: 25,
            stage_capacity: 200,
            stage_speakers: 10,
            max_video_publishers: 9,
            video_max_kbps: 2_500,
            keyframe_request_interval_ms: 500,
            nack_history_packets: 512,
            layer_upgrade_after_ms: 3_000,
            connect_timeout_secs: 15,
            ttl_secs: 30,
            call_ring_secs: 30,
            call_connect_secs: 30,
            call_grace_secs: 10,
            turn_enabled: false,
            turn_listen_ip: None,
            turn_port: 3478,
            turn_relay_ip: None,
            turn_announced_ip: None,
            turn_relay_port_min: None,
            turn_relay_port_max: None,
            turn_secret: None,
            turn_credential_ttl_secs: 3600,
            turn_max_allocations: 1000,
            turn_max_allocations_per_user: 5,
            turn_max_lifetime_secs: 3600,
            turn_max_kbps: 512,
            turn_allowed_peers: Vec::new(),
        }
    }
}

impl VoiceConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.capacity == 0 {
            return Err("voice.capacity must be at least 1".into());
        }
        if !(1..=64).contains(&self.media_threads) {
            return Err("voice.media_threads must be between 1 and 64".into());
        }
        if self.recv_batch == 0 {
            return Err("voice.recv_batch must be at least 1".into());
        }
        if self.keyframe_request_interval_ms == 0 {
            return Err("voice.keyframe_request_interval_ms must be at least 1".into());
        }
        if self.nack_history_packets > 32_768 {
            return Err("voice.nack_history_packets must be at most 32768".into());
        }
        if self.bind_ip.is_unspecified() && self.announced_ip.is_none() {
            return Err("voice.bind_ip 0.0.0.0 needs voice.announced_ip".into());
        }
        self.validate_turn()
    }

    /// What the voice channels of this node use (`turn`: the node's TURN server, when on).
    pub fn runtime(&self, turn: Option<voiceflow_actors::context::TurnIssuer>) -> VoiceRuntime {
        VoiceRuntime {
            media: MediaPlane::new(MediaConfig {
                bind_ip: self.bind_ip,
                announced_ip: self.announced_ip,
                udp_port: self.udp_port,
                media_threads: self.media_threads,
                connect_timeout: Duration::from_secs(self.connect_timeout_secs.max(1)),
                recv_batch: self.recv_batch,
                video_max_kbps: self.video_max_kbps,
                keyframe_interval: Duration::from_millis(self.keyframe_request_interval_ms),
                nack_history: self.nack_history_packets,
                layer_upgrade_after: Duration::from_millis(self.layer_upgrade_after_ms),
            }),
            ice_servers: self.ice_servers.clone(),
            turn,
            capacity: self.capacity,
            stage_capacity: self.stage_capacity,
            stage_speakers: self.stage_speakers,
            max_video_publishers: self.max_video_publishers,
            ttl: Duration::from_secs(self.ttl_secs.max(1)),
            call_timings: voiceflow_actors::call::CallTimings {
                ring: Duration::from_secs(self.call_ring_secs.max(1)),
                connect: Duration::from_secs(self.call_connect_secs.max(1)),
                grace: Duration::from_secs(self.call_grace_secs.max(1)),
            },
        }
    }
}
